// What both paths of Eq. (2) return: the image-size mask, the maps and components behind it, and
// every fallback taken, so a caller can tell a plain Eq. (2) result from a repaired one.
import type { Labeling } from './components.js';
import type { MaskInputs, MaskOptions } from './mask_options.js';

/** Why the result is not the plain Eq. (2) output. `message` says what was done instead. */
export type MaskFallbackCode =
  | 'constant-target-map'
  | 'constant-suppressor-map'
  | 'degenerate-map'
  | 'point-in-background'
  | 'upsample-fell-back-to-nearest'
  | 'look-alike-mask-bounded'
  | 'subject-mask-bounded'
  | 'empty-subject-mask';

export interface MaskFallback {
  code: MaskFallbackCode;
  message: string;
}

export interface MaskResult {
  /** Binary mask (0/1), imageHeight×imageWidth, row-major. */
  mask: Uint8Array;
  height: number;
  width: number;
  /** Pixels set in `mask`. */
  maskArea: number;
  /**
   * Ψ(M_target·(1 − M_suppressor)) on the grid (Ψ(M_target) under the compare rule), before
   * thresholding (float64).
   */
  softMap: Float64Array;
  /** Kept grid cells (0/1); for pixel-level masks, the cells whose centre pixel is in `mask`. */
  gridMask: Uint8Array;
  gridHeight: number;
  gridWidth: number;
  /** Otsu threshold; foreground is above it (on `softMap` at grid level, its refined pixels otherwise). */
  threshold: number;
  /** Where Otsu and the component step ran: the patch grid, or the photo's pixels. */
  level: 'grid' | 'pixel';
  /** Component labels of the foreground at `level` (raster-order numbering). */
  labels: Int32Array;
  componentCount: number;
  /** Cells (or pixels) per component; index k is label k + 1. */
  componentAreas: number[];
  keptLabels: number[];
  /** Empty when Eq. (2) applied as written. */
  fallbacks: MaskFallback[];
}

/** The components kept at `level`: their labelling, their mask and their labels. */
export interface KeptSelection {
  labeling: Labeling;
  mask: Uint8Array;
  keptLabels: number[];
}

/** The parts of a MaskResult each path computes; the rest follows from them. */
export interface MaskParts {
  level: 'grid' | 'pixel';
  /** The final image-size mask (after any dilation). */
  mask: Uint8Array;
  softMap: Float64Array;
  gridMask: Uint8Array;
  threshold: number;
  kept: KeptSelection;
  fallbacks: MaskFallback[];
}

export function countSet(mask: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < mask.length; i++) n += mask[i];
  return n;
}

export function maskResult(inputs: MaskInputs, options: MaskOptions, parts: MaskParts): MaskResult {
  const { mask, kept } = parts;
  return {
    mask,
    height: options.imageHeight,
    width: options.imageWidth,
    maskArea: countSet(mask),
    softMap: parts.softMap,
    gridMask: parts.gridMask,
    gridHeight: inputs.height,
    gridWidth: inputs.width,
    threshold: parts.threshold,
    level: parts.level,
    labels: kept.labeling.labels,
    componentCount: kept.labeling.count,
    componentAreas: kept.labeling.areas,
    keptLabels: kept.keptLabels,
    fallbacks: parts.fallbacks,
  };
}
