// The RNGR encoder's image side (paper Sec. III-A): clicks -> similarity maps (Eq. 1) -> subject
// and distractor masks (Eq. 2) -> the photo with the distractor filled (Eq. 3).
import type { RgbImage } from '../../io/image.js';
import { disposeAll } from '../../engine/scope.js';
import { AnnotationError, checkPointsInside, type Point } from './annotations.js';
import { cellOfPoint, patchSimilarity, type PatchFeatures } from './patch_similarity.js';
import {
  clickFeatures,
  propagatePoints,
  type ClickFeatures,
  type PropagatedPoints,
} from './propagate.js';
import {
  distractorMask,
  subjectMask,
  type MaskFallback,
  type MaskOptions,
  type MaskResult,
  type PointSimilarity,
  type SuppressionRule,
  GuidedFilter,
  boundSpreadMask,
} from './mask/index.js';
import type { GridPoint } from './mask/grid.js';
import { diffusionInpainter, type Inpainter } from './fill.js';

/** Turns a photo into patch tokens (e.g. CLIP's vision tower; see clip_features.ts). */
export interface PatchFeatureExtractor {
  extract(image: RgbImage): PatchFeatures;
}

export interface RngrImageInput {
  name: string;
  image: RgbImage;
  positive: readonly Point[];
  negative: readonly Point[];
}

export interface RngrOptions {
  /** Gaussian σ in patches for Ψ of Eq. (2). */
  sigma?: number;
  /** Mask dilation radius in image pixels (0 = none). */
  dilate?: number;
  /** Locate the subject in photos without clicks (default true). */
  propagate?: boolean;
  negativeMargin?: number;
  inpainter?: Inpainter;
  /** How the negative click removes the look-alike (default 'compare'; 'product' is Eq. 2 as written). */
  rule?: SuppressionRule;
  /** Refine the masks at pixel level along the photo's edges (default 'guided'). */
  refine?: MaskRefinement;
  /**
   * Eq. (1)'s query for a click: its patch and eight points on a circle this many patches around
   * it (default CLICK_RADIUS; 0: the clicked patch alone, as the paper).
   */
  clickRadius?: number;
}

/**
 * A click stands for the patches around it, not the one under it: a patterned subject's patch
 * shows one of its colours, and the similarity to it alone leaves out the rest (docs/toy.md).
 */
export const CLICK_RADIUS = 0.625;

/** 'guided': the colour guided filter with the photo (mask/guided_filter.ts); 'none': the patch maps alone. */
export type MaskRefinement = 'guided' | 'none';

export interface RngrImageResult {
  name: string;
  image: RgbImage;
  positive: Point[];
  negative: Point[];
  propagated: PropagatedPoints | null;
  /** Eq. (1) maps on the patch grid. */
  similarity: {
    positive: Float32Array;
    negative: Float32Array | null;
    gridH: number;
    gridW: number;
  };
  subject: MaskResult;
  distractor: MaskResult | null;
  /** Eq. (3): the photo with the distractor region filled (the photo itself without one). */
  filled: RgbImage;
}

function toGrid(f: PatchFeatures, points: readonly Point[]): GridPoint[] {
  return points.map(([x, y]) => ({
    x: Math.min(f.gridW - 1e-6, (x / f.imageWidth) * f.gridW),
    y: Math.min(f.gridH - 1e-6, (y / f.imageHeight) * f.gridH),
  }));
}

/** ε of the guided refinement, on colours in [0, 1]. */
const GUIDE_EPS = 1e-3;

/** Builds masks and filled photos for a set of reference photos of one subject. */
export async function buildSubjectMasks(
  inputs: RngrImageInput[],
  extractor: PatchFeatureExtractor,
  options: RngrOptions = {},
): Promise<RngrImageResult[]> {
  const settings = resolveRngrOptions(inputs, options);
  const features = extractChecked(inputs, extractor);
  try {
    const clicks = clickFeatures(
      inputs.map((inp, k) => ({
        features: features[k]!,
        positive: inp.positive,
        negative: inp.negative,
      })),
    );
    try {
      const results: RngrImageResult[] = [];
      for (let k = 0; k < inputs.length; k++) {
        results.push(await encodePhoto(inputs[k]!, features[k]!, clicks, settings));
      }
      return results;
    } finally {
      disposeAll([clicks.positive, clicks.negative]);
    }
  } finally {
    disposeAll(features.map((f) => f.tokens));
  }
}

/** Each photo's patch tokens, refusing a photo as soon as its grid shows it cannot be masked. */
function extractChecked(
  inputs: RngrImageInput[],
  extractor: PatchFeatureExtractor,
): PatchFeatures[] {
  const features: PatchFeatures[] = [];
  try {
    for (const input of inputs) {
      features.push(extractor.extract(input.image));
      checkPhotoSize(input, features.at(-1)!);
      checkClicksApart(input, features.at(-1)!);
    }
    return features;
  } catch (err) {
    disposeAll(features.map((f) => f.tokens));
    throw err;
  }
}

/** A mask needs at least one photo pixel per patch; a smaller photo cannot hold one. */
function checkPhotoSize({ name, image }: RngrImageInput, f: PatchFeatures): void {
  if (image.width >= f.gridW && image.height >= f.gridH) return;
  throw new AnnotationError(
    `Photo ${name} is ${image.width}×${image.height} px, too small for a mask: masks are built ` +
      `on its grid of ${f.gridW}×${f.gridH} patches, so a photo needs at least ${f.gridW}×${f.gridH} px`,
  );
}

/**
 * A positive and a negative click on one patch give one token, so Eq. (1) gives M_P = M_N and
 * nothing tells the subject from the look-alike.
 */
function checkClicksApart(input: RngrImageInput, f: PatchFeatures): void {
  for (const p of input.positive) {
    const n = input.negative.find((q) => cellOfPoint(f, q) === cellOfPoint(f, p));
    if (n === undefined) continue;
    throw new AnnotationError(
      `The positive point (${p.join(', ')}) and the negative point (${n.join(', ')}) of ` +
        `${input.name} fall on the same patch of its ${f.gridW}×${f.gridH} grid, so they cannot ` +
        'tell the subject from the look-alike: put the negative point on the look-alike',
    );
  }
}

/** RngrOptions with their defaults filled in. */
type RngrSettings = Required<Omit<RngrOptions, 'negativeMargin'>> &
  Pick<RngrOptions, 'negativeMargin'>;

/**
 * The options with their defaults, after refusing clicks outside their photo, a set without any
 * positive click, and unknown choices — before any photo is encoded.
 */
function resolveRngrOptions(inputs: RngrImageInput[], options: RngrOptions): RngrSettings {
  if (inputs.length === 0) throw new Error('Expected at least one reference image');
  for (const input of inputs) {
    checkPointsInside(input.positive, input.image.width, input.image.height, input.name);
    checkPointsInside(input.negative, input.image.width, input.image.height, input.name);
  }
  if (!inputs.some((i) => i.positive.length > 0)) {
    throw new Error('Expected a positive point on at least one image (click the subject you want)');
  }
  const rule = options.rule ?? 'compare';
  const refine = options.refine ?? 'guided';
  if (rule !== 'compare' && rule !== 'product') {
    throw new Error(`Expected rule to be compare or product but received ${String(rule)}`);
  }
  if (refine !== 'guided' && refine !== 'none') {
    throw new Error(`Expected refine to be guided or none but received ${String(refine)}`);
  }
  return {
    sigma: options.sigma ?? 1,
    dilate: options.dilate ?? 0,
    propagate: options.propagate ?? true,
    negativeMargin: options.negativeMargin,
    inpainter: options.inpainter ?? diffusionInpainter,
    rule,
    refine,
    clickRadius: options.clickRadius ?? CLICK_RADIUS,
  };
}

/** Eq. (1)–(3) for one photo. */
async function encodePhoto(
  input: RngrImageInput,
  f: PatchFeatures,
  clicks: ClickFeatures,
  settings: RngrSettings,
): Promise<RngrImageResult> {
  const { positive, negative, propagated } = photoPoints(input, f, clicks, settings);
  const around = (points: Point[]) => clickCircles(points, input.image, f, settings.clickRadius);
  const simPos = patchSimilarity(f, around(positive)); // Eq. (1), M_P
  const simNeg = negative.length > 0 ? patchSimilarity(f, around(negative)) : null; // Eq. (1), M_N
  const maskOptions = photoMaskOptions(input.image, f, settings);
  const sim: PointSimilarity = {
    positive: simPos,
    negative: simNeg ?? undefined,
    height: f.gridH,
    width: f.gridW,
    positivePoints: toGrid(f, positive),
    negativePoints: simNeg ? toGrid(f, negative) : undefined,
  };
  const subject = subjectMask(sim, maskOptions); // Eq. (2)
  if (subject.maskArea === 0) subject.fallbacks.push(emptySubject(positive, propagated !== null));
  const distractor = simNeg ? distractorMask(sim, maskOptions) : null;
  if (distractor) {
    const pixels = (points: Point[]) => points.map(([x, y]) => ({ x, y }));
    boundSpreadMask(distractor, subject, pixels(negative), 'look-alike');
    boundSpreadMask(subject, distractor, pixels(positive), 'subject');
  }
  return {
    name: input.name,
    image: input.image,
    positive,
    negative,
    propagated,
    similarity: { positive: simPos, negative: simNeg, gridH: f.gridH, gridW: f.gridW },
    subject,
    distractor,
    filled: await fillDistractor(input.image, subject, distractor, settings.inpainter),
  };
}

/** Each point and eight points on a circle `radius` patches around it, kept inside the photo. */
export function clickCircles(
  points: readonly Point[],
  image: RgbImage,
  f: PatchFeatures,
  radius: number,
): Point[] {
  if (radius === 0) return [...points];
  const r = radius * patchPixels(f);
  const inside = (v: number, size: number) => Math.min(size - 1e-6, Math.max(0, v));
  return points.flatMap(([x, y]) => [
    [x, y] as Point,
    ...Array.from({ length: 8 }, (_, j): Point => {
      const a = (j * Math.PI) / 4;
      return [inside(x + r * Math.cos(a), image.width), inside(y + r * Math.sin(a), image.height)];
    }),
  ]);
}

/** Photo pixels one token sees across. */
function patchPixels(f: PatchFeatures): number {
  return f.patchSize ?? f.imageWidth / f.gridW;
}

/**
 * Nothing to fall back to: an empty subject mask would train on nothing. Recorded rather than
 * thrown so the caller decides (`p3s mask` refuses it through refuseEmptySubjects).
 */
function emptySubject(positive: Point[], propagated: boolean): MaskFallback {
  const points = positive.map((p) => `(${p.join(', ')})`).join(', ');
  return {
    code: 'empty-subject-mask',
    message: propagated
      ? `The subject mask is empty: the point propagated from the other photos, ${points}, found no subject; click the subject in this photo.`
      : `The subject mask is empty: nothing around the positive point ${points} was kept; make sure it lies on the subject.`,
  };
}

/** The photo's own clicks, or, when it has no positive click, clicks propagated from the others. */
function photoPoints(
  input: RngrImageInput,
  f: PatchFeatures,
  clicks: ClickFeatures,
  settings: RngrSettings,
): { positive: Point[]; negative: Point[]; propagated: PropagatedPoints | null } {
  if (input.positive.length > 0) {
    return { positive: [...input.positive], negative: [...input.negative], propagated: null };
  }
  if (!settings.propagate) {
    throw new Error(`Image ${input.name} has no positive point and propagation is off`);
  }
  const propagated = propagatePoints(f, clicks, { negativeMargin: settings.negativeMargin });
  const negative = input.negative.length > 0 ? [...input.negative] : propagated.negative;
  return { positive: propagated.positive, negative, propagated };
}

/** Eq. (2)'s options for one photo. */
function photoMaskOptions(image: RgbImage, f: PatchFeatures, settings: RngrSettings): MaskOptions {
  return {
    imageHeight: image.height,
    imageWidth: image.width,
    sigma: settings.sigma,
    dilateRadius: settings.dilate,
    rule: settings.rule,
    // One filter per photo, so the subject's and the look-alike's masks share its statistics;
    // its radius is one token's footprint (the patch maps' blur).
    guide:
      settings.refine === 'guided'
        ? new GuidedFilter(image, {
            radius: Math.max(1, Math.round(patchPixels(f))),
            eps: GUIDE_EPS,
          })
        : undefined,
  };
}

/** Eq. (3): the photo with the distractor filled, never the subject itself (the photo without one). */
async function fillDistractor(
  image: RgbImage,
  subject: MaskResult,
  distractor: MaskResult | null,
  inpainter: Inpainter,
): Promise<RgbImage> {
  if (!distractor) return image;
  const region = distractor.mask.map((v, i) => (v && !subject.mask[i] ? 1 : 0));
  return inpainter.inpaint(image, region);
}
