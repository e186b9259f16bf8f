// The adapter stage of the toy models (opt-in, not in the paper): a P3S adapter pretrained on
// many subjects, a starting point for per-subject fine-tuning (`p3s train --init-adapter`; at
// CPU scale it changes nothing yet, so the demo does not use it: docs/toy.md). The paper starts
// each subject's copy from the U-Net with zero projections; on the toy models such an adapter
// needs hundreds of steps to move the base model at all, and then carries its references'
// backgrounds along. Here the copy learns, over thousands of toy subjects, what a subject
// condition is for: each sample pairs two photos of one subject, the condition is the first cut
// to the subject (grey around it, as `--subject-only-condition`), the denoising target is the
// second, in another context, under "a sks <shape> <context>". As BLIP-Diffusion pretrains its
// subject representation before fine-tuning. Eq. (14)'s error is weighted towards the target's
// subject (the subject is a small part of the image; at weight 1 the loss barely rewards reading
// the condition).
import { mkdirSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { rand, randint, randn } from '../../src/engine/creation.js';
import { noGrad } from '../../src/engine/autograd.js';
import { Generator, manualSeed } from '../../src/engine/random.js';
import type { Tensor } from '../../src/engine/tensor.js';
import type { RgbImage } from '../../src/io/image.js';
import type { CLIPImageProcessor } from '../../src/models/clip/image_processing.js';
import type {
  CLIPTextModel,
  CLIPTextModelWithProjection,
} from '../../src/models/clip/clip_text_model.js';
import type { CLIPVisionModel } from '../../src/models/clip/clip_vision_model.js';
import type { UNet2DConditionModel } from '../../src/models/unet/unet_2d_condition.js';
import type { AutoencoderKL } from '../../src/models/vae/autoencoder_kl.js';
import { SD15_SCHEDULER_CONFIG } from '../testing/tiny_models.js';
import { Adam } from '../../src/optim/adam.js';
import {
  baseModelFingerprint,
  modelFingerprint,
  saveAdapter,
} from '../../src/p3s/adapter/adapter_io.js';
import { weightedLdmLoss } from '../../src/p3s/adapter/losses.js';
import { formatWeightCurve } from '../../src/p3s/adapter/weight_schedule.js';
import {
  P3SAdapter,
  P3SUNet,
  type P3SSettings,
  type SubjectCondition,
} from '../../src/p3s/adapter/p3s_unet.js';
import { maskToImage } from '../../src/p3s/supervision/mask_outputs.js';
import { DEFAULT_IDENTIFIER } from '../../src/p3s/prompts.js';
import {
  cutToSubject,
  encodeLatents,
  encodeReferenceImages,
  keepSubject,
  maskShares,
  squareCrop,
} from '../../src/p3s/references.js';
import { DDPMScheduler } from '../../src/schedulers/scheduling_ddpm.js';
import type { CLIPTokenizer } from '../../src/tokenizers/clip_tokenizer.js';
import { BACKGROUND_PHRASES, type Shape } from '../../src/toyworld/attributes.js';
import { makeSubjectReferenceSet, type LookalikeScene } from '../../src/toyworld/pairs.js';
import { sceneImage, tokenIds } from './data.js';
import { trainStage, type StageResult, type StageSettings } from './stage.js';

export interface AdapterStageOptions extends StageSettings {
  /** Weight of the error outside the target's subject (Eq. 14 weighted; 1: the plain loss). */
  backgroundLossWeight: number;
  /** The condition is cut to this many times the subject's box (as `--crop-subject`). */
  subjectMargin: number;
  /** Share of captions replaced by "" (the unconditional branch of guidance). */
  captionDropout: number;
}

export const ADAPTER_STAGE_DEFAULTS = {
  steps: 1200,
  batchSize: 8,
  lr: 1e-3,
  backgroundLossWeight: 0.1,
  subjectMargin: 1.5,
  captionDropout: 0.1,
};

/** The P3S settings the adapter is pretrained (and then fine-tuned and sampled) with. */
const PRETRAINED_ADAPTER_SETTINGS: Omit<P3SSettings, 'numTrainTimesteps'> = {
  lambda: 0.2,
  weightCurve: { kind: 'fixed', weight: 1 },
  injectionMode: 'decoupled',
};

/** Subject sets far from the small seeds p3s demo and the tests pick subjects with. */
const ADAPTER_FIRST_SET = 50_000_000;

export interface AdapterFrozenParts {
  unet: UNet2DConditionModel;
  vae: AutoencoderKL;
  textEncoder: CLIPTextModel | CLIPTextModelWithProjection;
  tokenizer: CLIPTokenizer;
  clip: CLIPVisionModel;
  processor: CLIPImageProcessor;
}

/** One object's mask as a white-on-black image. */
function maskImage(scene: LookalikeScene['scene'], index: number): RgbImage {
  return maskToImage(scene.objects[index]!.mask, scene.size, scene.size);
}

/** The subject alone, cut to margin × its box and resized: what a fine-tuned adapter is given. */
export function subjectCondition(photo: LookalikeScene, margin: number, size: number): RgbImage {
  // the scene generator keeps every object visible, so the mask is never empty
  const cut = cutToSubject(sceneImage(photo.scene), maskImage(photo.scene, photo.subject), margin)!;
  return keepSubject(squareCrop(cut.image, size), squareCrop(cut.mask, size));
}

/** One pretraining sample: the condition photo, the target photo and the target's caption. */
export interface AdapterPair {
  condition: RgbImage;
  target: RgbImage;
  /** The target's subject mask, for the weighted loss. */
  targetMask: RgbImage;
  shape: Shape;
  caption: string;
}

/** Pair `index` of the stage's data: a pure function of the index. */
export function adapterPair(index: number, margin: number): AdapterPair {
  const set = makeSubjectReferenceSet(ADAPTER_FIRST_SET + index, { count: 2, withDistractor: 1 });
  const [first, second] = set.images as [LookalikeScene, LookalikeScene];
  const size = first.scene.size;
  return {
    condition: subjectCondition(first, margin, size),
    target: sceneImage(second.scene),
    targetMask: maskImage(second.scene, second.subject),
    shape: set.subject.shape,
    caption: `a ${DEFAULT_IDENTIFIER} ${set.subject.shape} ${BACKGROUND_PHRASES[second.scene.background]}`,
  };
}

/** What one step of the stage computes with: the frozen models and the adapter around them. */
interface AdapterStep {
  frozen: AdapterFrozenParts;
  p3s: P3SUNet;
  scheduler: DDPMScheduler;
  options: AdapterStageOptions;
  generator: Generator;
}

/** Eq. (14) on a batch of pairs, weighted towards the targets' subjects. */
function pairsLoss(pairs: readonly AdapterPair[], run: AdapterStep): Tensor {
  const { frozen, p3s, scheduler, options, generator } = run;
  const { vae, clip, processor, textEncoder, tokenizer } = frozen;
  const b = pairs.length;
  // Draw order: dropout, timesteps, noise.
  const c = encodeReferenceImages(
    pairs.map((p) => p.condition),
    vae,
    clip,
    processor,
  );
  const condition: SubjectCondition = { latent: c.latents, clipStates: c.clipStates };
  const x0 = encodeLatents(
    pairs.map((p) => p.target),
    vae,
  );
  const drop = rand([b], { generator }).toArray() as number[];
  const captions = pairs.map((p, i) => (drop[i]! < options.captionDropout ? '' : p.caption));
  const context = noGrad(() => textEncoder.forward(tokenIds(tokenizer, captions)).lastHiddenState);
  const T = scheduler.config.num_train_timesteps;
  const timesteps = randint(0, T, [b], { generator }).toArray() as number[];
  const noise = randn(x0.shape, { generator });
  const noisy = scheduler.addNoise(x0, noise, timesteps);
  const out = p3s.forward(noisy, timesteps, context, condition, { captureAttention: false });
  const [h, w] = [x0.shape[2]!, x0.shape[3]!];
  const share = maskShares(
    pairs.map((p) => p.targetMask),
    h,
    w,
  );
  const weights = share.mul(1 - options.backgroundLossWeight).add(options.backgroundLossWeight); // m + w·(1 − m)
  return weightedLdmLoss(out.noisePred, noise, weights); // Eq. (14), weighted
}

export async function trainToyAdapter(
  options: AdapterStageOptions,
  frozen: AdapterFrozenParts,
): Promise<{ adapter: P3SAdapter; result: StageResult }> {
  const { unet, vae, textEncoder, clip } = frozen;
  for (const m of [unet, vae, textEncoder, clip]) m.eval().freeze();
  manualSeed(options.seed);
  const adapter = new P3SAdapter(unet, clip.config.hidden_size);
  adapter.requiresGrad_(true).train();
  const scheduler = DDPMScheduler.fromConfig(SD15_SCHEDULER_CONFIG);
  const T = scheduler.config.num_train_timesteps;
  const p3s = new P3SUNet(unet, adapter, { ...PRETRAINED_ADAPTER_SETTINGS, numTrainTimesteps: T });
  const optimizer = new Adam(adapter.parameters(), { lr: options.lr });
  const generator = new Generator(options.seed);
  const run: AdapterStep = { frozen, p3s, scheduler, options, generator };
  const b = options.batchSize;
  try {
    const { model, result } = await trainStage({
      name: 'adapter',
      settings: options,
      warmup: 100,
      model: adapter,
      optimizer,
      generator,
      loss: (step) =>
        pairsLoss(
          Array.from({ length: b }, (_, i) => adapterPair(step * b + i, options.subjectMargin)),
          run,
        ),
    });
    return { adapter: model, result };
  } finally {
    p3s.detach();
  }
}

/** Where the pretrained adapter goes in the toy model folder. */
export const PRETRAINED_ADAPTER_FILE = 'p3s_adapter/adapter.safetensors';

/**
 * Writes the pretrained adapter as an ordinary adapter file (fp16 weights) for `--init-adapter`.
 * Its subject condition is pair 0's, so the file also works with `p3s generate` as it is.
 */
export function exportPretrainedAdapter(
  adapter: P3SAdapter,
  root: string,
  frozen: Pick<AdapterFrozenParts, 'unet' | 'vae' | 'clip' | 'processor'>,
  options: AdapterStageOptions,
): string {
  const path = join(root, PRETRAINED_ADAPTER_FILE);
  mkdirSync(dirname(path), { recursive: true });
  const example = adapterPair(0, options.subjectMargin);
  const encoded = encodeReferenceImages(
    [example.condition],
    frozen.vae,
    frozen.clip,
    frozen.processor,
  );
  const half = new P3SAdapter(frozen.unet, frozen.clip.config.hidden_size).to('float16');
  try {
    half.loadStateDict(adapter.stateDict());
    saveAdapter(
      path,
      half,
      { latent: encoded.latents, clipStates: encoded.clipStates },
      {
        baseModel: basename(resolve(root)),
        baseFingerprint: baseModelFingerprint(frozen.unet),
        clipModel: 'image_encoder',
        clipFingerprint: modelFingerprint(frozen.clip, frozen.clip.config),
        identifier: DEFAULT_IDENTIFIER,
        classWord: example.shape,
        promptTemplate: 'a {}',
        lambda: PRETRAINED_ADAPTER_SETTINGS.lambda,
        weightCurve: formatWeightCurve(PRETRAINED_ADAPTER_SETTINGS.weightCurve),
        injectionMode: PRETRAINED_ADAPTER_SETTINGS.injectionMode,
        numTrainTimesteps: Number(SD15_SCHEDULER_CONFIG.num_train_timesteps),
        trainingSteps: options.steps,
        resolution: example.target.width,
        references: [],
        training: {
          pretrained_on_pairs: options.steps * options.batchSize,
          learning_rate: options.lr,
          batch_size: options.batchSize,
          background_loss_weight: options.backgroundLossWeight,
          subject_margin: options.subjectMargin,
          condition_dropout: options.captionDropout,
          seed: options.seed,
        },
      },
    );
  } finally {
    half.dispose();
    encoded.latents.dispose();
    encoded.clipStates.dispose();
  }
  return path;
}
