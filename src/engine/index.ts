// The p3s engine: tensors, operators, autograd and memory on libtorch.
export { Tensor, type TensorOrScalar } from './tensor.js';
export { type DType, ITEM_SIZE, isFloatingDType } from './dtype.js';
export {
  tensor,
  fromFile,
  zeros,
  ones,
  full,
  empty,
  arange,
  randn,
  rand,
  randint,
  randperm,
} from './creation.js';
export type { CreateOptions, RandomOptions } from './creation.js';
export { tidy, keep, disposeAll, memory, resetPeakInUse } from './scope.js';
export { noGrad, enableGrad, inferenceMode, isGradEnabled } from './autograd.js';
export { Generator, manualSeed } from './random.js';
export { cuda, libtorchVersion, setNumThreads, getNumThreads } from './device.js';
export { call, callOp, findOp, hasOp, opSchema } from './ops.js';
export * as ops from './ops.generated.js';
