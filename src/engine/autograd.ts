// Grad-mode scopes. Each runs a synchronous function with the mode set and restores it after,
// also when the function throws.
import { native } from './native.js';

/** Runs fn without recording operations for autograd (torch.no_grad). */
export function noGrad<T>(fn: () => T): T {
  return native.withGradMode('disabled', fn);
}

/** Runs fn with autograd recording on, even inside noGrad (torch.enable_grad). */
export function enableGrad<T>(fn: () => T): T {
  return native.withGradMode('enabled', fn);
}

/** Runs fn in inference mode: faster than noGrad; its tensors can never enter autograd. */
export function inferenceMode<T>(fn: () => T): T {
  return native.withGradMode('inference', fn);
}

export function isGradEnabled(): boolean {
  return native.gradEnabled();
}
