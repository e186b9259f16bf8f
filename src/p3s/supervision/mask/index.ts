// Mask post-processing of the RNGR encoder (paper Sec. III-A, Eq. 2) on plain typed-array grids.
export { gaussianFilter, gaussianKernel1d } from './gaussian.js';
export type { BoundaryMode, GaussianOptions } from './gaussian.js';
export { histogram, thresholdOtsu } from './otsu.js';
export type { Histogram, OtsuThreshold } from './otsu.js';
export {
  keepComponentsContaining,
  labelComponents,
  maskOfLabels,
  nearestComponent,
} from './components.js';
export type { Connectivity, KeptComponents, Labeling } from './components.js';
export { resizeBilinear, resizeNearest } from './resize.js';
export { binaryDilation, binaryErosion, diskHalfWidths } from './morphology.js';
export { maskFromSimilarity } from './grid_mask.js';
export { distractorMask, subjectMask } from './subject_mask.js';
export { pixelMaskFromSimilarity, sampleGrid } from './pixel_mask.js';
export { boundSpreadMask, SPREAD_AREA_LIMIT } from './spread_mask.js';
export { boxMean, guidedFilter, GuidedFilter } from './guided_filter.js';
export type { GuideImage, GuidedFilterOptions } from './guided_filter.js';
export type {
  MaskInputs,
  MaskOptions,
  Normalization,
  SuppressionRule,
  UpsampleMode,
} from './mask_options.js';
export type { MaskFallback, MaskFallbackCode, MaskResult } from './mask_result.js';
export type { PointSimilarity } from './subject_mask.js';
export { cellIndexOf, imageToGridPoint } from './grid.js';
export type { FloatGrid, GridPoint } from './grid.js';
