// Whether tensors hold only finite values: the check that keeps NaN and infinity out of every
// checkpoint, adapter and image p3s writes. One isfinite-all reduction per tensor and a single
// read of the combined result: one pass over the values, one sync.
import { noGrad } from './autograd.js';
import { isFloatingDType } from './dtype.js';
import * as ops from './ops.generated.js';
import { tidy } from './scope.js';
import type { Tensor } from './tensor.js';

/** Whether every value of `t` is finite (integer and boolean tensors always are). */
export function allFinite(t: Tensor): boolean {
  if (!isFloatingDType(t.dtype)) return true;
  return tidy(() => noGrad(() => Boolean(ops.all(ops.isfinite(t)).item())));
}

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
