// The reference photos P3S trains on, turned into what training and generation use: each
// filled photo (Eq. 3's I') as a square crop at the model's resolution, its VAE latent ×
// scaling_factor (the denoising target x_0 of Eq. 14 and I' of Eq. 4) and its CLIP vision last
// hidden state (c_s of Eq. 5). Both are computed once, before the training loop: the models
// that make them are frozen.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, extname, join, resolve } from 'node:path';
import { Tensor } from '../engine/tensor.js';
import { noGrad } from '../engine/autograd.js';
import { tidy } from '../engine/scope.js';
import { tensor } from '../engine/creation.js';
import * as ops from '../engine/ops.generated.js';
import { cropImage, imageToTensor, readImage, resizeImage, type RgbImage } from '../io/image.js';
import { vaeScale } from '../pipelines/memory_budget.js';
import { readJson } from '../models/loading.js';
import type { AutoencoderKL } from '../models/vae/autoencoder_kl.js';
import type { CLIPVisionModel } from '../models/clip/clip_vision_model.js';
import { CLIPImageProcessor } from '../models/clip/image_processing.js';

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.webp', '.tif', '.tiff', '.bmp']);

export class ReferencePhotoError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReferencePhotoError';
  }
}

/** A reference photo and, when it comes from a `p3s mask` folder, its subject mask. */
export interface ReferencePhoto {
  path: string;
  subjectMaskPath: string | null;
}

/**
 * The photo files of a list of inputs. A file is taken as it is. A folder written by `p3s mask`
 * (it has summary.json) gives its filled photos with their subject masks, in summary order; any
 * other folder gives its image files in name order. Throws when an input is missing or nothing
 * is found.
 */
export function resolveReferences(inputs: readonly string[]): ReferencePhoto[] {
  const out: ReferencePhoto[] = [];
  for (const input of inputs) {
    if (!existsSync(input))
      throw new ReferencePhotoError(`Reference photo or folder not found: ${input}`);
    if (!statSync(input).isDirectory()) {
      out.push({ path: resolve(input), subjectMaskPath: null });
      continue;
    }
    const summary = join(input, 'summary.json');
    if (existsSync(summary)) {
      const images = readJson(summary).images;
      if (!Array.isArray(images))
        throw new ReferencePhotoError(
          `${summary} has no "images" list (is it a p3s mask summary?)`,
        );
      for (const entry of images as { files?: { filled?: string; subjectMask?: string } }[]) {
        const filled = entry.files?.filled;
        if (typeof filled !== 'string')
          throw new ReferencePhotoError(`${summary}: an entry lacks files.filled`);
        const path = join(input, filled);
        if (!existsSync(path))
          throw new ReferencePhotoError(`${summary} lists ${filled}, which is missing`);
        const mask = entry.files?.subjectMask;
        const maskPath = typeof mask === 'string' ? join(input, mask) : null;
        out.push({
          path: resolve(path),
          subjectMaskPath: maskPath !== null && existsSync(maskPath) ? resolve(maskPath) : null,
        });
      }
      continue;
    }
    const files = readdirSync(input)
      .filter((f) => IMAGE_EXTENSIONS.has(extname(f).toLowerCase()))
      .sort();
    out.push(...files.map((f) => ({ path: resolve(input, f), subjectMaskPath: null })));
  }
  if (out.length === 0) {
    throw new ReferencePhotoError(
      inputs.length === 0
        ? 'No reference photos given: P3S needs at least one photo of the subject'
        : `No reference photos found in ${inputs.join(', ')}`,
    );
  }
  return out;
}

/** The photo paths of resolveReferences. */
export function resolveReferencePaths(inputs: readonly string[]): string[] {
  return resolveReferences(inputs).map((r) => r.path);
}

/**
 * How an augmented copy's crop square differs from the subject's own: `scale` times its side,
 * its centre moved by (dx, dy) times its side.
 */
export interface CropMove {
  scale: number;
  dx: number;
  dy: number;
}

const UNMOVED: CropMove = { scale: 1, dx: 0, dy: 0 };

/**
 * The crop squares of `--crop-jitter j`: the subject's own first, then scaled by 1 − j and
 * 1 + j, then moved by j / 2 of its side left, right, up and down (half as far as it is scaled,
 * so that at a margin of 1.5 a moved square still holds the whole subject).
 */
export function cropMoves(jitter: number): CropMove[] {
  if (jitter === 0) return [UNMOVED];
  const s = jitter / 2;
  return [
    UNMOVED,
    { scale: 1 - jitter, dx: 0, dy: 0 },
    { scale: 1 + jitter, dx: 0, dy: 0 },
    { scale: 1, dx: -s, dy: 0 },
    { scale: 1, dx: s, dy: 0 },
    { scale: 1, dx: 0, dy: -s },
    { scale: 1, dx: 0, dy: s },
  ];
}

/**
 * The square around a mask's set pixels (value > 127 in its first channel): `margin` × the
 * box's longer side, centred on the box, moved (not shrunk) to lie inside the image, and never
 * larger than the image's shorter side. `move` scales and shifts it before it is fitted into
 * the image. Null when the mask is empty.
 */
export function subjectSquare(
  mask: RgbImage,
  margin: number,
  move: CropMove = UNMOVED,
): { left: number; top: number; size: number } | null {
  if (!(margin >= 1))
    throw new RangeError(`Expected a margin of at least 1 but received ${margin}`);
  const { width: w, height: h, data } = mask;
  let x0 = w;
  let y0 = h;
  let x1 = -1;
  let y1 = -1;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (data[(y * w + x) * 3]! > 127) {
        x0 = Math.min(x0, x);
        x1 = Math.max(x1, x);
        y0 = Math.min(y0, y);
        y1 = Math.max(y1, y);
      }
    }
  }
  if (x1 < 0) return null;
  const side = Math.max(x1 - x0 + 1, y1 - y0 + 1) * margin * move.scale;
  const size = Math.max(1, Math.min(w, h, Math.round(side)));
  const clamp = (v: number, hi: number) => Math.max(0, Math.min(hi, v));
  return {
    left: clamp(Math.round((x0 + x1 + 1 - size) / 2 + move.dx * size), w - size),
    top: clamp(Math.round((y0 + y1 + 1 - size) / 2 + move.dy * size), h - size),
    size,
  };
}

/** Resizes so the short side is `size` (bilinear, as diffusers' training scripts), then centre-crops a square. */
export function squareCrop(img: RgbImage, size: number): RgbImage {
  const scale = size / Math.min(img.width, img.height);
  const w = Math.max(size, Math.round(img.width * scale));
  const h = Math.max(size, Math.round(img.height * scale));
  const resized = w === img.width && h === img.height ? img : resizeImage(img, w, h, 'bilinear');
  return cropImage(resized, (w - size) >> 1, (h - size) >> 1, size, size);
}

/** The image mirrored left to right. */
export function flipHorizontal(img: RgbImage): RgbImage {
  const { width, height, data } = img;
  const out = new Uint8Array(data.length);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const from = (y * width + x) * 3;
      const to = (y * width + (width - 1 - x)) * 3;
      out[to] = data[from]!;
      out[to + 1] = data[from + 1]!;
      out[to + 2] = data[from + 2]!;
    }
  }
  return { width, height, data: out };
}

/** The CLIP preprocessing for c_s: the folder's preprocessor_config.json, else CLIP's at the tower's size. */
export function clipProcessorFor(folder: string, model: CLIPVisionModel): CLIPImageProcessor {
  if (existsSync(join(folder, 'preprocessor_config.json')))
    return CLIPImageProcessor.fromPretrained(folder);
  const s = model.config.image_size;
  return new CLIPImageProcessor({ size: { shortest_edge: s }, crop_size: { height: s, width: s } });
}

export interface ReferenceTensors {
  /** (N, C, h, w): VAE posterior mean × scaling_factor of each square crop. */
  latents: Tensor;
  /** (N, L, E): CLIP vision last hidden state of each crop. */
  clipStates: Tensor;
}

/** A reference set's denoising targets and its subject condition (I', c_s). */
export interface ReferenceSet extends ReferenceTensors {
  /** The subject condition: the same tensors as the targets', or the subject-only crops'. */
  condition: ReferenceTensors;
  /** (N, 1, h, w): each latent cell's share of subject-mask pixels, when asked for. */
  subjectMasks: Tensor | null;
}

export interface EncodedReferences extends ReferenceSet {
  names: string[];
  /**
   * The augmented copies of the references, for training only: for each crop move
   * (cropMoves) the moved crops and then, with `flip`, their mirror images, leaving out the
   * references themselves (the first move, unmirrored). Empty without augmentation; with
   * `flip` alone, the mirrored references.
   */
  variants: ReferenceSet[];
}

/** Grey in [0, 255]: what the subject-only condition shows outside the subject mask. */
const CONDITION_FILL = 128;

/** The crop with every pixel outside the mask (first channel ≤ 127) set to grey. */
export function keepSubject(crop: RgbImage, mask: RgbImage): RgbImage {
  if (mask.width !== crop.width || mask.height !== crop.height)
    throw new RangeError(
      `Expected a ${crop.width}×${crop.height} mask but received ${mask.width}×${mask.height}`,
    );
  const data = Uint8Array.from(crop.data);
  for (let i = 0; i < crop.width * crop.height; i++) {
    if (mask.data[i * 3]! <= 127) data.fill(CONDITION_FILL, i * 3, i * 3 + 3);
  }
  return { width: crop.width, height: crop.height, data };
}

/**
 * VAE latents of square crops: the posterior's mode (its mean), not a sample: precomputed once,
 * a sample would freeze one draw of noise into every epoch.
 */
export function encodeLatents(crops: readonly RgbImage[], vae: AutoencoderKL): Tensor {
  // noGrad, not inferenceMode: these tensors enter autograd graphs later (inference tensors cannot)
  return noGrad(() =>
    tidy(() => {
      const vaeDtype = vae.parameters()[0]!.dtype;
      const latents = crops.map((crop) => {
        const pixels = imageToTensor(crop).mul(2).sub(1).to(vaeDtype); // [0, 1] -> [-1, 1]
        return vae.encode(pixels).mode().mul(vae.scalingFactor).float(); // (1, C, h, w)
      });
      return ops.cat(latents, 0);
    }),
  );
}

/** VAE latents (encodeLatents) and CLIP last hidden states of square crops. */
export function encodeReferenceImages(
  crops: readonly RgbImage[],
  vae: AutoencoderKL,
  clip: CLIPVisionModel,
  processor: CLIPImageProcessor,
): ReferenceTensors {
  const latents = encodeLatents(crops, vae);
  const clipStates = noGrad(() =>
    tidy(() => {
      const states = crops.map(
        (crop) => clip.forward(processor.preprocess([crop])).lastHiddenState.float(), // (1, L, E)
      );
      return ops.cat(states, 0);
    }),
  );
  return { latents, clipStates };
}

/**
 * The photo and its mask cut to the square `margin` times the mask's box, moved by `move`
 * (subjectSquare), or null when the mask is empty.
 */
export function cutToSubject(
  image: RgbImage,
  mask: RgbImage,
  margin: number,
  move: CropMove = UNMOVED,
): { image: RgbImage; mask: RgbImage } | null {
  const square = subjectSquare(mask, margin, move);
  if (square === null) return null;
  const cut = (img: RgbImage) => cropImage(img, square.left, square.top, square.size, square.size);
  return { image: cut(image), mask: cut(mask) };
}

export interface EncodeOptions {
  resolution: number;
  flip: boolean;
  subjectMargin?: number | null;
  /** Augmented copies of each subject crop, scaled and moved (cropMoves); needs subjectMargin. */
  cropJitter?: number;
  /**
   * Encode the subject condition from the crop with everything outside the subject mask grey
   * (the targets keep the whole crop). Needs references from a p3s mask folder.
   */
  subjectOnlyCondition?: boolean;
  /** Also give each crop's subject mask at the latents' size (for a weighted loss). */
  withSubjectMasks?: boolean;
  /** Told when a reference keeps its whole photo (its subject mask is empty). */
  onWarning?: (message: string) => void;
}

/** The square crops of the references: targets, subject-only conditions, subject masks. */
interface ReferenceCrops {
  targets: RgbImage[];
  conditions: RgbImage[];
  masks: RgbImage[];
}

/**
 * A reference needs at least one pixel per latent cell along its shorter side: a smaller photo,
 * scaled up to the training resolution, is flat colour the adapter cannot learn a subject from.
 */
function checkPhotoSize(ref: ReferencePhoto, img: RgbImage, latentSide: number): void {
  if (Math.min(img.width, img.height) >= latentSide) return;
  throw new ReferencePhotoError(
    `Reference photo ${basename(ref.path)} is ${img.width}×${img.height} px, too small to train ` +
      `on: at the training resolution its latent is ${latentSide}×${latentSide} cells, so a ` +
      `photo needs at least ${latentSide} px on its shorter side (photos as large as the ` +
      'resolution or larger work best)',
  );
}

/**
 * Reads one reference and adds its crops to `crops[k]` for each crop move `moves[k]`: cut to
 * its subject when asked, otherwise (or when its mask is empty) the whole photo every time.
 */
async function addCrops(
  ref: ReferencePhoto,
  needsMask: boolean,
  options: EncodeOptions & { latentSide: number },
  moves: readonly CropMove[],
  crops: readonly ReferenceCrops[],
): Promise<void> {
  const img = await readImage(ref.path);
  checkPhotoSize(ref, img, options.latentSide);
  const mask = needsMask ? await readSubjectMask(img, ref) : null;
  const margin = options.subjectMargin;
  const cuts = moves.map((move) =>
    margin != null && mask !== null ? cutToSubject(img, mask, margin, move) : null,
  );
  if (margin != null && mask !== null && cuts[0] === null)
    // The mask job found nothing here; the filled photo still shows the subject somewhere.
    options.onWarning?.(
      `${basename(ref.subjectMaskPath!)} is empty: ${basename(ref.path)} is used whole`,
    );
  cuts.forEach((cut, k) => {
    // the moved copies repeat the first crop's warnings, so only the first one tells
    const warn = k === 0 ? options.onWarning : undefined;
    addCrop(ref, cut ?? { image: img, mask }, { ...options, onWarning: warn }, crops[k]!);
  });
}

/** Adds the square crops of one (cut) photo and its mask. */
function addCrop(
  ref: ReferencePhoto,
  cut: { image: RgbImage; mask: RgbImage | null },
  options: EncodeOptions,
  crops: ReferenceCrops,
): void {
  const crop = squareCrop(cut.image, options.resolution);
  crops.targets.push(crop);
  const maskCrop = cut.mask === null ? null : squareCrop(cut.mask, options.resolution);
  if (options.withSubjectMasks) crops.masks.push(maskCrop!);
  if (options.subjectOnlyCondition) {
    const kept = keepSubject(crop, maskCrop!);
    if (kept.data.every((v) => v === CONDITION_FILL))
      options.onWarning?.(`the subject-only condition of ${basename(ref.path)} is all grey`);
    crops.conditions.push(kept);
  }
}

/** Latents, CLIP states and mask shares of one set of crops. */
function encodeCrops(
  crops: ReferenceCrops,
  models: { vae: AutoencoderKL; clip: CLIPVisionModel; processor: CLIPImageProcessor },
  options: EncodeOptions,
): ReferenceSet {
  const { vae, clip, processor } = models;
  const targets = encodeReferenceImages(crops.targets, vae, clip, processor);
  const condition = options.subjectOnlyCondition
    ? encodeReferenceImages(crops.conditions, vae, clip, processor)
    : targets;
  const [h, w] = [targets.latents.shape[2]!, targets.latents.shape[3]!];
  const subjectMasks = options.withSubjectMasks ? maskShares(crops.masks, h, w) : null;
  return { ...targets, condition, subjectMasks };
}

/**
 * Reads, crops and encodes reference photos, and their augmented copies (EncodedReferences'
 * variants). With `subjectMargin`, each photo is first cut to the square around its subject
 * mask (subjectSquare), so the subject fills the reference instead of a corner of it.
 */
export async function encodeReferences(
  references: readonly (string | ReferencePhoto)[],
  models: { vae: AutoencoderKL; clip: CLIPVisionModel; processor: CLIPImageProcessor },
  options: EncodeOptions,
): Promise<EncodedReferences> {
  if (references.length === 0) throw new ReferencePhotoError('No reference photos to encode');
  if ((options.cropJitter ?? 0) > 0 && options.subjectMargin == null)
    throw new RangeError('Crop jitter moves the subject crop: it needs a subject margin');
  const refs = references.map((r) =>
    typeof r === 'string' ? { path: r, subjectMaskPath: null } : r,
  );
  const needsMask = requireSubjectMasks(refs, {
    crop: options.subjectMargin != null,
    subjectOnlyCondition: options.subjectOnlyCondition ?? false,
    weightedLoss: options.withSubjectMasks ?? false,
  });
  const moves = cropMoves(options.cropJitter ?? 0);
  const perMove = moves.map((): ReferenceCrops => ({ targets: [], conditions: [], masks: [] }));
  const latentSide = options.resolution / vaeScale(models.vae.config);
  for (const ref of refs)
    await addCrops(ref, needsMask, { ...options, latentSide }, moves, perMove);
  const mirror = (c: ReferenceCrops): ReferenceCrops => ({
    targets: c.targets.map(flipHorizontal),
    conditions: c.conditions.map(flipHorizontal),
    masks: c.masks.map(flipHorizontal),
  });
  const [plain, ...copies] = perMove.flatMap((c) => (options.flip ? [c, mirror(c)] : [c]));
  const encode = (c: ReferenceCrops) => encodeCrops(c, models, options);
  return {
    ...encode(plain!),
    variants: copies.map(encode),
    names: refs.map((r) => basename(r.path)),
  };
}

/** (N, 1, h, w): the share of set pixels (first channel > 127) of each mask in each of h × w cells. */
export function maskShares(masks: readonly RgbImage[], h: number, w: number): Tensor {
  const out = new Float32Array(masks.length * h * w);
  masks.forEach((m, n) => {
    for (let y = 0; y < m.height; y++) {
      for (let x = 0; x < m.width; x++) {
        if (m.data[(y * m.width + x) * 3]! <= 127) continue;
        const cell = Math.floor((y * h) / m.height) * w + Math.floor((x * w) / m.width);
        out[n * h * w + cell]! += (h * w) / (m.width * m.height);
      }
    }
  });
  return tensor(out, [masks.length, 1, h, w]);
}

/**
 * Whether the options need each reference's subject mask; throws, naming the first reference
 * without one and what needs it, when some reference has none.
 */
export function requireSubjectMasks(
  references: readonly ReferencePhoto[],
  uses: { crop: boolean; subjectOnlyCondition: boolean; weightedLoss: boolean },
): boolean {
  const purpose = uses.subjectOnlyCondition
    ? 'a subject-only condition'
    : uses.weightedLoss
      ? 'a subject-weighted loss'
      : uses.crop
        ? 'cropping to the subject'
        : null;
  if (purpose === null) return false;
  const unmasked = references.find((r) => r.subjectMaskPath === null);
  if (unmasked)
    throw new ReferencePhotoError(
      `${basename(unmasked.path)} has no subject mask: ${purpose} needs references from a p3s mask folder`,
    );
  return true;
}

/** The reference's subject mask (requireSubjectMasks has checked it has one), checked against its photo. */
async function readSubjectMask(img: RgbImage, ref: ReferencePhoto): Promise<RgbImage> {
  const path = ref.subjectMaskPath!;
  const mask = await readImage(path);
  if (mask.width !== img.width || mask.height !== img.height)
    throw new ReferencePhotoError(
      `${basename(path)} is ${mask.width}×${mask.height} but ${basename(ref.path)} is ${img.width}×${img.height}`,
    );
  return mask;
}
