// P3S generation: the base model and an adapter, DDIM (50 steps, guidance 7.5 in the paper,
// Sec. IV-A), the trainable copy's features injected at every step with the weight ε_t of
// Eq. (9)–(10).
//
// Classifier-free guidance runs the batch [x; x] with text contexts [c_∅; c]. The subject
// condition (I', c_s) goes to both halves: the copy's features are injected into the
// unconditional prediction too, so guidance amplifies the text's effect, (ε_c − ε_∅), on top of
// a prediction that already carries the subject, rather than amplifying the subject itself. This
// matches training, where a dropped text prompt keeps its subject condition (see train.ts).
import { existsSync, mkdirSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { randn } from '../engine/creation.js';
import { noGrad } from '../engine/autograd.js';
import { Generator } from '../engine/random.js';
import { disposeAll, tidy } from '../engine/scope.js';
import { Tensor } from '../engine/tensor.js';
import * as ops from '../engine/ops.generated.js';
import * as F from '../nn/functional.js';
import { contactSheet, tensorToImage, writePng, type RgbImage } from '../io/image.js';
import {
  StableDiffusionPipeline,
  denoise,
  usesGuidance,
  type SamplingScheduler,
} from '../pipelines/stable_diffusion.js';
import { ModelLoadError } from '../models/loading.js';
import {
  loadAdapter,
  p3sVersion,
  readAdapterMetadata,
  type AdapterMetadata,
} from './adapter/adapter_io.js';
import { P3SUNet, type P3SSettings, type SubjectCondition } from './adapter/p3s_unet.js';
import {
  formatWeightCurve,
  parseWeightCurve,
  type WeightCurve,
} from './adapter/weight_schedule.js';
import type { InjectionMode } from './adapter/injection.js';
import { fillPrompt, mentionsIdentifier, readPromptFile } from './prompts.js';

/** Which reference's condition an image gets: a fixed index, or image k of a prompt → k mod N. */
export type ReferenceChoice = number | 'cycle';

export interface SampleRequest {
  prompt: string;
  negativePrompt: string;
  /** One image per seed; each draws its x_T from Generator(seed), so batching does not matter. */
  seeds: readonly number[];
  /** Index into the condition's references, one per image. */
  references: readonly number[];
  steps: number;
  guidanceScale: number;
  eta: number;
  /** Latent size (h, w); the condition latents are resized to it when they differ. */
  latentSize: [number, number];
  /**
   * Strength of the latent bias (Sec. III): x_T = σ·ε + s·I'_latent, the image's reference latent
   * added to its starting noise (default 0: none).
   */
  latentBias?: number;
  /**
   * Subject condition on the conditional half of the guidance batch only (default false: on
   * both), so that guidance amplifies the subject as well as the text.
   */
  subjectGuidance?: boolean;
}

/** The loaded pieces sampling needs. */
export interface SamplingModels {
  pipeline: StableDiffusionPipeline;
  p3s: P3SUNet;
  /** All references: latents (N, C, h, w), CLIP states (N, L, E). */
  condition: SubjectCondition;
}

/** The subject condition for a batch: the chosen references, resized to the latent size. */
function conditionBatch(
  condition: SubjectCondition,
  references: readonly number[],
  latentSize: [number, number],
): SubjectCondition {
  const n = condition.latent.shape[0]!;
  for (const r of references) {
    if (!Number.isInteger(r) || r < 0 || r >= n)
      throw new RangeError(`Reference index ${r} is out of range: the adapter holds ${n}`);
  }
  return tidy(() => {
    let latent = ops.cat(
      references.map((r) => condition.latent.slice(0, r, r + 1)),
      0,
    ); // (B, C, h, w)
    const clipStates = ops.cat(
      references.map((r) => condition.clipStates.slice(0, r, r + 1)),
      0,
    ); // (B, L, E)
    const [h, w] = latentSize;
    if (latent.shape[2] !== h || latent.shape[3] !== w)
      latent = F.interpolate(latent, { size: [h, w], mode: 'bilinear' });
    return { latent, clipStates };
  });
}

/**
 * Images for one prompt: one per seed, in one batch. The subject condition goes to both halves
 * of the classifier-free-guidance batch.
 */
export async function sampleP3S(
  models: SamplingModels,
  scheduler: SamplingScheduler,
  request: SampleRequest,
  onStep?: (i: number, total: number) => void | Promise<void>,
): Promise<RgbImage[]> {
  const { pipeline, p3s } = models;
  const b = request.seeds.length;
  if (b === 0) throw new RangeError('Expected at least one seed');
  if (request.references.length !== b)
    throw new RangeError(
      `Expected ${b} reference indices but received ${request.references.length}`,
    );
  const guided = usesGuidance(request.guidanceScale);
  const { promptEmbeds, negativePromptEmbeds } = pipeline.encodePrompt(
    request.prompt,
    guided ? request.negativePrompt : null,
    { numImagesPerPrompt: b },
  );
  const owned: Tensor[] = [promptEmbeds];
  if (negativePromptEmbeds) owned.push(negativePromptEmbeds);
  try {
    const context = negativePromptEmbeds
      ? ops.cat([negativePromptEmbeds, promptEmbeds], 0) // [c_∅; c]
      : promptEmbeds;
    if (context !== promptEmbeds) owned.push(context);
    const single = conditionBatch(models.condition, request.references, request.latentSize);
    owned.push(single.latent, single.clipStates);
    const condition: SubjectCondition = guided
      ? noGrad(() => ({
          latent: ops.cat([single.latent, single.latent], 0),
          clipStates: ops.cat([single.clipStates, single.clipStates], 0),
        }))
      : single;
    if (guided) owned.push(condition.latent, condition.clipStates);
    // [ε_∅; ε_c]: with subject guidance, ε_∅ is the frozen base model's (ε_t = 0 there)
    const injectionScale =
      guided && request.subjectGuidance
        ? [...new Array<number>(b).fill(0), ...new Array<number>(b).fill(1)]
        : undefined;
    const [h, w] = request.latentSize;
    const channels = pipeline.unet.config.in_channels;
    const bias = request.latentBias ?? 0;
    const noise = tidy(() => {
      const start = ops
        .cat(
          request.seeds.map((s) => randn([1, channels, h, w], { generator: new Generator(s) })),
          0,
        )
        .mul(scheduler.initNoiseSigma); // x_T (B, C, h, w)
      // The reference's latent added to the noise: a bias towards the subject (Sec. III).
      return bias === 0 ? start : start.add(single.latent.mul(bias));
    });
    owned.push(noise);
    const final = await denoise({
      scheduler,
      latents: noise,
      steps: request.steps,
      guidanceScale: request.guidanceScale,
      eta: request.eta,
      generator: request.eta > 0 ? new Generator(request.seeds[0]!) : undefined,
      predict: (latentInput, t) =>
        p3s.forward(
          latentInput,
          new Array<number>(latentInput.shape[0]!).fill(t),
          context,
          condition,
          {
            injectionScale,
          },
        ).noisePred,
      onStep: onStep ? (i, total) => onStep(i, total) : undefined,
    });
    owned.push(final);
    const pixels = pipeline.decodeLatents(final); // (B, 3, H, W) in [0, 1]
    owned.push(pixels);
    const images: RgbImage[] = [];
    for (let i = 0; i < b; i++) {
      const one = pixels.select(0, i);
      images.push(tensorToImage(one));
      one.dispose();
    }
    return images;
  } finally {
    disposeAll(owned);
  }
}

export interface GenerateP3SConfig {
  /** The base model folder (diffusers layout) the adapter was trained on. */
  baseModel: string;
  /** The adapter file written by trainP3S. */
  adapter: string;
  outDir: string;
  /** Prompts; `{}` and `[V]` become "identifier classWord". */
  prompts?: string[];
  /** A file with one prompt per line (added after `prompts`). */
  promptFile?: string;
  /** Default '' (SD 1.5's unconditional prompt). */
  negativePrompt?: string;
  /** Images per prompt (default 4); ignored when `seeds` is given. */
  numImages?: number;
  /** Image k of every prompt uses seed + k (default 0). */
  seed?: number;
  /** Explicit seeds, one image per seed for every prompt. */
  seeds?: number[];
  /** DDIM steps (default 50). */
  steps?: number;
  /** Classifier-free guidance scale (default 7.5; ≤ 1 turns guidance off). */
  guidanceScale?: number;
  /** DDIM η (default 0). */
  eta?: number;
  /** Reference latent added to each image's starting noise, times this (Sec. III; default 0). */
  latentBias?: number;
  /**
   * Give the subject condition to the conditional half of the guidance batch only, so that
   * guidance amplifies the subject too (default false: both halves, see docs/p3s.md).
   */
  subjectGuidance?: boolean;
  /** λ of Eq. (7); default: the adapter's. */
  lambda?: number;
  /** ε_t of Eq. (10): a WeightCurve or its text form ("paper:0.5,0.2,2", "fixed:1" ...); default: the adapter's. */
  weightCurve?: WeightCurve | string;
  /** Default: the adapter's. */
  injectionMode?: InjectionMode;
  /** Which reference conditions each image (default 'cycle'). */
  reference?: ReferenceChoice;
  /** Output size in pixels (default: the adapter's training resolution). */
  height?: number;
  width?: number;
  /** Images per forward batch (default: all images of a prompt). */
  batchSize?: number;
  /** Write contact-sheet.png (default true). */
  contactSheet?: boolean;
  onProgress?: (p: GenerateProgress) => void;
  /** Non-fatal problems (a prompt without the identifier ...). Also returned in the result. */
  onWarning?: (message: string) => void;
}

export interface GenerateProgress {
  /** Images finished so far and in all. */
  done: number;
  total: number;
  prompt: string;
  /** Denoising step within the current batch. */
  step: number;
  steps: number;
}

export interface GeneratedImage {
  path: string;
  prompt: string;
  seed: number;
  reference: number;
  image: RgbImage;
  /** The PNG text chunks written with it. */
  parameters: Record<string, string>;
}

export interface GenerateP3SResult {
  images: GeneratedImage[];
  contactSheetPath: string | null;
  warnings: string[];
  metadata: AdapterMetadata;
}

function positiveInt(v: number, what: string): number {
  if (!Number.isSafeInteger(v) || v < 1)
    throw new RangeError(`Expected a positive integer for ${what} but received ${v}`);
  return v;
}

function slug(text: string): string {
  const s = text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 48)
    .replace(/-+$/, '');
  return s || 'prompt';
}

/** The prompts of a config, templates filled; warnings for those without the identifier. */
export function resolvePrompts(
  config: Pick<GenerateP3SConfig, 'prompts' | 'promptFile'>,
  identifier: string,
  classWord: string,
): { prompts: string[]; warnings: string[] } {
  const raw = [...(config.prompts ?? [])];
  if (config.promptFile !== undefined) raw.push(...readPromptFile(config.promptFile));
  if (raw.length === 0) throw new Error('Expected at least one prompt (prompts or promptFile)');
  const warnings: string[] = [];
  const prompts = raw.map((p) => {
    const filled = fillPrompt(p, identifier, classWord);
    if (!mentionsIdentifier(filled, identifier)) {
      warnings.push(
        `Prompt "${filled}" does not contain the identifier "${identifier}": the text does not name the subject ` +
          `(the trainable copy still injects it); write "{}" or "[V]" where "${identifier} ${classWord}" belongs`,
      );
    }
    return filled;
  });
  return { prompts, warnings };
}

/** Loads base model and adapter, generates every prompt × seed, writes PNGs and a contact sheet. */
export async function generateP3S(config: GenerateP3SConfig): Promise<GenerateP3SResult> {
  if (!existsSync(config.baseModel))
    throw new ModelLoadError(`Base model folder not found: ${config.baseModel}`);
  const metadata = readAdapterMetadata(config.adapter); // a wrong file fails before loading models
  const steps = positiveInt(config.steps ?? 50, 'steps');
  const guidanceScale = config.guidanceScale ?? 7.5;
  if (!Number.isFinite(guidanceScale))
    throw new RangeError(`Expected a finite guidance scale but received ${guidanceScale}`);
  const eta = config.eta ?? 0;
  const latentBias = config.latentBias ?? 0;
  const subjectGuidance = config.subjectGuidance ?? false;
  if (!Number.isFinite(latentBias) || latentBias < 0)
    throw new RangeError(`Expected a non-negative latent bias but received ${latentBias}`);
  const seeds =
    config.seeds ??
    Array.from(
      { length: positiveInt(config.numImages ?? 4, 'numImages') },
      (_, k) => (config.seed ?? 0) + k,
    );
  if (seeds.length === 0) throw new RangeError('Expected at least one seed');
  for (const s of seeds) {
    if (!Number.isSafeInteger(s) || s < 0)
      throw new RangeError(`Expected non-negative integer seeds but received ${s}`);
  }
  const { prompts, warnings } = resolvePrompts(config, metadata.identifier, metadata.classWord);
  for (const w of warnings) config.onWarning?.(w);
  const batchSize = positiveInt(config.batchSize ?? seeds.length, 'batchSize');
  const negativePrompt = config.negativePrompt ?? '';

  const pipeline = StableDiffusionPipeline.fromPretrained(config.baseModel, { scheduler: 'ddim' });
  pipeline.unet.freeze();
  pipeline.textEncoder.freeze();
  pipeline.vae.freeze();
  let loaded: ReturnType<typeof loadAdapter> | null = null;
  let p3s: P3SUNet | null = null;
  try {
    loaded = loadAdapter(config.adapter, pipeline.unet, config.baseModel);
    const settings: P3SSettings = {
      ...loaded.settings,
      lambda: config.lambda ?? loaded.settings.lambda,
      curve:
        config.weightCurve === undefined
          ? loaded.settings.curve
          : typeof config.weightCurve === 'string'
            ? parseWeightCurve(config.weightCurve)
            : config.weightCurve,
      mode: config.injectionMode ?? loaded.settings.mode,
      numTrainTimesteps: pipeline.scheduler.config.num_train_timesteps,
    };
    p3s = new P3SUNet(pipeline.unet, loaded.adapter, settings);
    const n = loaded.condition.latent.shape[0]!;
    const choice = config.reference ?? 'cycle';
    if (choice !== 'cycle' && !(Number.isInteger(choice) && choice >= 0 && choice < n))
      throw new RangeError(
        `Expected a reference index in [0, ${n}) or 'cycle' but received ${choice}`,
      );
    const f = pipeline.vaeScaleFactor;
    const side = metadata.resolution;
    const height = config.height ?? side;
    const width = config.width ?? side;
    if (height % f || width % f || height < f || width < f)
      throw new RangeError(
        `Expected height and width to be positive multiples of ${f} but received ${height}×${width}`,
      );
    mkdirSync(config.outDir, { recursive: true });
    const models = { pipeline, p3s, condition: loaded.condition };
    const images: GeneratedImage[] = [];
    const total = prompts.length * seeds.length;
    const shared = {
      negative_prompt: negativePrompt,
      steps: String(steps),
      guidance_scale: String(guidanceScale),
      scheduler: 'DDIM',
      eta: String(eta),
      latent_bias: String(latentBias),
      subject_guidance: String(subjectGuidance),
      lambda: String(settings.lambda),
      weight_curve: formatWeightCurve(settings.curve),
      injection_mode: settings.mode,
      width: String(width),
      height: String(height),
      base_model: basename(resolve(config.baseModel)),
      base_fingerprint: metadata.baseFingerprint,
      adapter: basename(config.adapter),
      adapter_training_steps: String(metadata.trainingSteps),
      identifier: metadata.identifier,
      class_word: metadata.classWord,
      Software: `p3s ${p3sVersion()}`,
    };
    for (let p = 0; p < prompts.length; p++) {
      const prompt = prompts[p]!;
      for (let start = 0; start < seeds.length; start += batchSize) {
        const batchSeeds = seeds.slice(start, start + batchSize);
        const refs = batchSeeds.map((_, j) => (choice === 'cycle' ? (start + j) % n : choice));
        const batch = await sampleP3S(
          models,
          pipeline.scheduler,
          {
            prompt,
            negativePrompt,
            seeds: batchSeeds,
            references: refs,
            steps,
            guidanceScale,
            eta,
            latentSize: [height / f, width / f],
            latentBias,
            subjectGuidance,
          },
          (i, stepsTotal) =>
            config.onProgress?.({
              done: images.length,
              total,
              prompt,
              step: i + 1,
              steps: stepsTotal,
            }),
        );
        for (let j = 0; j < batch.length; j++) {
          const seed = batchSeeds[j]!;
          const reference = refs[j]!;
          const parameters: Record<string, string> = {
            prompt,
            seed: String(seed),
            reference: `${reference} (${metadata.references[reference] ?? '?'})`,
            ...shared,
          };
          const path = join(
            config.outDir,
            `${String(p).padStart(3, '0')}-${slug(prompt)}-seed${seed}.png`,
          );
          await writePng(path, batch[j]!, { text: parameters });
          images.push({ path, prompt, seed, reference, image: batch[j]!, parameters });
        }
        config.onProgress?.({ done: images.length, total, prompt, step: steps, steps });
      }
    }
    let contactSheetPath: string | null = null;
    if (config.contactSheet ?? true) {
      contactSheetPath = join(config.outDir, 'contact-sheet.png');
      const sheet = contactSheet(
        images.map((i) => i.image),
        seeds.length,
        { gap: 2 },
      );
      await writePng(contactSheetPath, sheet, {
        text: { prompts: prompts.join('\n'), seeds: seeds.join(','), ...shared },
      });
    }
    return { images, contactSheetPath, warnings, metadata };
  } finally {
    p3s?.detach();
    loaded?.adapter.dispose();
    if (loaded) disposeAll([loaded.condition.latent, loaded.condition.clipStates]);
    pipeline.dispose();
  }
}
