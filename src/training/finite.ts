// Whether a run's weights are fit to save: no NaN or infinity in the weights or the optimizer's
// moments, and — weights can be finite yet so large that the model computes NaN — a finite loss
// on a fixed probe batch when the run gives one. Checked before every checkpoint and adapter is
// written, so none ever holds garbage. One isfinite-all reduction per tensor and a single read
// of the combined result keep the check cheap (one pass over the weights, one sync).
import { noGrad } from '../engine/autograd.js';
import { isFloatingDType } from '../engine/dtype.js';
import * as ops from '../engine/ops.generated.js';
import { tidy } from '../engine/scope.js';
import type { Tensor } from '../engine/tensor.js';
import type { Module } from '../nn/module.js';
import type { Adam } from '../optim/adam.js';

/** The name of the first tensor holding a NaN or an infinity, or null when all are finite. */
export function firstNonFinite(tensors: Iterable<readonly [string, Tensor]>): string | null {
  const named = [...tensors].filter(([, t]) => isFloatingDType(t.dtype));
  if (named.length === 0) return null;
  return tidy(() =>
    noGrad(() => {
      const finite = ops.stack(named.map(([, t]) => ops.all(ops.isfinite(t))));
      if (ops.all(finite).item()) return null;
      const each = finite.toArray() as (boolean | number)[];
      return named[each.findIndex((ok) => !ok)]![0];
    }),
  );
}

/**
 * Why a trained state is not fit to save — a tensor holding a NaN or an infinity, or a probe
 * loss that is not finite — or null when it is.
 */
export function unfitState(
  state: { model: Module; optimizer: Adam },
  probeLoss?: () => number,
): string | null {
  const moments = [...state.optimizer.stateDict().tensors].map(
    ([key, t]) => [`the optimizer's ${key}`, t] as const,
  );
  const bad = firstNonFinite([...state.model.stateDict(), ...moments]);
  if (bad !== null) return `${bad} holds a NaN or an infinity`;
  const loss = probeLoss?.() ?? 0;
  return Number.isFinite(loss) ? null : `the weights give a loss of ${loss} on the probe batch`;
}
