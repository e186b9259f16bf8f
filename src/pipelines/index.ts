// Sampling pipelines built from the models: Stable Diffusion 1.x text-to-image, and the
// denoising loop (classifier-free guidance over any noise predictor) that P3S reuses.
export {
  StableDiffusionPipeline,
  NonFiniteError,
  denoise,
  usesGuidance,
  type SamplingScheduler,
  type NoisePredictor,
  type StepInfo,
  type OnStep,
  type DenoiseOptions,
  type SchedulerChoice,
  type StableDiffusionFromPretrainedOptions,
  type StableDiffusionComponents,
  type PromptEmbeds,
  type EncodePromptOptions,
  type GenerateOptions,
  type GenerateOutput,
} from './stable_diffusion.js';
export {
  estimateSamplingMemory,
  allocatorAllowance,
  largestFittingSide,
  sizeMultiple,
  vaeScale,
  formatBytes,
  type SamplingMemoryRequest,
  type MemoryEstimate,
  type UNetShape,
  type VaeShape,
} from './memory_budget.js';
