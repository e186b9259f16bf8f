// Parameter initialisation as torch.nn's defaults, drawing from the global generator (seed it
// with manualSeed for reproducible models) or an explicit one.
//
// withParameterDefaults({ dtype, skipInit }) builds modules whose parameters are created in a
// dtype and left uninitialised — for models whose weights come from a checkpoint right after, so
// loading SD 1.5 in fp16 never materialises a random fp32 copy first.
import { Tensor } from '../engine/tensor.js';
import { empty, full } from '../engine/creation.js';
import { noGrad } from '../engine/autograd.js';
import type { Generator } from '../engine/random.js';
import type { DType } from '../engine/dtype.js';
import * as ops from '../engine/ops.generated.js';

interface ParameterDefaults {
  dtype: DType;
  skipInit: boolean;
}

const stack: ParameterDefaults[] = [];

function defaults(): ParameterDefaults {
  return stack[stack.length - 1] ?? { dtype: 'float32', skipInit: false };
}

/** Runs fn with parameters created in `dtype` and, with skipInit, left uninitialised. */
export function withParameterDefaults<T>(options: Partial<ParameterDefaults>, fn: () => T): T {
  stack.push({ ...defaults(), ...options });
  try {
    return fn();
  } finally {
    stack.pop();
  }
}

/** Uniform in [-bound, bound): torch's default for Linear/Conv weights and biases is 1/sqrt(fan_in). */
export function uniformParameter(shape: number[], bound: number, generator?: Generator): Tensor {
  const { dtype, skipInit } = defaults();
  const t = empty(shape, { dtype });
  if (!skipInit) noGrad(() => ops.uniform_(t, -bound, bound, generator ?? null));
  return t;
}

export function normalParameter(shape: number[], std: number, generator?: Generator): Tensor {
  const { dtype, skipInit } = defaults();
  const t = empty(shape, { dtype });
  if (!skipInit) noGrad(() => ops.normal_(t, 0, std, generator ?? null));
  return t;
}

/** A parameter filled with a constant (norm weights 1, biases 0). */
export function constantParameter(shape: number[], value: number): Tensor {
  const { dtype, skipInit } = defaults();
  return skipInit ? empty(shape, { dtype }) : full(shape, value, { dtype });
}
