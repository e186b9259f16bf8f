// Parameter initialisation as torch.nn's defaults, drawing from the global generator (seed it
// with manualSeed for reproducible models) or an explicit one.
import { Tensor } from '../engine/tensor.js';
import { empty } from '../engine/creation.js';
import { noGrad } from '../engine/autograd.js';
import type { Generator } from '../engine/random.js';
import * as ops from '../engine/ops.generated.js';

/** Uniform in [-bound, bound): torch's default for Linear/Conv weights and biases is 1/sqrt(fan_in). */
export function uniformParameter(shape: number[], bound: number, generator?: Generator): Tensor {
  const t = empty(shape);
  noGrad(() => ops.uniform_(t, -bound, bound, generator ?? null));
  return t;
}

export function normalParameter(shape: number[], std: number, generator?: Generator): Tensor {
  const t = empty(shape);
  noGrad(() => ops.normal_(t, 0, std, generator ?? null));
  return t;
}
