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
export {
  readImage,
  writePng,
  readPngText,
  imageToTensor,
  tensorToImage,
  type RgbImage,
} from './io/image.js';
export * from './p3s/index.js';
export * from './training/index.js';
export * as baselines from './baselines/index.js';
export { SettingError } from './settings/kinds.js';
export * as settings from './settings/table.js';
export * as toyworld from './toyworld/index.js';
