// What both paths of Eq. (2) take — the similarity maps with their roles and the options — and the
// checks they share, so a bad argument fails before any work whichever path runs.
import type { Connectivity } from './components.js';
import type { BoundaryMode } from './gaussian.js';
import {
  assertGrid,
  assertPositiveInteger,
  cellIndexOf,
  type FloatGrid,
  type GridPoint,
} from './grid.js';
import type { GuidedFilter, GuideImage } from './guided_filter.js';

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

/**
 * - 'product': Eq. (2) as written, Otsu(Ψ(M_P·(1 − M_N))).
 * - 'compare': Otsu(Ψ(M_P)) restricted to where Ψ(M_P) ≥ Ψ(M_N): a patch belongs to the subject
 *   when it resembles the positive click and resembles it at least as much as the negative one.
 *   A look-alike is, by definition, close to the subject in CLIP space, so M_N is high on the
 *   subject too and the product suppresses the subject along with the look-alike; comparing the
 *   two raw cosine maps (same scale, no min-max) keeps it. Thresholding then runs at pixel level.
 */
export type SuppressionRule = 'product' | 'compare';

/** Eq. (2)'s maps with explicit roles, all on one height×width grid. */
export interface MaskInputs {
  /** The map of the subject to select (M_P for the subject, M_N for the look-alike). */
  target: FloatGrid;
  /** The map to remove; null: no suppression. */
  suppressor: FloatGrid | null;
  /** The clicks on the target, in grid coordinates. */
  points: readonly GridPoint[];
  height: number;
  width: number;
}

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

/** MaskOptions with the defaults filled in; the guide and its radius stay optional. */
export type ResolvedMaskOptions = Required<Omit<MaskOptions, 'guide' | 'guideRadius'>> &
  Pick<MaskOptions, 'guide' | 'guideRadius'>;

/** The options with their documented defaults, after the checks both paths share. */
export function resolveMaskOptions(inputs: MaskInputs, options: MaskOptions): ResolvedMaskOptions {
  const resolved: ResolvedMaskOptions = {
    imageHeight: options.imageHeight,
    imageWidth: options.imageWidth,
    sigma: options.sigma ?? 1,
    gaussianMode: options.gaussianMode ?? 'reflect',
    normalization: options.normalization ?? 'minmax',
    nbins: options.nbins ?? 256,
    connectivity: options.connectivity ?? 4,
    upsample: options.upsample ?? 'bilinear',
    dilateRadius: options.dilateRadius ?? 0,
    rule: options.rule ?? 'product',
    guide: options.guide,
    guideRadius: options.guideRadius,
    guideEps: options.guideEps ?? 1e-3,
  };
  checkMaskInputs(inputs, resolved);
  return resolved;
}

function checkMaskInputs(inputs: MaskInputs, options: ResolvedMaskOptions): void {
  const { target, suppressor, points, height: h, width: w } = inputs;
  const { imageHeight, imageWidth, upsample, normalization, rule } = options;
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
  if (rule !== 'product' && rule !== 'compare') {
    throw new Error(`Expected rule to be product or compare but received ${String(rule)}`);
  }
}
