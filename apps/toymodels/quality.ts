// Quality of the toy models on held-out scenes (never seen in training: the held-out split's
// seeds): CLIP retrieval, the probe's own accuracy, the probe on VAE round trips, text-to-image
// attribute accuracy judged by the probe, and RNGR mask IoU on look-alike pairs. The numbers go to
// the model card and, as floors, into the tests.
import { noGrad } from '../../src/engine/autograd.js';
import { tidy } from '../../src/engine/scope.js';
import type { RgbImage } from '../../src/io/image.js';
import type { CLIPTextModelWithProjection } from '../../src/models/clip/clip_text_model.js';
import type { CLIPVisionModelWithProjection } from '../../src/models/clip/clip_vision_model.js';
import type { AutoencoderKL } from '../../src/models/vae/autoencoder_kl.js';
import type { StableDiffusionPipeline } from '../../src/pipelines/stable_diffusion.js';
import {
  buildSubjectMasks,
  type PatchFeatureExtractor,
  type RngrOptions,
} from '../../src/p3s/supervision/rngr.js';
import type { CLIPTokenizer } from '../../src/tokenizers/clip_tokenizer.js';
import { alteredCaption } from '../../src/toyworld/altered_captions.js';
import { SPLIT_SEEDS } from '../../src/toyworld/dataset.js';
import { makeLookalikePair } from '../../src/toyworld/pairs.js';
import type { Scene } from '../../src/toyworld/scene.js';
import { normalizeRows, toyClipProcessor } from './clip_stage.js';
import { sceneImage, scenes, scenesToTensor, tokenIds } from './data.js';
import {
  PROBE_ATTRIBUTES,
  probeImages,
  sceneLabels,
  type AttributeProbe,
  type ProbeAttribute,
  type ProbeLabels,
} from './probe.js';

/** Mask IoU: |a ∧ b| / |a ∨ b| (1 when both are empty). */
export function maskIoU(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) throw new RangeError('Masks of different sizes');
  let inter = 0;
  let union = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]! > 0;
    const y = b[i]! > 0;
    if (x && y) inter++;
    if (x || y) union++;
  }
  return union === 0 ? 1 : inter / union;
}

export interface RetrievalResult {
  /** Scenes evaluated. */
  count: number;
  candidates: number;
  /** The true caption ranked first among captions of other held-out scenes. */
  accuracy: number;
  /** The true caption ranked first among captions that each change one attribute. */
  hardAccuracy: number;
}

/** Image→caption retrieval with the toy CLIP on held-out scenes (1 true + 7 wrong captions). */
export function clipRetrieval(
  text: CLIPTextModelWithProjection,
  vision: CLIPVisionModelWithProjection,
  tokenizer: CLIPTokenizer,
  count = 200,
  distractors = 7,
): RetrievalResult {
  const processor = toyClipProcessor();
  const held = scenes('heldout', 0, count);
  const others = scenes('heldout', count, count * distractors);
  const rankFirst = (scene: Scene, captions: string[]): boolean =>
    noGrad(() =>
      tidy(() => {
        const image = normalizeRows(
          vision.forward(processor.preprocess([sceneImage(scene)])).imageEmbeds,
        );
        const texts = normalizeRows(text.forward(tokenIds(tokenizer, captions)).textEmbeds);
        const scores = image.matmul(texts.transpose(0, 1)).flatten().toArray() as number[];
        return scores.every((s, i) => i === 0 || s < scores[0]!);
      }),
    );
  let easy = 0;
  let hard = 0;
  held.forEach((scene, i) => {
    const wrong = others.slice(i * distractors, (i + 1) * distractors).map((s) => s.caption);
    if (rankFirst(scene, [scene.caption, ...wrong])) easy++;
    const altered = Array.from({ length: distractors }, (_, v) => alteredCaption(scene, v));
    if (rankFirst(scene, [scene.caption, ...altered])) hard++;
  });
  return {
    count,
    candidates: distractors + 1,
    accuracy: easy / count,
    hardAccuracy: hard / count,
  };
}

export type AttributeAccuracy = Record<ProbeAttribute, number> & { all: number; count: number };

/** Share of predictions matching the labels, per attribute and all four at once. */
export function attributeAccuracy(
  predicted: readonly ProbeLabels[],
  truth: readonly ProbeLabels[],
): AttributeAccuracy {
  const out = { all: 0, count: predicted.length } as AttributeAccuracy;
  for (const k of PROBE_ATTRIBUTES) out[k] = 0;
  predicted.forEach((p, i) => {
    let all = true;
    for (const k of PROBE_ATTRIBUTES) {
      if (p[k] === truth[i]![k]) out[k]++;
      else all = false;
    }
    if (all) out.all++;
  });
  for (const k of [...PROBE_ATTRIBUTES, 'all'] as const) out[k] /= Math.max(1, predicted.length);
  return out;
}

/** The probe on held-out single-object scenes (its own accuracy, the judge's reliability). */
export function probeAccuracy(probe: AttributeProbe, count = 256): AttributeAccuracy {
  const held = scenes('heldout', 0, count, { objectCount: 1 });
  return attributeAccuracy(probeImages(probe, held.map(sceneImage)), held.map(sceneLabels));
}

export type RoundTripAccuracy = AttributeAccuracy & { colourAndPattern: number };

/**
 * The probe on VAE round trips (encode, posterior mean, decode) of held-out single-object scenes:
 * what survives the latent space and the decoder, and so roughly the most a generated image can
 * show. colourAndPattern: both read right at once, selective fidelity's criterion.
 */
export function vaeRoundTripAccuracy(
  vae: AutoencoderKL,
  probe: AttributeProbe,
  count = 256,
): RoundTripAccuracy {
  const held = scenes('heldout', 0, count, { objectCount: 1 });
  const predicted: ProbeLabels[] = [];
  for (let i = 0; i < held.length; i += 32) {
    const x = scenesToTensor(held.slice(i, i + 32));
    try {
      const decoded = noGrad(() => tidy(() => vae.forward(x).clamp(-1, 1)));
      try {
        predicted.push(...probe.predict(decoded));
      } finally {
        decoded.dispose();
      }
    } finally {
      x.dispose();
    }
  }
  const truth = held.map(sceneLabels);
  const both = predicted.filter(
    (p, i) => p.colour === truth[i]!.colour && p.pattern === truth[i]!.pattern,
  ).length;
  return { ...attributeAccuracy(predicted, truth), colourAndPattern: both / held.length };
}

/** Held-out captions: those the model card reports, or others for choosing between models. */
export type CaptionSet = 'report' | 'tuning';
export const CAPTION_START: Readonly<Record<CaptionSet, number>> = {
  report: 1_000_000,
  tuning: 2_000_000,
};

export interface GenerationQualityOptions {
  /** Default report. */
  captions?: CaptionSet;
  count?: number;
  steps?: number;
  guidanceScale?: number;
  seed?: number;
  batchSize?: number;
}

/**
 * Text-to-image attribute accuracy: captions of held-out single-object scenes are generated and
 * the probe's reading of each image is compared with the caption's attributes.
 */
export async function generationAccuracy(
  pipeline: StableDiffusionPipeline,
  probe: AttributeProbe,
  options: GenerationQualityOptions = {},
): Promise<AttributeAccuracy & { images: RgbImage[]; prompts: string[] }> {
  const count = options.count ?? 64;
  const batch = options.batchSize ?? 16;
  const start = CAPTION_START[options.captions ?? 'report'];
  const held = scenes('heldout', start, count, { objectCount: 1 });
  const prompts = held.map((s) => s.caption);
  const images: RgbImage[] = [];
  for (let i = 0; i < count; i += batch) {
    const { images: out } = await pipeline.generate({
      prompt: prompts.slice(i, i + batch),
      steps: options.steps ?? 25,
      guidanceScale: options.guidanceScale ?? 5,
      seed: (options.seed ?? 0) + i,
    });
    images.push(...out);
  }
  return {
    ...attributeAccuracy(probeImages(probe, images), held.map(sceneLabels)),
    images,
    prompts,
  };
}

export interface RngrQuality {
  count: number;
  /** Mean IoU of the subject mask with the subject's true instance mask. */
  subjectIoU: number;
  /** Mean share of the distractor's true pixels inside the subject mask (0 is best). */
  distractorLeak: number;
  /** Mean IoU of the look-alike's mask (the region Eq. 3 fills) with its true instance mask. */
  distractorIoU: number;
}

/** RNGR masks on held-out look-alike pairs (positive click on one, negative on the other). */
export async function rngrQuality(
  extractor: PatchFeatureExtractor,
  count = 50,
  options: Pick<RngrOptions, 'rule' | 'refine' | 'clickRadius'> = {},
): Promise<RngrQuality> {
  let iou = 0;
  let leak = 0;
  let distractorIoU = 0;
  for (let i = 0; i < count; i++) {
    const pair = makeLookalikePair(SPLIT_SEEDS.heldout.start + 2_000_000 + i);
    const [result] = await buildSubjectMasks(
      [
        {
          name: `pair-${i}`,
          image: sceneImage(pair.scene),
          positive: [[pair.positive.x, pair.positive.y]],
          negative: [[pair.negative.x, pair.negative.y]],
        },
      ],
      extractor,
      { ...options, propagate: false },
    );
    const truth = pair.scene.objects[pair.subject]!.mask;
    const distractor = pair.scene.objects[pair.distractor]!.mask;
    const mask = result!.subject.mask;
    iou += maskIoU(mask, truth);
    distractorIoU += result!.distractor ? maskIoU(result!.distractor.mask, distractor) : 0;
    let inside = 0;
    let total = 0;
    for (let p = 0; p < mask.length; p++) {
      if (distractor[p]) {
        total++;
        if (mask[p]) inside++;
      }
    }
    leak += total ? inside / total : 0;
  }
  return {
    count,
    subjectIoU: iou / count,
    distractorLeak: leak / count,
    distractorIoU: distractorIoU / count,
  };
}
