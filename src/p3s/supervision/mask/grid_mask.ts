// Eq. (2) on the patch grid, as the paper writes it: Mask = Otsu(Ψ(M_P·(1 − M_N))) from patch
// similarity maps (Eq. 1) computed elsewhere, followed by the paper's "remove outliers that are
// not connected to the specified points", upsampling to image size and an optional dilation.
// Also the options, results and checks the pixel path (pixel_mask.ts) shares.
import {
  keepComponentsContaining,
  labelComponents,
  maskOfLabels,
  nearestComponent,
  type Connectivity,
  type Labeling,
} from './components.js';
import type { GuidedFilter, GuideImage } from './guided_filter.js';
import { gaussianFilter, type BoundaryMode } from './gaussian.js';
import {
  assertGrid,
  assertPositiveInteger,
  cellIndexOf,
  type FloatGrid,
  type GridPoint,
} from './grid.js';
import { binaryDilation } from './morphology.js';
import { thresholdOtsu } from './otsu.js';
import { resizeBilinear, resizeNearest } from './resize.js';

/**
 * How each similarity map is brought to [0, 1] before Eq. (2).
 * - 'minmax' (default): (M − min) / (max − min) per map. Raw CLIP patch cosines sit well above 0
 *   almost everywhere (patch tokens share a large common component), so with raw values
 *   (1 − M_N) would only scale the whole map down by a similar factor and barely suppress the
 *   look-alike. Min-max makes the patch most like the point 1 and the least like 0, so
 *   (1 − M_N) is 0 on the negative subject and 1 where nothing resembles it, whatever CLIP's
 *   cosine offset is; it also keeps negative cosines from flipping signs in the product. (Otsu
 *   alone would not care about an affine rescaling, but the product of two maps does.)
 * - 'clip': clamp to [0, 1], for maps that are already probabilities.
 * - 'none': use the values as given.
 */
export type Normalization = 'minmax' | 'clip' | 'none';

/** How the grid-level selection becomes an image-size mask. */
export type UpsampleMode = 'bilinear' | 'nearest';

export interface MaskOptions {
  /** Size of the image the mask is for (the grid covers it evenly). */
  imageHeight: number;
  imageWidth: number;
  /** σ of the Gaussian Ψ, in grid cells. Default 1; 0 skips smoothing. */
  sigma?: number;
  /** Boundary mode of Ψ. Default 'reflect' (scipy's default). */
  gaussianMode?: BoundaryMode;
  /** Default 'minmax'; see {@link Normalization}. */
  normalization?: Normalization;
  /** Histogram bins for Otsu. Default 256 (skimage's default). */
  nbins?: number;
  /** Component connectivity on the grid. Default 4 (scipy.ndimage.label's default). */
  connectivity?: Connectivity;
  /**
   * 'bilinear' (default): upsample the smoothed map bilinearly (align_corners=false) and threshold
   * it at the same Otsu threshold, which gives smooth outlines instead of 32-pixel staircases;
   * foreground cells of components that were not kept are first lowered to the map's minimum so
   * they cannot reappear. 'nearest': blocky upsampling of the kept grid cells.
   */
  upsample?: UpsampleMode;
  /** Dilate the image-size mask by a disk of this radius in pixels (0 = none, the default). */
  dilateRadius?: number;
  /** How the negative map removes the look-alike; default 'product' (see {@link SuppressionRule}). */
  rule?: SuppressionRule;
  /**
   * The photo itself: the maps are refined at pixel level with the colour guided filter before
   * thresholding, so the mask follows the photo's edges instead of the patch lattice. A
   * GuidedFilter already bound to the photo may be passed instead, so the subject's and the
   * look-alike's masks share the photo's window statistics.
   */
  guide?: GuideImage | GuidedFilter;
  /** Guided filter radius in pixels (for a GuideImage); default: one patch (imageWidth / grid width). */
  guideRadius?: number;
  /** Guided filter ε on colours in [0, 1] (for a GuideImage); default 1e-3. */
  guideEps?: number;
}

/**
 * - 'product': Eq. (2) as written, Otsu(Ψ(M_P·(1 − M_N))).
 * - 'compare': Otsu(Ψ(M_P)) restricted to where Ψ(M_P) ≥ Ψ(M_N): a patch belongs to the subject
 *   when it resembles the positive click and resembles it at least as much as the negative one.
 *   A look-alike is, by definition, close to the subject in CLIP space, so M_N is high on the
 *   subject too and the product suppresses the subject along with the look-alike; comparing the
 *   two raw cosine maps (same scale, no min-max) keeps it. Thresholding then runs at pixel level.
 */
export type SuppressionRule = 'product' | 'compare';

/** Why the result is not the plain Eq. (2) output. `message` says what was done instead. */
export type MaskFallbackCode =
  | 'constant-target-map'
  | 'constant-suppressor-map'
  | 'degenerate-map'
  | 'point-in-background'
  | 'upsample-fell-back-to-nearest'
  | 'look-alike-mask-bounded';

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
  /** Ψ(M_target·(1 − M_suppressor)) on the grid, before thresholding (float64). */
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

/**
 * "Remove outliers that are not connected to the specified points": the labels under the points,
 * or, for a point that fell on background, the nearest component (recorded as a fallback).
 */
export function componentsAtPoints(
  labeling: Labeling,
  points: readonly GridPoint[],
  fallbacks: MaskFallback[],
): Set<number> {
  const { keptLabels: hit, missedPoints } = keepComponentsContaining(labeling, points);
  const keep = new Set(hit);
  if (missedPoints.length > 0 && labeling.count > 0) {
    for (const p of missedPoints) keep.add(nearestComponent(labeling, p));
    fallbacks.push({
      code: 'point-in-background',
      message: `Point ${formatPoints(missedPoints)} is not in the thresholded foreground; the nearest component was kept instead.`,
    });
  }
  return keep;
}

/** Normalises into a new float64 grid; reports whether the map was constant under 'minmax'. */
export function normalize(
  map: FloatGrid,
  mode: Normalization,
): { out: Float64Array; constant: boolean } {
  const out = Float64Array.from(map);
  if (mode === 'none') return { out, constant: false };
  if (mode === 'clip') {
    for (let i = 0; i < out.length; i++) out[i] = Math.min(Math.max(out[i], 0), 1);
    return { out, constant: false };
  }
  let min = Infinity;
  let max = -Infinity;
  for (const v of out) {
    if (v < min) min = v;
    if (v > max) max = v;
  }
  // A constant map says nothing about where the subject is: it becomes all zeros.
  if (!(max > min)) return { out: out.fill(0), constant: true };
  const range = max - min;
  for (let i = 0; i < out.length; i++) out[i] = (out[i] - min) / range;
  return { out, constant: false };
}

export function countSet(mask: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < mask.length; i++) n += mask[i];
  return n;
}

function formatPoints(points: readonly GridPoint[]): string {
  return points.map((p) => `(${p.x}, ${p.y})`).join(', ');
}

/** Argument checks shared by the grid and pixel paths: fail before any work. */
export function validateMaskInputs(
  target: FloatGrid,
  suppressor: FloatGrid | null,
  points: readonly GridPoint[],
  h: number,
  w: number,
  options: MaskOptions,
): void {
  const { imageHeight, imageWidth, upsample = 'bilinear', normalization = 'minmax' } = options;
  assertGrid(target, h, w, 'target similarity map');
  if (suppressor) assertGrid(suppressor, h, w, 'suppressor similarity map');
  assertPositiveInteger(imageHeight, 'imageHeight');
  assertPositiveInteger(imageWidth, 'imageWidth');
  if (upsample !== 'bilinear' && upsample !== 'nearest') {
    throw new Error(`Expected upsample to be bilinear or nearest but received ${upsample}`);
  }
  if (!['minmax', 'clip', 'none'].includes(normalization)) {
    throw new Error(
      `Expected normalization to be one of minmax, clip, none but received ${normalization}`,
    );
  }
  if (points.length === 0) {
    throw new Error('Expected at least one point on the subject but received none');
  }
  // Off-grid points are the caller's mistake.
  for (const p of points) cellIndexOf(p, h, w);
  for (const [name, map] of [
    ['target', target],
    ['suppressor', suppressor],
  ] as const) {
    if (map && map.some((v) => !Number.isFinite(v))) {
      throw new Error(
        `Expected finite values in the ${name} similarity map but found NaN or ±Infinity`,
      );
    }
  }

  const rule = options.rule ?? 'product';
  if (rule !== 'product' && rule !== 'compare') {
    throw new Error(`Expected rule to be product or compare but received ${String(rule)}`);
  }
}

/**
 * Eq. (2) with explicit roles: `target` is the map of the subject to select, `suppressor` the
 * map to remove (null: no suppression), `points` the clicks on the target, in grid coordinates.
 */
export function maskFromSimilarity(
  target: FloatGrid,
  suppressor: FloatGrid | null,
  points: readonly GridPoint[],
  h: number,
  w: number,
  options: MaskOptions,
): MaskResult {
  const {
    imageHeight,
    imageWidth,
    sigma = 1,
    gaussianMode = 'reflect',
    normalization = 'minmax',
    nbins = 256,
    connectivity = 4,
    upsample = 'bilinear',
    dilateRadius = 0,
  } = options;
  validateMaskInputs(target, suppressor, points, h, w, options);
  const fallbacks: MaskFallback[] = [];
  const t = normalize(target, normalization);
  if (t.constant) {
    fallbacks.push({
      code: 'constant-target-map',
      message: 'The target similarity map is constant; it was normalised to zeros.',
    });
  }
  const product = t.out;
  if (suppressor) {
    const s = normalize(suppressor, normalization);
    if (s.constant) {
      fallbacks.push({
        code: 'constant-suppressor-map',
        message: 'The suppressor similarity map is constant; nothing was suppressed.',
      });
    }
    // Eq. (2): M = M_P·(1 − M_N), the similarity to the point minus what resembles the negative.
    for (let i = 0; i < product.length; i++) product[i] *= 1 - s.out[i];
  }
  // Eq. (2): Ψ, the Gaussian filter.
  const softMap = gaussianFilter(product, h, w, sigma, { mode: gaussianMode });
  // Eq. (2): Otsu; foreground is strictly above the threshold, as in skimage.
  const { threshold, degenerate } = thresholdOtsu(softMap, nbins);
  const foreground = new Uint8Array(h * w);
  for (let i = 0; i < foreground.length; i++) foreground[i] = softMap[i] > threshold ? 1 : 0;
  if (degenerate) {
    fallbacks.push({
      code: 'degenerate-map',
      message: `The smoothed map is constant (${threshold}); Otsu has nothing to split, so the mask is empty.`,
    });
  }

  const labeling = labelComponents(foreground, h, w, connectivity);
  const keep = componentsAtPoints(labeling, points, fallbacks);
  const { mask: gridMask, keptLabels } = maskOfLabels(labeling, keep);

  let mask: Uint8Array;
  if (upsample === 'nearest' || keptLabels.length === 0) {
    mask = resizeNearest(gridMask, h, w, imageHeight, imageWidth);
  } else {
    let lowest = Infinity;
    for (const v of softMap) lowest = Math.min(lowest, v);
    const selected = Float64Array.from(softMap);
    for (let i = 0; i < selected.length; i++) {
      if (foreground[i] && !gridMask[i]) selected[i] = lowest;
    }
    const up = resizeBilinear(selected, h, w, imageHeight, imageWidth);
    mask = new Uint8Array(up.length);
    let area = 0;
    for (let i = 0; i < up.length; i++) {
      if (up[i] > threshold) {
        mask[i] = 1;
        area++;
      }
    }
    if (area === 0) {
      // A kept component barely above the threshold can vanish between pixel centres.
      mask = resizeNearest(gridMask, h, w, imageHeight, imageWidth);
      fallbacks.push({
        code: 'upsample-fell-back-to-nearest',
        message:
          'The bilinear upsampling of the kept components fell below the threshold everywhere; the grid cells were upsampled by nearest neighbour instead.',
      });
    }
  }
  if (dilateRadius !== 0) mask = binaryDilation(mask, imageHeight, imageWidth, dilateRadius);

  return {
    mask,
    height: imageHeight,
    width: imageWidth,
    maskArea: countSet(mask),
    softMap,
    gridMask,
    gridHeight: h,
    gridWidth: w,
    threshold,
    level: 'grid',
    labels: labeling.labels,
    componentCount: labeling.count,
    componentAreas: labeling.areas,
    keptLabels,
    fallbacks,
  };
}
