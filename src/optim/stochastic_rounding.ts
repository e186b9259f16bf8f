// float32 → bfloat16 with stochastic rounding: each value goes to the bfloat16 neighbour above or
// below with a probability proportional to its distance from the other, so the rounding is
// unbiased. Optimizer state needs this in 16 bits: Adam adds (1 − β2)·g² = 0.001·g² to v each
// step, less than half of bfloat16's spacing (2⁻⁸ relative), which round-to-nearest would drop
// every time and leave v stuck.
//
// bfloat16 is float32's upper 16 bits. Adding a uniform integer in [0, 2¹⁶) to a float32's bits
// and clearing the lower 16 carries into the upper half with probability (lower half)/2¹⁶: the
// magnitude rounds up (away from zero) exactly that often, whatever the sign, since the sign is
// a bit of its own. Integer work only, on the value's own bytes: no log, pow or float temporaries.
import { noGrad } from '../engine/autograd.js';
import { randint } from '../engine/creation.js';
import * as ops from '../engine/ops.generated.js';
import type { Generator } from '../engine/random.js';
import { tidy } from '../engine/scope.js';
import type { Tensor } from '../engine/tensor.js';

/** The bits bfloat16 drops from a float32. */
const DROPPED = 2 ** 16;
/** 0xFFFF0000 as a signed 32-bit integer: keeps the upper 16 bits. */
const UPPER_HALF = -DROPPED;

/**
 * x (float32) rounded stochastically to bfloat16, drawing from `generator`: between its two
 * bfloat16 neighbours, the far one is chosen with probability |x − nearest| / their spacing.
 */
export function stochasticBFloat16(x: Tensor, generator: Generator): Tensor {
  if (x.dtype !== 'float32')
    throw new TypeError(`Expected a float32 tensor to round but received ${x.dtype}`);
  return noGrad(() =>
    tidy(() => {
      const bits = ops.viewDtype(x.contiguous(), 'int32');
      const carry = randint(0, DROPPED, x.shape, { generator, dtype: 'int32' });
      ops.add_(carry, bits);
      const rounded = ops.bitwiseAndScalar(carry, UPPER_HALF);
      return ops.viewDtype(rounded, 'float32').to('bfloat16');
    }),
  );
}
