// Whether a run's weights are fit to save: no NaN or infinity in the weights or the optimizer's
// moments, and — weights can be finite yet so large that the model computes NaN — a finite loss
// on a fixed probe batch when the run gives one. Checked before every checkpoint and adapter is
// written, so none ever holds garbage.
import { firstNonFinite } from '../engine/finite.js';
import type { Module } from '../nn/module.js';
import type { Adam } from '../optim/adam.js';

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
