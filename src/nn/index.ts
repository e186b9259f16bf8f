export { Module, ModuleList, StateDictError, type LoadResult } from './module.js';
export { Linear, Conv2d, GroupNorm, LayerNorm, Embedding, type Conv2dOptions } from './layers.js';
export * as F from './functional.js';
export {
  uniformParameter,
  normalParameter,
  constantParameter,
  withParameterDefaults,
} from './init.js';
