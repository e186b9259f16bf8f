// Freeing activations as a forward pass goes, so the VAE's peak memory is a layer's, not a
// whole pass's: at 512×512 one activation is 134–268 MB and the decoder makes ~60 of them.
import { Tensor } from '../../engine/tensor.js';
import { tidy } from '../../engine/scope.js';

/**
 * Runs `layer(x)` in its own tidy() scope and then frees `x`, unless `x` is `input` (the
 * caller's tensor, which is not ours to free). Autograd keeps what it saved for backward, so
 * this is safe under gradient tracking as well.
 */
export function step(x: Tensor, input: Tensor, layer: (x: Tensor) => Tensor): Tensor {
  const y = tidy(() => layer(x));
  if (x !== input && y !== x) x.dispose();
  return y;
}
