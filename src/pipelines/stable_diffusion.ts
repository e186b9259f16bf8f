// Text-to-image sampling with Stable Diffusion 1.x, as diffusers 0.27.2's StableDiffusionPipeline
// computes it, from a diffusers pipeline folder (model_index.json + one folder per component).
//
//   const pipe = StableDiffusionPipeline.fromPretrained('sd15', { scheduler: 'ddim' });
//   const { images } = await pipe.generate({ prompt: 'a photo of a dog', steps: 50, seed: 0 });
//
// The sampling loop itself is `denoise()`, which takes any noise-prediction function, so a
// wrapped U-Net (P3S's condition injection) samples with the same loop.
//
// Classifier-free guidance (Ho & Salimans 2022, "Classifier-Free Diffusion Guidance", Eq. 6,
// in diffusers' form): the U-Net sees the batch [x, x] with contexts [c_∅, c] and
//   ε̃ = ε(x, c_∅) + w · (ε(x, c) − ε(x, c_∅)),   w = guidanceScale; off when w ≤ 1.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { randn, tensor } from '../engine/creation.js';
import type { DType } from '../engine/dtype.js';
import { allFinite } from '../engine/finite.js';
import { noGrad } from '../engine/autograd.js';
import * as ops from '../engine/ops.generated.js';
import { Generator } from '../engine/random.js';
import { tidy } from '../engine/scope.js';
import { Tensor } from '../engine/tensor.js';
import { tensorToImage, type RgbImage } from '../io/image.js';
import { CLIPTextModel, CLIPTextModelWithProjection } from '../models/clip/clip_text_model.js';
import { AutoencoderKL } from '../models/vae/autoencoder_kl.js';
import { UNet2DConditionModel } from '../models/unet/unet_2d_condition.js';
import { ModelLoadError, readModelIndex } from '../models/loading.js';
import { CLIPTokenizer } from '../tokenizers/clip_tokenizer.js';
import { DDIMScheduler } from '../schedulers/scheduling_ddim.js';
import { DDPMScheduler } from '../schedulers/scheduling_ddpm.js';
import { readSchedulerConfig } from '../schedulers/scheduling_utils.js';
import {
  schedulerFromConfig,
  type Scheduler,
  type SchedulerClassName,
} from '../schedulers/index.js';

/**
 * A prediction in the latents' dtype: a U-Net held in 16 bits under float32 latents predicts in
 * 16 bits, and guidance's difference ε_c − ε_∅ and the scheduler's step are then done in float32.
 */
export function inLatentDtype(prediction: Tensor, latents: Tensor): Tensor {
  if (prediction.dtype === latents.dtype) return prediction;
  const cast = prediction.to(latents.dtype);
  prediction.dispose();
  return cast;
}

/** What denoise() needs of a scheduler (DDIM, PNDM and DDPM all fit). */
export interface SamplingScheduler {
  readonly initNoiseSigma: number;
  /** The inference timesteps, descending, after setTimesteps. */
  readonly timesteps: readonly number[];
  setTimesteps(numInferenceSteps: number): void;
  scaleModelInput(sample: Tensor, timestep: number): Tensor;
  step(
    modelOutput: Tensor,
    timestep: number,
    sample: Tensor,
    options?: { eta?: number; generator?: Generator },
  ): { prevSample: Tensor };
  /** Frees multi-step history (PNDM's past ε); denoise calls it when the loop ends. */
  reset?(): void;
}

/**
 * Noise prediction for the (scaled) latent batch at timestep t. With guidance on, latentInput
 * is [x; x] (2B) and the result's first half is read as the unconditional prediction, the
 * second as the conditional one, so the predictor pairs them with contexts [c_∅; c]. stepIndex
 * counts the scheduler's timesteps from 0 (for per-step schedules of a wrapped model).
 */
export type NoisePredictor = (latentInput: Tensor, t: number, stepIndex: number) => Tensor;

export interface StepInfo {
  timestep: number;
  /** x after this step; valid only during the callback (copy it to keep it). */
  latents: Tensor;
}

export type OnStep = (i: number, total: number, info: StepInfo) => void | Promise<void>;

export interface DenoiseOptions {
  scheduler: SamplingScheduler;
  /** x_T, already multiplied by the scheduler's initNoiseSigma. Not disposed. */
  latents: Tensor;
  steps: number;
  /** w of classifier-free guidance; ≤ 1 turns it off (the predictor then sees x alone). */
  guidanceScale: number;
  predict: NoisePredictor;
  /** DDIM's η (diffusers passes it to schedulers whose step takes it: DDIM only). */
  eta?: number;
  /** The stream for the schedulers' own noise (DDIM with η > 0, DDPM). */
  generator?: Generator;
  /** Called after each step (i from 0; total = number of scheduler timesteps), awaited. */
  onStep?: OnStep;
}

/**
 * Sampling produced NaN or infinite values: non-finite weights somewhere, or settings that
 * overflow. Thrown before any image is made from them (they would be black).
 */
export class NonFiniteError extends Error {
  constructor(
    /** Where they were found: the final latents, or the VAE's decoded pixels. */
    readonly stage: 'latents' | 'decoded images',
  ) {
    super(
      `Sampling produced NaN or infinite ${stage}: no image was made from them. The weights ` +
        '(U-Net, VAE, text encoder, adapter) or the sampling settings are the cause',
    );
    this.name = 'NonFiniteError';
  }
}

/** Throws a NonFiniteError unless every value of `t` is finite. */
function checkFinite(t: Tensor, stage: NonFiniteError['stage']): void {
  if (!allFinite(t)) throw new NonFiniteError(stage);
}

/** DDIM's η: 0 is deterministic DDIM, 1 DDPM's variance; above 1, √(1 − ᾱ_{t−1} − σ²) is NaN. */
export function isDdimEta(eta: number): boolean {
  return eta >= 0 && eta <= 1;
}

function checkEta(eta: number): void {
  if (!isDdimEta(eta))
    throw new RangeError(`Expected a DDIM η in [0, 1] for eta but received ${eta}`);
}

/** Whether a guidance scale turns classifier-free guidance on (diffusers: w > 1). */
export function usesGuidance(guidanceScale: number): boolean {
  return guidanceScale > 1;
}

/** The step options a scheduler's step() takes, as diffusers' prepare_extra_step_kwargs picks them. */
function stepOptions(
  scheduler: SamplingScheduler,
  eta: number,
  generator: Generator | undefined,
): { eta?: number; generator?: Generator } {
  if (scheduler instanceof DDIMScheduler) {
    checkEta(eta);
    return { eta, generator };
  }
  if (scheduler instanceof DDPMScheduler) return { generator };
  return {};
}

/**
 * The reverse-diffusion loop: for each timestep t of scheduler.setTimesteps(steps),
 * ε̃ = guided predict(scaleModelInput(x), t), x ← scheduler.step(ε̃, t, x). Each step runs in its
 * own tidy() under noGrad, and the loop yields to the event loop between steps (so handle
 * finalizers run and onStep can report). Returns the final latents (a new tensor).
 */
export async function denoise(options: DenoiseOptions): Promise<Tensor> {
  const { scheduler, latents, steps, guidanceScale, predict, eta = 0, generator, onStep } = options;
  if (!Number.isSafeInteger(steps) || steps < 1) {
    throw new RangeError(`Expected a positive integer for steps but received ${steps}`);
  }
  if (!Number.isFinite(guidanceScale)) {
    throw new RangeError(
      `Expected a finite number for guidanceScale but received ${guidanceScale}`,
    );
  }
  const guided = usesGuidance(guidanceScale);
  const extra = stepOptions(scheduler, eta, generator);
  scheduler.setTimesteps(steps);
  const timesteps = [...scheduler.timesteps];
  let x = latents;
  try {
    for (let i = 0; i < timesteps.length; i++) {
      const t = timesteps[i]!;
      const next = noGrad(() =>
        tidy(() => {
          // expand the latents for classifier-free guidance: [x; x]
          const input = guided ? ops.cat([x, x], 0) : x;
          const scaled = scheduler.scaleModelInput(input, t);
          const prediction = predict(scaled, t, i);
          const b = x.shape[0]!;
          if (prediction.shape[0] !== input.shape[0]) {
            throw new Error(
              `The noise predictor returned batch ${prediction.shape[0]} for a latent batch of ${input.shape[0]}`,
            );
          }
          let eps = prediction;
          if (guided) {
            // ε̃ = ε_∅ + w (ε_c − ε_∅)
            const uncond = prediction.slice(0, 0, b);
            const cond = prediction.slice(0, b, 2 * b);
            eps = uncond.add(cond.sub(uncond).mul(guidanceScale));
          }
          return scheduler.step(eps, t, x, extra).prevSample;
        }),
      );
      if (x !== latents) x.dispose();
      x = next;
      if (onStep) await onStep(i, timesteps.length, { timestep: t, latents: x });
      // let finalizers of this step's handles run (see docs/engine.md, Memory)
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  } catch (err) {
    if (x !== latents) x.dispose();
    throw err;
  } finally {
    scheduler.reset?.();
  }
  return x === latents ? latents.clone() : x;
}

// ---------------------------------------------------------------------------------------------

export type SchedulerChoice = 'ddim' | 'pndm' | 'ddpm' | 'from-config';

const SCHEDULER_CLASSES: Record<Exclude<SchedulerChoice, 'from-config'>, SchedulerClassName> = {
  ddim: 'DDIMScheduler',
  pndm: 'PNDMScheduler',
  ddpm: 'DDPMScheduler',
};

export interface StableDiffusionFromPretrainedOptions {
  /** Weight-file variant, e.g. 'fp16' (model.fp16.safetensors); falls back to the default file. */
  variant?: string;
  /** Parameter dtype of the three models, e.g. 'float16'. */
  dtype?: DType;
  /**
   * Which sampler: 'from-config' (default: scheduler_config.json's _class_name, SD 1.5's PNDM),
   * or 'ddim' / 'pndm' / 'ddpm' built from the same config, as diffusers'
   * `DDIMScheduler.from_config(pipe.scheduler.config)`.
   */
  scheduler?: SchedulerChoice;
}

export interface StableDiffusionComponents {
  tokenizer: CLIPTokenizer;
  /** SD 1.5's CLIPTextModel; a CLIPTextModelWithProjection (as the toy models ship) also fits. */
  textEncoder: CLIPTextModel | CLIPTextModelWithProjection;
  unet: UNet2DConditionModel;
  vae: AutoencoderKL;
  scheduler: Scheduler;
}

export interface PromptEmbeds {
  /** (B·numImagesPerPrompt, 77, D). */
  promptEmbeds: Tensor;
  /** (B·numImagesPerPrompt, 77, D), or null when not asked for. */
  negativePromptEmbeds: Tensor | null;
}

export interface EncodePromptOptions {
  /** Each prompt's embedding is repeated this many times, consecutively (default 1). */
  numImagesPerPrompt?: number;
  /** diffusers' clip_skip: 1 uses the penultimate layer's output (with final_layer_norm). */
  clipSkip?: number;
}

export interface GenerateOptions {
  /** One prompt or a batch. Optional when promptEmbeds is given. */
  prompt?: string | readonly string[];
  /** What to steer away from: one for all prompts or one per prompt; default '' (SD 1.5's c_∅). */
  negativePrompt?: string | readonly string[];
  /** Precomputed (B, 77, D) embeddings instead of prompt (not disposed). */
  promptEmbeds?: Tensor;
  /** Precomputed (B, 77, D) unconditional embeddings instead of negativePrompt (not disposed). */
  negativePromptEmbeds?: Tensor;
  steps?: number;
  guidanceScale?: number;
  /** Seeds a new Generator for the initial noise (and DDIM η noise). */
  seed?: number;
  /** The stream to draw from instead of seed; advanced by the draws. */
  generator?: Generator;
  /** Image size in pixels, multiples of 8; default unet sample_size × 8 (SD 1.5: 512). */
  height?: number;
  width?: number;
  /** Images per prompt (default 1). */
  numImages?: number;
  /** x_T (B·numImages, 4, h/8, w/8) instead of drawing it; still × initNoiseSigma. Not disposed. */
  latents?: Tensor;
  eta?: number;
  clipSkip?: number;
  onStep?: OnStep;
}

export interface GenerateOutput {
  images: RgbImage[];
  /** The final latents (B·numImages, 4, h/8, w/8), before the VAE's 1/scaling_factor. */
  latents: Tensor;
}

function promptList(p: string | readonly string[], what: string): string[] {
  const list = typeof p === 'string' ? [p] : [...p];
  if (list.length === 0 || !list.every((s) => typeof s === 'string')) {
    throw new TypeError(`Expected a string or a non-empty list of strings for ${what}`);
  }
  return list;
}

function positiveInt(value: number, what: string): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`Expected a positive integer for ${what} but received ${value}`);
  }
  return value;
}

/** Rows of a (B, ...) tensor each repeated n times in place: [a, a, b, b] for n = 2. */
function repeatRows(x: Tensor, n: number): Tensor {
  if (n === 1) return x.clone();
  const [b, ...rest] = x.shape as number[];
  // (B, 1, ...) -> (B, n, ...) -> (B·n, ...)
  return x
    .unsqueeze(1)
    .expand(b!, n, ...rest)
    .reshape(b! * n, ...rest);
}

export class StableDiffusionPipeline {
  readonly tokenizer: CLIPTokenizer;
  readonly textEncoder: CLIPTextModel | CLIPTextModelWithProjection;
  readonly unet: UNet2DConditionModel;
  readonly vae: AutoencoderKL;
  scheduler: Scheduler;
  /** Pixels per latent: 2^(VAE blocks − 1) (SD 1.5: 8). */
  readonly vaeScaleFactor: number;

  constructor(components: StableDiffusionComponents) {
    this.tokenizer = components.tokenizer;
    this.textEncoder = components.textEncoder;
    this.unet = components.unet;
    this.vae = components.vae;
    this.scheduler = components.scheduler;
    this.vaeScaleFactor = 2 ** (this.vae.config.block_out_channels.length - 1);
  }

  /**
   * Loads a diffusers Stable Diffusion folder: model_index.json, tokenizer/, text_encoder/,
   * unet/, vae/ and scheduler/ (safety_checker and feature_extractor are not used).
   */
  static fromPretrained(
    folder: string,
    options: StableDiffusionFromPretrainedOptions = {},
  ): StableDiffusionPipeline {
    if (!existsSync(folder)) {
      throw new ModelLoadError(`Stable Diffusion folder ${folder} does not exist`);
    }
    const index = readModelIndex(folder);
    const choice = options.scheduler ?? 'from-config';
    if (choice !== 'from-config' && !(choice in SCHEDULER_CLASSES)) {
      throw new RangeError(
        `Unsupported scheduler ${JSON.stringify(choice)}; allowed: "from-config", ${Object.keys(
          SCHEDULER_CLASSES,
        )
          .map((k) => JSON.stringify(k))
          .join(', ')}`,
      );
    }
    const expected: Record<string, string[]> = {
      tokenizer: ['CLIPTokenizer', 'CLIPTokenizerFast'],
      text_encoder: ['CLIPTextModel', 'CLIPTextModelWithProjection'],
      unet: ['UNet2DConditionModel'],
      vae: ['AutoencoderKL'],
      scheduler: [],
    };
    for (const [name, classes] of Object.entries(expected)) {
      const entry = index[name];
      if (entry === undefined || entry[1] === null) {
        throw new ModelLoadError(
          `${join(folder, 'model_index.json')} lists no ${name}; a Stable Diffusion pipeline needs ${Object.keys(expected).join(', ')}`,
        );
      }
      if (classes.length > 0 && !classes.includes(entry[1])) {
        throw new ModelLoadError(
          `Unsupported ${name} class ${JSON.stringify(entry[1])} in ${join(folder, 'model_index.json')}; allowed: ${classes.map((c) => JSON.stringify(c)).join(', ')}`,
        );
      }
      if (!existsSync(join(folder, name))) {
        throw new ModelLoadError(
          `Missing ${name}/ folder in ${folder} (model_index.json lists ${entry.join('.')})`,
        );
      }
    }

    const loaded: { dispose(): void }[] = [];
    const component = <T>(name: string, load: (dir: string) => T): T => {
      try {
        return load(join(folder, name));
      } catch (err) {
        for (const m of loaded) m.dispose();
        const message = err instanceof Error ? err.message : String(err);
        throw Object.assign(new ModelLoadError(`Cannot load ${name}/ of ${folder}: ${message}`), {
          cause: err,
        });
      }
    };
    const modelOptions = { variant: options.variant, dtype: options.dtype };
    const scheduler = component('scheduler', (dir) =>
      schedulerFromConfig(
        readSchedulerConfig(dir),
        choice === 'from-config' ? {} : { className: SCHEDULER_CLASSES[choice] },
      ),
    );
    const tokenizer = component('tokenizer', (dir) => CLIPTokenizer.fromPretrained(dir));
    const textEncoder = component('text_encoder', (dir) =>
      index.text_encoder![1] === 'CLIPTextModelWithProjection'
        ? CLIPTextModelWithProjection.fromPretrained(dir, modelOptions)
        : CLIPTextModel.fromPretrained(dir, modelOptions),
    );
    loaded.push(textEncoder);
    const unet = component('unet', (dir) => UNet2DConditionModel.fromPretrained(dir, modelOptions));
    loaded.push(unet);
    const vae = component('vae', (dir) => AutoencoderKL.fromPretrained(dir, modelOptions));
    return new StableDiffusionPipeline({ tokenizer, textEncoder, unet, vae, scheduler });
  }

  /** The models' parameter dtype (the text encoder's, as diffusers uses for the latents). */
  get dtype(): DType {
    return this.textEncoder.parameters()[0]!.dtype;
  }

  /** Token ids (B, 77) int64, padded to max_length with 49407 and truncated, as SD 1.5 does. */
  tokenize(prompts: readonly string[]): Tensor {
    const { inputIds } = this.tokenizer.call(prompts, {
      padding: 'max_length',
      truncation: true,
      maxLength: this.tokenizer.modelMaxLength,
    });
    return tensor(inputIds.flat(), [inputIds.length, inputIds[0]!.length], { dtype: 'int64' });
  }

  private embed(prompts: readonly string[], numImages: number, clipSkip: number): Tensor {
    return noGrad(() =>
      tidy(() => {
        const ids = this.tokenize(prompts);
        const out = this.textEncoder.forward(ids, { clipSkip });
        return repeatRows(out.lastHiddenState, numImages); // (B·n, 77, D)
      }),
    );
  }

  /**
   * Text embeddings as diffusers' encode_prompt: the text encoder's last hidden state (after
   * final_layer_norm) for prompts padded to 77 tokens, and for the negative prompts ('' for
   * each prompt when undefined; none when null). A single negative prompt serves every prompt.
   */
  encodePrompt(
    prompts: string | readonly string[],
    negativePrompts?: string | readonly string[] | null,
    options: EncodePromptOptions = {},
  ): PromptEmbeds {
    const list = promptList(prompts, 'prompts');
    const n = positiveInt(options.numImagesPerPrompt ?? 1, 'numImagesPerPrompt');
    const clipSkip = options.clipSkip ?? 0;
    // '' for each prompt by default (SD 1.5's c_∅); one string serves every prompt
    let negatives: string[] | null = null;
    if (negativePrompts === undefined) negatives = list.map(() => '');
    else if (typeof negativePrompts === 'string') negatives = list.map(() => negativePrompts);
    else if (negativePrompts !== null) {
      negatives = promptList(negativePrompts, 'negativePrompts');
      if (negatives.length !== list.length) {
        throw new RangeError(
          `Expected one negative prompt or ${list.length} (one per prompt) but received ${negatives.length}`,
        );
      }
    }
    const promptEmbeds = this.embed(list, n, clipSkip);
    const negativePromptEmbeds = negatives ? this.embed(negatives, n, clipSkip) : null;
    return { promptEmbeds, negativePromptEmbeds };
  }

  /**
   * Latents (B, 4, h, w) -> images (B, 3, 8h, 8w) in [0, 1]: decode(x / scaling_factor)/2 + ½.
   * Throws a NonFiniteError when the latents or the decoded values hold NaN or infinity, which
   * the clamp would otherwise turn into black or saturated pixels.
   */
  decodeLatents(latents: Tensor): Tensor {
    checkFinite(latents, 'latents');
    return noGrad(() =>
      tidy(() => {
        const dtype = this.vae.parameters()[0]!.dtype;
        const x = latents.dtype === dtype ? latents : latents.to(dtype);
        const decoded = this.vae.decodeLatents(x);
        checkFinite(decoded, 'decoded images');
        return decoded.div(2).add(0.5).clamp(0, 1);
      }),
    );
  }

  /** The U-Net as a noise predictor with a fixed context (B, 77, D) or ([c_∅; c], 2B). */
  unetPredictor(context: Tensor): NoisePredictor {
    return (latentInput, t) =>
      inLatentDtype(this.unet.forward(latentInput, t, context), latentInput);
  }

  /** Text-to-image, as diffusers' StableDiffusionPipeline.__call__ (output_type 'pil'). */
  async generate(options: GenerateOptions): Promise<GenerateOutput> {
    const steps = positiveInt(options.steps ?? 50, 'steps');
    const guidanceScale = options.guidanceScale ?? 7.5;
    const numImages = positiveInt(options.numImages ?? 1, 'numImages');
    const guided = usesGuidance(guidanceScale);
    if (options.seed !== undefined && options.generator !== undefined) {
      throw new Error('generate takes a seed or a generator, not both');
    }
    const generator =
      options.generator ?? (options.seed !== undefined ? new Generator(options.seed) : undefined);
    const [height, width] = this.outputSize(options); // 1. sizes
    const context = this.guidanceContext(options, numImages, guided); // 2. [c_∅; c]
    const batch = context.shape[0]! / (guided ? 2 : 1);
    const shape = [
      batch,
      this.unet.config.in_channels,
      height / this.vaeScaleFactor,
      width / this.vaeScaleFactor,
    ];
    let latents: Tensor;
    try {
      latents = this.initialLatents(options.latents, shape, context.dtype, generator); // 3. x_T
    } catch (err) {
      context.dispose();
      throw err;
    }
    // 4. the denoising loop
    let final: Tensor;
    try {
      final = await denoise({
        scheduler: this.scheduler,
        latents,
        steps,
        guidanceScale,
        predict: this.unetPredictor(context),
        eta: options.eta ?? 0,
        generator,
        onStep: options.onStep,
      });
    } finally {
      latents.dispose();
      context.dispose();
    }
    return { images: this.decodeToImages(final), latents: final }; // 5. images
  }

  /** Height and width: from the options, else the given latents, else the U-Net's sample_size. */
  private outputSize(options: GenerateOptions): [number, number] {
    const f = this.vaeScaleFactor;
    const sampleSize = this.unet.config.sample_size;
    const defaultSide = (i: number): number => {
      if (options.latents) return options.latents.shape[2 + i]! * f;
      const s = Array.isArray(sampleSize) ? sampleSize[i] : sampleSize;
      return (s ?? 64) * f;
    };
    const height = options.height ?? defaultSide(0);
    const width = options.width ?? defaultSide(1);
    const ok = (x: number): boolean => Number.isSafeInteger(x) && x >= f && x % f === 0;
    if (!ok(height) || !ok(width)) {
      throw new RangeError(
        `Expected height and width to be positive multiples of ${f} but received ${height}×${width}`,
      );
    }
    return [height, width];
  }

  /** The text context of the whole batch: [c_∅; c] with guidance, else c. */
  private guidanceContext(options: GenerateOptions, numImages: number, guided: boolean): Tensor {
    const { promptEmbeds, negativePromptEmbeds } = this.promptEmbeddings(
      options,
      numImages,
      guided,
    );
    try {
      return negativePromptEmbeds
        ? ops.cat([negativePromptEmbeds, promptEmbeds], 0)
        : promptEmbeds.clone();
    } finally {
      promptEmbeds.dispose();
      negativePromptEmbeds?.dispose();
    }
  }

  /** x_T = randn(generator) · init_noise_sigma, or the given latents · init_noise_sigma. */
  private initialLatents(
    given: Tensor | undefined,
    shape: number[],
    dtype: DType,
    generator: Generator | undefined,
  ): Tensor {
    const sigma = this.scheduler.initNoiseSigma;
    if (!given) return tidy(() => randn(shape, { generator, dtype }).mul(sigma));
    if (given.shape.join(',') !== shape.join(','))
      throw new RangeError(
        `Expected latents of shape [${shape.join(', ')}] but received [${given.shape.join(', ')}]`,
      );
    return tidy(() => (given.dtype === dtype ? given : given.to(dtype)).mul(sigma));
  }

  /** Latents (B, C, h, w) to 8-bit images: decode, (x/2 + 0.5).clamp(0, 1), one per sample. */
  decodeToImages(latents: Tensor): RgbImage[] {
    const pixels = this.decodeLatents(latents);
    try {
      const images: RgbImage[] = [];
      for (let i = 0; i < pixels.shape[0]!; i++) {
        const one = pixels.select(0, i);
        images.push(tensorToImage(one));
        one.dispose();
      }
      return images;
    } finally {
      pixels.dispose();
    }
  }

  private promptEmbeddings(
    options: GenerateOptions,
    numImages: number,
    guided: boolean,
  ): PromptEmbeds {
    if (options.promptEmbeds) {
      if (options.prompt !== undefined)
        throw new Error('generate takes prompt or promptEmbeds, not both');
      const clipSkip = options.clipSkip ?? 0;
      const promptEmbeds = noGrad(() => repeatRows(options.promptEmbeds!, numImages));
      if (!guided) return { promptEmbeds, negativePromptEmbeds: null };
      let negativePromptEmbeds: Tensor;
      if (options.negativePromptEmbeds) {
        negativePromptEmbeds = noGrad(() => repeatRows(options.negativePromptEmbeds!, numImages));
      } else {
        const b = options.promptEmbeds.shape[0]!;
        const negatives =
          options.negativePrompt === undefined
            ? Array<string>(b).fill('')
            : typeof options.negativePrompt === 'string'
              ? Array<string>(b).fill(options.negativePrompt)
              : promptList(options.negativePrompt, 'negativePrompt');
        negativePromptEmbeds = this.embed(negatives, numImages, clipSkip);
      }
      if (negativePromptEmbeds.shape.join(',') !== promptEmbeds.shape.join(',')) {
        const shapes = `[${negativePromptEmbeds.shape.join(', ')}] vs [${promptEmbeds.shape.join(', ')}]`;
        promptEmbeds.dispose();
        negativePromptEmbeds.dispose();
        throw new RangeError(`Negative and positive prompt embeddings differ in shape: ${shapes}`);
      }
      return { promptEmbeds, negativePromptEmbeds };
    }
    if (options.prompt === undefined) throw new Error('generate needs a prompt or promptEmbeds');
    if (options.negativePromptEmbeds) {
      throw new Error('negativePromptEmbeds needs promptEmbeds too');
    }
    return this.encodePrompt(options.prompt, guided ? options.negativePrompt : null, {
      numImagesPerPrompt: numImages,
      clipSkip: options.clipSkip,
    });
  }

  /** Frees the three models' weights. */
  dispose(): void {
    this.textEncoder.dispose();
    this.unet.dispose();
    this.vae.dispose();
    if ('reset' in this.scheduler) this.scheduler.reset();
  }
}
