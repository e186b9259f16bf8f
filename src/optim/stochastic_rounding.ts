// float32 → bfloat16 with stochastic rounding: each value goes to the bfloat16 neighbour above or
// below with a probability proportional to its distance from the other, so the rounding is
// unbiased. Optimizer state needs this in 16 bits: Adam adds (1 − β2)·g² = 0.001·g² to v each
// step, less than half of bfloat16's spacing (2⁻⁸ relative), which round-to-nearest would drop
// every time and leave v stuck.
import { noGrad } from '../engine/autograd.js';
import { rand } from '../engine/creation.js';
import * as ops from '../engine/ops.generated.js';
import type { Generator } from '../engine/random.js';
import { tidy } from '../engine/scope.js';
import type { Tensor } from '../engine/tensor.js';

/** bfloat16 keeps 7 explicit mantissa bits: its spacing in [2^e, 2^(e+1)) is 2^(e − 7). */
const BFLOAT16_MANTISSA_BITS = 7;

/** 2^floor(log2 |x|) per element (0 for 0), exact: the log's rounding is corrected both ways. */
function binadeBase(abs: Tensor): Tensor {
  const estimate = ops.pow(
    ops.fullLike(abs, 2),
    ops.floor(ops.mulScalar(ops.log(abs), 1 / Math.LN2)),
  );
  const tooHigh = ops.gt(estimate, abs).to('float32');
  const tooLow = ops.le(ops.mulScalar(estimate, 2), abs).to('float32');
  // at most one of the two holds; 0 stays 0 either way
  return estimate.mul(tooLow.add(1).sub(tooHigh.mul(0.5)));
}

/**
 * x (float32) rounded stochastically to bfloat16, drawing from `generator`: between its two
 * bfloat16 neighbours, the far one is chosen with probability |x − nearest| / their spacing.
 */
export function stochasticBFloat16(x: Tensor, generator: Generator): Tensor {
  return noGrad(() =>
    tidy(() => {
      const nearest = x.to('bfloat16').to('float32');
      const offset = x.sub(nearest);
      const size = nearest.abs();
      const base = binadeBase(size);
      // Towards zero from a power of two the spacing is half the binade's.
      const towardsZero = ops.lt(offset.mul(nearest), ops.zerosLike(x)).to('float32');
      const halved = towardsZero.mul(ops.eq(size, base).to('float32'));
      const spacing = base.mul(2 ** -BFLOAT16_MANTISSA_BITS).mul(halved.mul(-0.5).add(1));
      const zero = ops.zerosLike(x);
      const direction = ops.gt(offset, zero).to('float32').sub(ops.lt(offset, zero).to('float32'));
      const other = nearest.add(direction.mul(spacing));
      const farther = ops.lt(rand(x.shape, { generator }), offset.abs().div(spacing));
      return ops.where(farther, other, nearest).to('bfloat16');
    }),
  );
}
