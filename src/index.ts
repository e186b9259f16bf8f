// p3s: selective, subject-driven image generation from point labels (P3S-Diffusion) on libtorch.
export * from './engine/index.js';
export * as nn from './nn/index.js';
export * as optim from './optim/index.js';
export {
  SafetensorsFile,
  SafetensorsError,
  loadSafetensors,
  saveSafetensors,
  type TensorInfo,
} from './io/safetensors.js';
export * as schedulers from './schedulers/index.js';
export * as models from './models/index.js';
export * as pipelines from './pipelines/index.js';
