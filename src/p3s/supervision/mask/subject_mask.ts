// The point-selected masks of Eq. (2): the subject's (under the positive points) and the
// look-alike's (under the negative points, the region Eq. 3 fills). Picks the grid path
// (grid_mask.ts, Eq. 2 as written) or the pixel path (pixel_mask.ts: compare rule, guided
// refinement) by the options.
import type { FloatGrid, GridPoint } from './grid.js';
import { maskFromSimilarity } from './grid_mask.js';
import type { MaskInputs, MaskOptions } from './mask_options.js';
import type { MaskResult } from './mask_result.js';
import { pixelMaskFromSimilarity } from './pixel_mask.js';

/** The similarity maps of Eq. (1) for one image, with the user's points, all on the same grid. */
export interface PointSimilarity {
  /** M_P: similarity of every patch to the positive point's patch. */
  positive: FloatGrid;
  /** M_N: similarity to the negative point's patch; omitted when there is no negative point. */
  negative?: FloatGrid;
  height: number;
  width: number;
  positivePoints: readonly GridPoint[];
  negativePoints?: readonly GridPoint[];
}

/** The subject mask: Eq. (2) as written, kept to the components under the positive points. */
export function subjectMask(sim: PointSimilarity, options: MaskOptions): MaskResult {
  const { positive, negative, positivePoints, height, width } = sim;
  const inputs: MaskInputs = {
    target: positive,
    suppressor: negative ?? null,
    points: positivePoints,
    height,
    width,
  };
  return pointMask(inputs, options);
}

/**
 * The distractor mask (the region to inpaint in Eq. 3): Eq. (2) with the roles swapped,
 * Otsu(Ψ(M_N·(1 − M_P))), kept to the components under the negative points.
 */
export function distractorMask(sim: PointSimilarity, options: MaskOptions): MaskResult {
  const { positive, negative, negativePoints, height, width } = sim;
  if (!negative || !negativePoints || negativePoints.length === 0) {
    throw new Error(
      'Expected a negative similarity map and at least one negative point for the distractor mask but received none',
    );
  }
  const inputs: MaskInputs = {
    target: negative,
    suppressor: positive,
    points: negativePoints,
    height,
    width,
  };
  return pointMask(inputs, options);
}

/** The grid path (Eq. 2 as written) or, with a guide or the compare rule, the pixel path. */
function pointMask(inputs: MaskInputs, options: MaskOptions): MaskResult {
  const pixel = options.guide !== undefined || (options.rule ?? 'product') === 'compare';
  return pixel ? pixelMaskFromSimilarity(inputs, options) : maskFromSimilarity(inputs, options);
}
