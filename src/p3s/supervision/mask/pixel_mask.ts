// Eq. (2) at pixel level: the smoothed similarity maps are brought to the photo's size, refined
// with the photo as guide (guided_filter.ts), thresholded by Otsu, and kept to the components
// under the clicks — so a mask of a subject two or three patches wide follows its outline
// rather than the patch lattice.
import {
  constantMapFallback,
  dilateMask,
  keepComponentsAtPoints,
  otsuThreshold,
  smooth,
  suppressedMap,
} from './eq2_steps.js';
import type { GridPoint } from './grid.js';
import { GuidedFilter } from './guided_filter.js';
import {
  resolveMaskOptions,
  type MaskInputs,
  type MaskOptions,
  type ResolvedMaskOptions,
} from './mask_options.js';
import { maskResult, type MaskFallback, type MaskResult } from './mask_result.js';
import { resizeBilinear } from './resize.js';

/** Eq. (2) with explicit roles (see {@link MaskInputs}), thresholded on the photo's pixels. */
export function pixelMaskFromSimilarity(inputs: MaskInputs, options: MaskOptions): MaskResult {
  const o = resolveMaskOptions(inputs, options);
  const { height: h, width: w } = inputs;
  const { imageHeight: ih, imageWidth: iw } = o;
  const filter = guidedFilterFor(o, w);
  const fallbacks: MaskFallback[] = [];
  // Ψ on the grid, then to pixels, then (with a photo) edge-aware refinement.
  const { softMap, rival } = smoothedMaps(inputs, o, fallbacks);
  const toPixelMap = (grid: Float64Array): Float64Array => {
    const up = resizeBilinear(grid, h, w, ih, iw);
    return filter ? filter.filter(up) : up;
  };
  const score = toPixelMap(softMap);
  // Otsu over the whole photo, as Eq. (2): splitting only the pixels the positive click wins
  // would cut the subject in photos whose clicks were propagated (docs/annotations.md).
  const threshold = otsuThreshold(score, o.nbins, 'refined', fallbacks); // Eq. (2): Otsu
  const foreground = pixelForeground(score, rival && toPixelMap(rival), threshold);
  const points = toPixels(inputs.points, h, w, ih, iw);
  const kept = keepComponentsAtPoints(foreground, ih, iw, o.connectivity, points, fallbacks);
  const mask = dilateMask(kept.mask, o);
  return maskResult(inputs, o, {
    level: 'pixel',
    mask,
    softMap,
    gridMask: sampleGrid(mask, ih, iw, h, w),
    threshold,
    kept,
    fallbacks,
  });
}

/**
 * The guided filter of the options' photo (null without one), its radius one patch unless given.
 * A filter already bound to the photo is used as it is.
 */
function guidedFilterFor(o: ResolvedMaskOptions, gridWidth: number): GuidedFilter | null {
  const { guide, imageHeight: ih, imageWidth: iw } = o;
  if (!guide) return null;
  if (guide.width !== iw || guide.height !== ih) {
    throw new Error(
      `Expected a ${iw}×${ih} guide photo but received ${guide.width}×${guide.height}`,
    );
  }
  if (guide instanceof GuidedFilter) return guide;
  return new GuidedFilter(guide, {
    radius: o.guideRadius ?? Math.max(1, Math.round(iw / gridWidth)),
    eps: o.guideEps,
  });
}

/**
 * The grid maps Otsu will see at pixel level: Ψ(M_P·(1 − M_N)) under the product rule; under the
 * compare rule Ψ(M_P), with Ψ(M_N) as the rival each pixel must not score below.
 */
function smoothedMaps(
  inputs: MaskInputs,
  o: ResolvedMaskOptions,
  fallbacks: MaskFallback[],
): { softMap: Float64Array; rival: Float64Array | null } {
  if (o.rule === 'product') {
    const product = suppressedMap(inputs, o.normalization); // Eq. (2): M_P·(1 − M_N)
    if (product.constantTarget) fallbacks.push(constantMapFallback('target'));
    return { softMap: smooth(product.map, inputs, o), rival: null }; // Eq. (2): Ψ
  }
  // Raw cosines, not min-max normalised: the two maps must stay on one scale to be compared.
  const { target, suppressor } = inputs;
  return {
    softMap: smooth(Float64Array.from(target), inputs, o),
    rival: suppressor ? smooth(Float64Array.from(suppressor), inputs, o) : null,
  };
}

/** Pixels above the Otsu threshold that (under the compare rule) also win against the rival. */
function pixelForeground(
  score: Float64Array,
  rival: Float64Array | null,
  threshold: number,
): Uint8Array {
  const foreground = new Uint8Array(score.length);
  for (let i = 0; i < foreground.length; i++) {
    foreground[i] = score[i]! > threshold && (!rival || score[i]! >= rival[i]!) ? 1 : 0;
  }
  return foreground;
}

/** Grid points (cell units) to pixel points of the image the grid covers. */
function toPixels(points: readonly GridPoint[], h: number, w: number, ih: number, iw: number) {
  return points.map((p) => ({
    x: Math.min(iw - 1e-6, (p.x * iw) / w),
    y: Math.min(ih - 1e-6, (p.y * ih) / h),
  }));
}

/** The h×w grid cells whose centre pixel is set in an ih×iw pixel mask. */
export function sampleGrid(
  mask: Uint8Array,
  ih: number,
  iw: number,
  h: number,
  w: number,
): Uint8Array {
  const grid = new Uint8Array(h * w);
  for (let y = 0; y < h; y++) {
    const py = Math.min(ih - 1, Math.floor(((y + 0.5) * ih) / h));
    for (let x = 0; x < w; x++) {
      const px = Math.min(iw - 1, Math.floor(((x + 0.5) * iw) / w));
      grid[y * w + x] = mask[py * iw + px]!;
    }
  }
  return grid;
}
