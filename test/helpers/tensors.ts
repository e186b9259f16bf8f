// Assertions on tensors for tests.
import assert from 'node:assert/strict';
import { Tensor } from '../../src/engine/tensor.js';

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length, `length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Asserts |actual - expected| <= atol + rtol·|expected| elementwise, with the shape equal. */
export function assertClose(
  actual: Tensor,
  expected: { shape: readonly number[]; data: ArrayLike<number> },
  options: { atol?: number; rtol?: number; label?: string } = {},
): void {
  const { atol = 1e-5, rtol = 1e-5, label = '' } = options;
  assert.deepEqual([...actual.shape], [...expected.shape], `${label} shape`);
  const got = actual.toArray();
  let worst = -1;
  let worstErr = 0;
  for (let i = 0; i < got.length; i++) {
    const e = expected.data[i]!;
    const err = Math.abs(got[i]! - e) - (atol + rtol * Math.abs(e));
    if (!(err <= 0) && (worst < 0 || err > worstErr)) {
      worst = i;
      worstErr = err;
    }
  }
  if (worst >= 0) {
    assert.fail(
      `${label} differs at ${worst}: got ${got[worst]}, expected ${expected.data[worst]} (atol ${atol}, rtol ${rtol}; max abs diff ${maxAbsDiff(got, expected.data)})`,
    );
  }
}
