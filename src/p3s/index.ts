// P3S-Diffusion's public API: point supervision (Sec. III-A: clicks → masks and filled photos),
// fine-tuning an adapter (Sec. III-B), generation, the adapter file, and the pieces a caller
// may compose itself (the injected U-Net, the training method).
export {
  runMaskJob,
  type MaskJob,
  type MaskJobOptions,
  type MaskJobResult,
  type MaskSettings,
} from './supervision/mask_job.js';
export { MASK_SETTINGS } from './supervision/mask_settings.js';
export {
  readAnnotation,
  parseAnnotation,
  AnnotationError,
  type SubjectAnnotation,
  type AnnotatedImage,
  type Point,
} from './supervision/annotations.js';
export {
  trainP3S,
  type TrainP3SConfig,
  type TrainP3SResult,
  type TrainRunOptions,
  type TrainSettings,
} from './train.js';
export { TRAIN_SETTINGS } from './train_settings.js';
export {
  generateP3S,
  sampleP3S,
  type GenerateP3SConfig,
  type GenerateP3SResult,
  type GenerateRunOptions,
  type GenerateSettings,
  type GeneratedImage,
  type GenerateProgress,
  type ReferenceChoice,
  type SampleRequest,
  type SamplingModels,
} from './generate.js';
export { GENERATE_SETTINGS } from './generate_settings.js';
export {
  rankingPath,
  RANKING_PROMPTS,
  RANKING_SEEDS,
  type ReferenceRanking,
} from './reference_ranking.js';
export {
  loadAdapter,
  readAdapter,
  readAdapterMetadata,
  AdapterError,
  type AdapterMetadata,
  type LoadedAdapter,
} from './adapter/adapter_io.js';
export {
  P3SAdapter,
  P3SUNet,
  type P3SSettings,
  type SubjectCondition,
} from './adapter/p3s_unet.js';
export { INJECTION_MODES, type InjectionMode } from './adapter/injection.js';
export {
  parseWeightCurve,
  formatWeightCurve,
  type WeightCurve,
} from './adapter/weight_schedule.js';
export { P3SMethod } from './method.js';
export { ReferencePhotoError } from './references.js';
