// Eq. (2) on the patch grid, as the paper writes it: Mask = Otsu(Ψ(M_P·(1 − M_N))) from patch
// similarity maps (Eq. 1) computed elsewhere, followed by the paper's "remove outliers that are
// not connected to the specified points", upsampling to image size and an optional dilation.
import {
  constantMapFallback,
  dilateMask,
  keepComponentsAtPoints,
  otsuThreshold,
  smooth,
  suppressedMap,
} from './eq2_steps.js';
import {
  resolveMaskOptions,
  type MaskInputs,
  type MaskOptions,
  type ResolvedMaskOptions,
} from './mask_options.js';
import {
  countSet,
  maskResult,
  type KeptSelection,
  type MaskFallback,
  type MaskResult,
} from './mask_result.js';
import { resizeBilinear, resizeNearest } from './resize.js';

/** Eq. (2) with explicit roles (see {@link MaskInputs}), thresholded on the grid. */
export function maskFromSimilarity(inputs: MaskInputs, options: MaskOptions): MaskResult {
  const o = resolveMaskOptions(inputs, options);
  const { height: h, width: w, points } = inputs;
  const fallbacks: MaskFallback[] = [];
  const product = suppressedMap(inputs, o.normalization); // Eq. (2): M_P·(1 − M_N)
  if (product.constantTarget) fallbacks.push(constantMapFallback('target'));
  if (product.constantSuppressor) fallbacks.push(constantMapFallback('suppressor'));
  const softMap = smooth(product.map, inputs, o); // Eq. (2): Ψ
  const threshold = otsuThreshold(softMap, o.nbins, 'smoothed', fallbacks); // Eq. (2): Otsu
  const foreground = above(softMap, threshold);
  const kept = keepComponentsAtPoints(foreground, h, w, o.connectivity, points, fallbacks);
  const selection: GridSelection = { softMap, foreground, threshold, kept };
  const mask = dilateMask(upsampleKept(selection, inputs, o, fallbacks), o);
  return maskResult(inputs, o, {
    level: 'grid',
    mask,
    softMap,
    gridMask: kept.mask,
    threshold,
    kept,
    fallbacks,
  });
}

/** What the grid step selected: the smoothed map, its Otsu split and the kept components. */
interface GridSelection {
  softMap: Float64Array;
  foreground: Uint8Array;
  threshold: number;
  kept: KeptSelection;
}

/** 1 where `map` is strictly above `threshold` (skimage's `image > thresh`). */
function above(map: Float64Array, threshold: number): Uint8Array {
  const out = new Uint8Array(map.length);
  for (let i = 0; i < out.length; i++) out[i] = map[i]! > threshold ? 1 : 0;
  return out;
}

/**
 * The kept components at image size: bilinear (see {@link MaskOptions.upsample}) unless nearest
 * was asked for or nothing was kept.
 */
function upsampleKept(
  selection: GridSelection,
  inputs: MaskInputs,
  o: ResolvedMaskOptions,
  fallbacks: MaskFallback[],
): Uint8Array {
  const { kept } = selection;
  const nearest = () =>
    resizeNearest(kept.mask, inputs.height, inputs.width, o.imageHeight, o.imageWidth);
  if (o.upsample === 'nearest' || kept.keptLabels.length === 0) return nearest();
  const mask = bilinearMask(selection, inputs, o);
  if (countSet(mask) > 0) return mask;
  // A kept component barely above the threshold can vanish between pixel centres.
  fallbacks.push({
    code: 'upsample-fell-back-to-nearest',
    message:
      'The bilinear upsampling of the kept components fell below the threshold everywhere; the grid cells were upsampled by nearest neighbour instead.',
  });
  return nearest();
}

/**
 * The smoothed map upsampled bilinearly and cut at the grid's threshold. Foreground cells of the
 * components that were not kept are lowered to the map's minimum first, so they cannot reappear.
 */
function bilinearMask(
  selection: GridSelection,
  inputs: MaskInputs,
  o: ResolvedMaskOptions,
): Uint8Array {
  const { softMap, foreground, threshold, kept } = selection;
  let lowest = Infinity;
  for (const v of softMap) lowest = Math.min(lowest, v);
  const selected = Float64Array.from(softMap);
  for (let i = 0; i < selected.length; i++) {
    if (foreground[i] && !kept.mask[i]) selected[i] = lowest;
  }
  const up = resizeBilinear(selected, inputs.height, inputs.width, o.imageHeight, o.imageWidth);
  return above(up, threshold);
}
