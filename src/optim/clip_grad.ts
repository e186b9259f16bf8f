// Gradient clipping by global L2 norm, as torch.nn.utils.clip_grad_norm_.
import { Tensor } from '../engine/tensor.js';
import { noGrad } from '../engine/autograd.js';
import { tidy } from '../engine/scope.js';
import * as ops from '../engine/ops.generated.js';

/** Scales gradients so their joint L2 norm is at most maxNorm; returns the norm before clipping. */
export function clipGradNorm(params: Tensor[], maxNorm: number): number {
  return noGrad(() =>
    tidy(() => {
      const grads = params.map((p) => p.grad).filter((g): g is Tensor => g !== null);
      if (grads.length === 0) return 0;
      const norms = grads.map((g) => ops.vectorNorm(g, 2, null, false, 'float32'));
      const total = ops.vectorNorm(ops.stack(norms), 2).item();
      const coef = maxNorm / (total + 1e-6);
      if (coef < 1) for (const g of grads) ops.mulScalar_(g, coef);
      return total;
    }),
  );
}
