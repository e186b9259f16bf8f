// The steps of Eq. (2) that the grid path (grid_mask.ts) and the pixel path (pixel_mask.ts)
// share: normalising the maps, M_P·(1 − M_N), Ψ, Otsu, and the paper's "remove outliers that are
// not connected to the specified points". Each path records the fallbacks these steps report.
import {
  keepComponentsContaining,
  labelComponents,
  maskOfLabels,
  nearestComponent,
  type Connectivity,
  type Labeling,
} from './components.js';
import { gaussianFilter } from './gaussian.js';
import type { FloatGrid, GridPoint } from './grid.js';
import { binaryDilation } from './morphology.js';
import type { MaskInputs, Normalization, ResolvedMaskOptions } from './mask_options.js';
import type { KeptSelection, MaskFallback } from './mask_result.js';
import { thresholdOtsu } from './otsu.js';

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

export interface SuppressedMap {
  /** M_target·(1 − M_suppressor), both normalised; M_target alone without a suppressor. */
  map: Float64Array;
  constantTarget: boolean;
  constantSuppressor: boolean;
}

/** Eq. (2)'s product on the grid, before Ψ. */
export function suppressedMap(inputs: MaskInputs, normalization: Normalization): SuppressedMap {
  const t = normalize(inputs.target, normalization);
  if (!inputs.suppressor)
    return { map: t.out, constantTarget: t.constant, constantSuppressor: false };
  const s = normalize(inputs.suppressor, normalization);
  // Eq. (2): M = M_P·(1 − M_N), the similarity to the point minus what resembles the negative.
  for (let i = 0; i < t.out.length; i++) t.out[i] *= 1 - s.out[i]!;
  return { map: t.out, constantTarget: t.constant, constantSuppressor: s.constant };
}

/** What a constant map (reported by {@link suppressedMap}) did to the result. */
export function constantMapFallback(role: 'target' | 'suppressor'): MaskFallback {
  return role === 'target'
    ? {
        code: 'constant-target-map',
        message: 'The target similarity map is constant; it was normalised to zeros.',
      }
    : {
        code: 'constant-suppressor-map',
        message: 'The suppressor similarity map is constant; nothing was suppressed.',
      };
}

/** Eq. (2): Ψ, the Gaussian filter on the grid. */
export function smooth(
  map: Float64Array,
  inputs: MaskInputs,
  o: ResolvedMaskOptions,
): Float64Array {
  return gaussianFilter(map, inputs.height, inputs.width, o.sigma, { mode: o.gaussianMode });
}

/**
 * Eq. (2): Otsu's threshold of `map`; foreground is strictly above it, as in skimage. A constant
 * map has nothing to split: the threshold is its value, the mask is empty, and a fallback says so.
 */
export function otsuThreshold(
  map: Float64Array,
  nbins: number,
  what: 'smoothed' | 'refined',
  fallbacks: MaskFallback[],
): number {
  const { threshold, degenerate } = thresholdOtsu(map, nbins);
  if (degenerate) {
    fallbacks.push({
      code: 'degenerate-map',
      message: `The ${what} map is constant (${threshold}); Otsu has nothing to split, so the mask is empty.`,
    });
  }
  return threshold;
}

/**
 * "Remove outliers that are not connected to the specified points": labels the foreground and
 * keeps the components under the points, or, for a point that fell on background, the nearest
 * component (recorded as a fallback).
 */
export function keepComponentsAtPoints(
  foreground: Uint8Array,
  h: number,
  w: number,
  connectivity: Connectivity,
  points: readonly GridPoint[],
  fallbacks: MaskFallback[],
): KeptSelection {
  const labeling = labelComponents(foreground, h, w, connectivity);
  const keep = labelsAtPoints(labeling, points, fallbacks);
  return { labeling, ...maskOfLabels(labeling, keep) };
}

function labelsAtPoints(
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

function formatPoints(points: readonly GridPoint[]): string {
  return points.map((p) => `(${p.x}, ${p.y})`).join(', ');
}

/** The optional dilation of the image-size mask (`dilateRadius` 0 leaves it as is). */
export function dilateMask(mask: Uint8Array, o: ResolvedMaskOptions): Uint8Array {
  if (o.dilateRadius === 0) return mask;
  return binaryDilation(mask, o.imageHeight, o.imageWidth, o.dilateRadius);
}
