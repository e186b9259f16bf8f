// P3S generation: the base model and an adapter, DDIM (50 steps, guidance 7.5 in the paper,
// Sec. IV-A), the trainable copy's features injected at every step with the weight ε_t of
// Eq. (9)–(10).
//
// Classifier-free guidance runs the batch [x; x] with text contexts [c_∅; c]. The subject
// condition (I', c_s) goes to both halves: the copy's features are injected into the
// unconditional prediction too, so guidance amplifies the text's effect, (ε_c − ε_∅), on top of
// a prediction that already carries the subject, rather than amplifying the subject itself. This
// matches training, where a dropped text prompt keeps its subject condition (see train.ts).
//
// A generation goes through steps, each a function: the plan (settings validated once by
// generate_settings.ts, the adapter's metadata, prompts and seeds, before any model loads:
// generate_plan.ts), the models (base model with the adapter attached), the checks that need
// them (reference index, size, memory, finite weights: generate_guards.ts), then each prompt's
// batches and the contact sheet.
import { basename, join, resolve } from 'node:path';
import { noGrad } from '../engine/autograd.js';
import { Generator } from '../engine/random.js';
import { disposeAll, keep, tidy } from '../engine/scope.js';
import type { Tensor } from '../engine/tensor.js';
import * as ops from '../engine/ops.generated.js';
import * as F from '../nn/functional.js';
import type { RgbImage } from '../io/image.js';
import {
  NonFiniteError,
  StableDiffusionPipeline,
  denoise,
  inLatentDtype,
  usesGuidance,
  type NoisePredictor,
  type SamplingScheduler,
} from '../pipelines/stable_diffusion.js';
import { holdFrozenInHalfPrecision } from '../models/precision.js';
import type { Module } from '../nn/module.js';
import { refuseSetting } from '../settings/table.js';
import { checkWritable } from '../training/run_folder.js';
import {
  loadAdapter,
  p3sVersion,
  type AdapterMetadata,
  type LoadedAdapter,
} from './adapter/adapter_io.js';
import { P3SUNet, type P3SSettings, type SubjectCondition } from './adapter/p3s_unet.js';
import { subjectRegion, wordTokenPositions } from './adapter/subject_region.js';
import { formatWeightCurve } from './adapter/weight_schedule.js';
import { checkAdapterFinite, checkMemory, nonFiniteFailure } from './generate_guards.js';
import {
  checkOutputSize,
  imageFileName,
  seedNoise,
  writeContactSheet,
  writeImage as writeImageFile,
} from './generate_output.js';
import { planGeneration, type Plan } from './generate_plan.js';
import { fillPrompt } from './prompts.js';
import {
  adapterStamp,
  rankReferences,
  rankingPath,
  rankingTower,
  RANKING_PROMPTS,
  RANKING_SEEDS,
  readRanking,
  writeRanking,
  type ReferenceRanking,
} from './reference_ranking.js';
import {
  GENERATE_SETTINGS,
  type GenerateP3SConfig,
  type GenerateSettings,
  type ReferenceChoice,
} from './generate_settings.js';

export { resolvePrompts } from './generate_plan.js';
export type { GenerateP3SConfig, GenerateSettings, ReferenceChoice } from './generate_settings.js';

export interface SampleRequest {
  prompt: string;
  negativePrompt: string;
  /** One image per seed; each draws its x_T from Generator(seed), so batching does not matter. */
  seeds: readonly number[];
  /** Index into the condition's references, one per image. */
  referenceIndices: readonly number[];
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
  /**
   * With subjectGuidance, the subject's own guidance scale w_s (default: the guidance scale):
   * a third part of the batch gives the text without the subject, and
   * ε = ε_∅ + w (ε_c − ε_∅) + w_s (ε_c,s − ε_c), so the subject is amplified apart from the text.
   */
  subjectGuidanceScale?: number | null;
  /**
   * Local injection (subject_region.ts): the copy's features only where the frozen U-Net's
   * previous step attended to these prompt tokens (the subject's words), at full weight from
   * `share` of the map's range up. The models must capture region maps (P3SUNet).
   */
  localInjection?: { share: number; tokens: readonly number[] } | null;
}

/** The loaded pieces sampling needs. */
export interface SamplingModels {
  pipeline: StableDiffusionPipeline;
  p3s: P3SUNet;
  /** All references: latents (N, C, h, w), CLIP states (N, L, E). */
  condition: SubjectCondition;
}

// ---------------------------------------------------------------------------------------------
// Sampling one batch

/** The subject condition for a batch: the chosen references, resized to the latent size. */
function conditionBatch(
  condition: SubjectCondition,
  referenceIndices: readonly number[],
  latentSize: [number, number],
): SubjectCondition {
  const n = condition.latent.shape[0]!;
  for (const r of referenceIndices) {
    if (!Number.isInteger(r) || r < 0 || r >= n)
      throw new RangeError(`Reference index ${r} is out of range: the adapter holds ${n}`);
  }
  return tidy(() => {
    let latent = ops.cat(
      referenceIndices.map((r) => condition.latent.slice(0, r, r + 1)),
      0,
    ); // (B, C, h, w)
    const clipStates = ops.cat(
      referenceIndices.map((r) => condition.clipStates.slice(0, r, r + 1)),
      0,
    ); // (B, L, E)
    const [h, w] = latentSize;
    if (latent.shape[2] !== h || latent.shape[3] !== w)
      latent = F.interpolate(latent, { size: [h, w], mode: 'bilinear' });
    return { latent, clipStates };
  });
}

function checkRequest(request: SampleRequest): void {
  const b = request.seeds.length;
  if (b === 0) throw new RangeError('Expected at least one seed');
  if (request.referenceIndices.length !== b)
    throw new RangeError(
      `Expected ${b} reference indices but received ${request.referenceIndices.length}`,
    );
}

/**
 * The text context of each part of the batch (batchParts): c, [c_∅; c] or [c_∅; c; c]. What it
 * creates is added to `owned`.
 */
function textContext(
  pipeline: StableDiffusionPipeline,
  request: SampleRequest,
  parts: 1 | 2 | 3,
  owned: Tensor[],
): Tensor {
  const { promptEmbeds, negativePromptEmbeds } = pipeline.encodePrompt(
    request.prompt,
    parts > 1 ? request.negativePrompt : null,
    { numImagesPerPrompt: request.seeds.length },
  );
  owned.push(promptEmbeds);
  if (!negativePromptEmbeds) return promptEmbeds;
  owned.push(negativePromptEmbeds);
  const texts = parts === 3 ? [promptEmbeds, promptEmbeds] : [promptEmbeds];
  const context = ops.cat([negativePromptEmbeds, ...texts], 0); // [c_∅; c] or [c_∅; c; c]
  owned.push(context);
  return context;
}

/** The batch's subject condition, repeated for each part of the guidance batch. */
function guidanceCondition(single: SubjectCondition, parts: number): SubjectCondition {
  if (parts === 1) return single;
  return noGrad(() => ({
    latent: ops.cat(new Array<Tensor>(parts).fill(single.latent), 0),
    clipStates: ops.cat(new Array<Tensor>(parts).fill(single.clipStates), 0),
  }));
}

/** x_T: each image's noise from Generator(seed), plus the latent bias towards its reference. */
function startingNoise(
  pipeline: StableDiffusionPipeline,
  scheduler: SamplingScheduler,
  request: SampleRequest,
  referenceLatent: Tensor,
): Tensor {
  const [h, w] = request.latentSize;
  const channels = pipeline.unet.config.in_channels;
  const bias = request.latentBias ?? 0;
  return tidy(() => {
    const start = seedNoise(request.seeds, [channels, h, w]).mul(scheduler.initNoiseSigma); // x_T
    // The reference's latent added to the noise: a bias towards the subject (Sec. III).
    return bias === 0 ? start : start.add(referenceLatent.mul(bias));
  });
}

/**
 * The parts of the batch the U-Net runs: ε_c alone without guidance, [ε_∅; ε_c] with it, and
 * [ε_∅; ε_c; ε_c,s] when the subject has a guidance scale of its own (the text's part without
 * the subject, then with it).
 */
function batchParts(request: SampleRequest, guided: boolean): 1 | 2 | 3 {
  if (!guided) return 1;
  const own = request.subjectGuidance ? (request.subjectGuidanceScale ?? null) : null;
  return own === null || own === request.guidanceScale ? 2 : 3;
}

/**
 * [ε_∅; ε_c; ε_c,s] folded into the two parts the sampler's guidance combines, [ε_∅; ε'] with
 * ε' = ε_c + (w_s / w)(ε_c,s − ε_c), so that ε_∅ + w (ε' − ε_∅) = ε_∅ + w (ε_c − ε_∅) +
 * w_s (ε_c,s − ε_c).
 */
function foldSubjectPart(prediction: Tensor, b: number, w: number, ws: number): Tensor {
  return tidy(() => {
    const [none, text, subject] = [0, 1, 2].map((k) => prediction.slice(0, k * b, (k + 1) * b));
    return ops.cat([none!, text!.add(subject!.sub(text!).mul(ws / w))], 0);
  });
}

/** The injected U-Net as a noise predictor over [ε_∅; ε_c] (or ε_c alone without guidance). */
function injectedPredictor(
  p3s: P3SUNet,
  context: Tensor,
  condition: SubjectCondition,
  request: SampleRequest,
  parts: 1 | 2 | 3,
): NoisePredictor & { dispose(): void } {
  const b = request.seeds.length;
  // with subject guidance, only the last part has the subject (ε_t = 0 in the others)
  const injectionScale =
    parts > 1 && request.subjectGuidance
      ? [...new Array<number>((parts - 1) * b).fill(0), ...new Array<number>(b).fill(1)]
      : undefined;
  const local = request.localInjection ?? null;
  // the first step injects everywhere: there is no map yet
  let region: Tensor | null = null;
  const predict = (guidedInput: Tensor, t: number): Tensor => {
    // the sampler gives [x; x] with guidance; a third part repeats x
    const latentInput =
      parts === 3 ? ops.cat([guidedInput, guidedInput.slice(0, 0, b)], 0) : guidedInput;
    const out = p3s.forward(
      latentInput,
      new Array<number>(latentInput.shape[0]!).fill(t),
      context,
      condition,
      { injectionScale, region },
    );
    if (local !== null) {
      const maps = out.regionAttention;
      if (maps === null)
        throw new Error('Local injection needs a P3SUNet that captures region maps');
      const next = subjectRegion(maps, {
        tokens: local.tokens,
        latentSize: request.latentSize,
        share: local.share,
        rows: [(parts - 1) * b, parts * b], // the part with the subject
        repeat: parts,
      });
      disposeAll([...maps, region]);
      region = keep(next);
    } else if (out.regionAttention) disposeAll(out.regionAttention);
    const noisePred =
      parts === 3
        ? foldSubjectPart(out.noisePred, b, request.guidanceScale, request.subjectGuidanceScale!)
        : out.noisePred;
    return inLatentDtype(noisePred, guidedInput);
  };
  return Object.assign(predict, { dispose: () => region?.dispose() });
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
  checkRequest(request);
  const guided = usesGuidance(request.guidanceScale);
  const parts = batchParts(request, guided);
  const owned: Tensor[] = [];
  try {
    const context = textContext(pipeline, request, parts, owned);
    const single = conditionBatch(models.condition, request.referenceIndices, request.latentSize);
    owned.push(single.latent, single.clipStates);
    const condition = guidanceCondition(single, parts);
    if (parts > 1) owned.push(condition.latent, condition.clipStates);
    const noise = startingNoise(pipeline, scheduler, request, single.latent);
    owned.push(noise);
    const predict = injectedPredictor(p3s, context, condition, request, parts);
    const final = await denoise({
      scheduler,
      latents: noise,
      steps: request.steps,
      guidanceScale: request.guidanceScale,
      eta: request.eta,
      generator: request.eta > 0 ? new Generator(request.seeds[0]!) : undefined,
      predict,
      onStep,
    }).finally(() => predict.dispose());
    owned.push(final);
    return pipeline.decodeToImages(final);
  } finally {
    disposeAll(owned);
  }
}

// ---------------------------------------------------------------------------------------------
// Generating prompts × seeds into files

export interface GenerateProgress {
  /** Images finished so far and in all. */
  done: number;
  total: number;
  prompt: string;
  /** Denoising step within the current batch. */
  step: number;
  steps: number;
}

/** What generateP3S reports while it runs (as trainP3S takes observers). */
export interface GenerateRunOptions {
  onProgress?: (p: GenerateProgress) => void;
  /** Non-fatal problems (a prompt without the identifier ...). Also returned in the result. */
  onWarning?: (message: string) => void;
  /**
   * Bytes this generation may use beyond its loaded models (a server's per-job share); default:
   * what the system, or its cgroup limit, has available once the models are loaded.
   */
  memoryBudget?: number;
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
  /** With --reference best: each reference's score and the one that drew the images. */
  ranking: ReferenceRanking | null;
}

/** The models sampling needs, and how to let go of them. */
interface Loaded extends SamplingModels {
  release(): void;
}

/**
 * --precision half: the U-Net and `more` (the adapter, frozen) held in 16 bits. The text
 * encoder stays float32, so the context, the latents and the sampler's arithmetic do too, and
 * so does the VAE: its decoder in bfloat16 shifted the toy models' colours visibly (docs/p3s.md).
 */
export function holdInHalfPrecision(pipeline: StableDiffusionPipeline, ...more: Module[]): void {
  holdFrozenInHalfPrecision([pipeline.unet, ...more]);
}

/** The frozen base model with the adapter attached; λ, ε_t and the mode the adapter's unless set. */
function loadModels(settings: GenerateSettings): Loaded {
  const pipeline = StableDiffusionPipeline.fromPretrained(settings.baseModel, {
    scheduler: 'ddim',
  });
  pipeline.unet.freeze();
  pipeline.textEncoder.freeze();
  pipeline.vae.freeze();
  let loaded: LoadedAdapter | null = null;
  let p3s: P3SUNet | null = null;
  const release = (): void => {
    p3s?.detach();
    loaded?.adapter.dispose();
    if (loaded) disposeAll([loaded.condition.latent, loaded.condition.clipStates]);
    pipeline.dispose();
  };
  try {
    loaded = loadAdapter(settings.adapter, pipeline.unet, settings.baseModel);
    if (settings.precision === 'half') holdInHalfPrecision(pipeline, loaded.adapter.freeze());
    const injection: P3SSettings = {
      ...loaded.settings,
      lambda: settings.lambda ?? loaded.settings.lambda,
      weightCurve: settings.weightCurve ?? loaded.settings.weightCurve,
      injectionMode: settings.injectionMode ?? loaded.settings.injectionMode,
      numTrainTimesteps: pipeline.scheduler.config.num_train_timesteps,
    };
    p3s = new P3SUNet(pipeline.unet, loaded.adapter, injection, settings.localInjection !== null);
    return { pipeline, p3s, condition: loaded.condition, release };
  } catch (err) {
    release();
    throw err;
  }
}

/** The output size in pixels, checked against the VAE's factor. */
function outputSize(
  settings: GenerateSettings,
  metadata: AdapterMetadata,
  pipeline: StableDiffusionPipeline,
): { height: number; width: number } {
  const f = pipeline.vaeScaleFactor;
  const height = settings.height ?? settings.size ?? metadata.resolution;
  const width = settings.width ?? settings.size ?? metadata.resolution;
  checkOutputSize(height, width, f);
  return { height, width };
}

/** DDIM takes at most one step per training timestep of the base model's scheduler. */
function checkSteps(steps: number, T: number): void {
  if (steps > T)
    refuseSetting(
      GENERATE_SETTINGS,
      'steps',
      `an integer in [1, ${T}] (the scheduler's num_train_timesteps)`,
      steps,
    );
}

/** A fixed reference must be one the adapter holds; ranking needs two to compare. */
function checkReference(choice: ReferenceChoice, count: number): void {
  if (typeof choice === 'number' && choice >= count)
    throw new RangeError(
      `Expected a reference index in [0, ${count}), 'cycle' or 'best' but received ${choice}`,
    );
  if (choice === 'best' && count < 2)
    throw new RangeError(
      `--reference best compares each reference's images with the others, and this adapter holds ${count} reference: give --reference 0`,
    );
}

/** The sampler's settings as PNG text chunks (P3S's and the baselines' generation). */
export function samplingParameters(s: GenerateSettings): Record<string, string> {
  return {
    negative_prompt: s.negativePrompt,
    steps: String(s.steps),
    guidance_scale: String(s.guidanceScale),
    scheduler: 'DDIM',
    eta: String(s.eta),
    precision: s.precision,
  };
}

/** The text chunks every PNG of this generation carries (besides prompt, seed and reference). */
function sharedParameters(
  plan: Plan,
  injection: P3SSettings,
  size: { height: number; width: number },
): Record<string, string> {
  const { settings: s, metadata } = plan;
  return {
    ...samplingParameters(s),
    latent_bias: String(s.latentBias),
    subject_guidance: String(s.subjectGuidance),
    ...(s.subjectGuidance && s.subjectGuidanceScale !== null
      ? { subject_guidance_scale: String(s.subjectGuidanceScale) }
      : {}),
    local_injection: s.localInjection === null ? 'off' : String(s.localInjection),
    lambda: String(injection.lambda),
    weight_curve: formatWeightCurve(injection.weightCurve),
    injection_mode: injection.injectionMode,
    width: String(size.width),
    height: String(size.height),
    base_model: basename(resolve(s.baseModel)),
    base_fingerprint: metadata.baseFingerprint,
    adapter: basename(s.adapter),
    adapter_training_steps: String(metadata.trainingSteps),
    identifier: metadata.identifier,
    class_word: metadata.classWord,
    Software: `p3s ${p3sVersion()}`,
  };
}

/** One generation under way: what it writes with, and the images written so far. */
interface Generation {
  plan: Plan;
  models: SamplingModels;
  latentSize: [number, number];
  shared: Record<string, string>;
  images: GeneratedImage[];
  /** Images drawn so far and in all (a ranking's included), and how a prompt is reported. */
  progress: { done: number; total: number; label: (prompt: string) => string };
  onProgress?: (p: GenerateProgress) => void;
}

/** Images for one prompt with the generation's settings: one per seed, image j from refs[j]. */
function sampleBatch(
  run: Generation,
  prompt: string,
  seeds: readonly number[],
  refs: readonly number[],
): Promise<RgbImage[]> {
  const { plan, models } = run;
  const s = plan.settings;
  const { done, total } = run.progress;
  return sampleP3S(
    models,
    models.pipeline.scheduler,
    {
      prompt,
      negativePrompt: s.negativePrompt,
      seeds,
      referenceIndices: refs,
      steps: s.steps,
      guidanceScale: s.guidanceScale,
      eta: s.eta,
      latentSize: run.latentSize,
      latentBias: s.latentBias,
      subjectGuidance: s.subjectGuidance,
      subjectGuidanceScale: s.subjectGuidanceScale,
      localInjection:
        s.localInjection === null
          ? null
          : {
              share: s.localInjection,
              tokens: wordTokenPositions(models.pipeline.tokenizer, prompt, [
                plan.metadata.identifier,
                plan.metadata.classWord,
              ]),
            },
    },
    (i, stepsTotal) =>
      run.onProgress?.({
        done,
        total,
        prompt: run.progress.label(prompt),
        step: i + 1,
        steps: stepsTotal,
      }),
  ).catch((err: unknown) => {
    throw err instanceof NonFiniteError ? nonFiniteFailure(models, s, prompt, seeds, err) : err;
  });
}

/** Every image of prompt p, batch by batch, written as PNGs with their parameters. */
async function generatePrompt(
  run: Generation,
  p: number,
  reference: Exclude<ReferenceChoice, 'best'>,
): Promise<void> {
  const { plan, models } = run;
  const { settings: s, seeds, batchSize } = plan;
  const prompt = plan.prompts[p]!;
  const n = models.condition.latent.shape[0]!;
  for (let start = 0; start < seeds.length; start += batchSize) {
    const batchSeeds = seeds.slice(start, start + batchSize);
    const refs = batchSeeds.map((_, j) => (reference === 'cycle' ? (start + j) % n : reference));
    const batch = await sampleBatch(run, prompt, batchSeeds, refs);
    for (let j = 0; j < batch.length; j++)
      await writeGenerated(run, p, prompt, batchSeeds[j]!, refs[j]!, batch[j]!);
    run.progress.done += batch.length;
    const { done, total } = run.progress;
    run.onProgress?.({ done, total, prompt, step: s.steps, steps: s.steps });
  }
}

/** The reference of --reference best: the kept ranking, or a new one drawn and kept. */
async function rankedReference(
  run: Generation,
  onWarning?: (m: string) => void,
): Promise<ReferenceRanking> {
  const { plan, models } = run;
  const s = plan.settings;
  const n = models.condition.latent.shape[0]!;
  const key = { ...adapterStamp(s.adapter), ...run.shared };
  const path = rankingPath(s.adapter);
  const kept = readRanking(path, key, n);
  if (kept !== null) return kept;
  const ranking = await drawRanking(run);
  try {
    writeRanking(path, key, ranking);
  } catch (err) {
    const message = `The reference ranking is not kept for later runs: ${(err as Error).message}`;
    onWarning?.(message);
    plan.warnings.push(message);
  }
  return ranking;
}

/** Ranks the references by their own images, scored with the adapter's CLIP tower. */
async function drawRanking(run: Generation): Promise<ReferenceRanking> {
  const { plan, models } = run;
  const n = models.condition.latent.shape[0]!;
  const prompts = RANKING_PROMPTS.map((p) =>
    fillPrompt(p, plan.metadata.identifier, plan.metadata.classWord),
  );
  const tower = rankingTower(plan.settings.clipModel, plan.settings.baseModel, plan.metadata);
  try {
    run.progress.total += n * prompts.length * RANKING_SEEDS.length;
    const sample = async (r: number, prompt: string, seeds: readonly number[]) => {
      run.progress.label = (p) => `ranking reference ${r + 1}/${n}: ${p}`;
      const images: RgbImage[] = [];
      for (let start = 0; start < seeds.length; start += plan.batchSize) {
        const batch = seeds.slice(start, start + plan.batchSize);
        images.push(
          ...(await sampleBatch(
            run,
            prompt,
            batch,
            batch.map(() => r),
          )),
        );
        run.progress.done += batch.length;
      }
      return images;
    };
    return await rankReferences(prompts, sample, tower, models.condition.clipStates);
  } finally {
    run.progress.label = (p) => p;
    tower.dispose();
  }
}

async function writeGenerated(
  run: Generation,
  p: number,
  prompt: string,
  seed: number,
  reference: number,
  image: RgbImage,
): Promise<void> {
  const parameters: Record<string, string> = {
    prompt,
    seed: String(seed),
    reference: `${reference} (${run.plan.metadata.references[reference] ?? '?'})`,
    ...run.shared,
  };
  const path = join(run.plan.settings.outDir, imageFileName(p, prompt, seed));
  await writeImageFile(path, image, parameters);
  run.images.push({ path, prompt, seed, reference, image, parameters });
}

/** contact-sheet.png: every image, a row per prompt. */
function writeSheet(run: Generation): Promise<string> {
  const { plan } = run;
  const text = { prompts: plan.prompts.join('\n'), seeds: plan.seeds.join(','), ...run.shared };
  const images = run.images.map((i) => i.image);
  return writeContactSheet(plan.settings.outDir, images, plan.seeds.length, text);
}

/** Loads base model and adapter, generates every prompt × seed, writes PNGs and a contact sheet. */
export async function generateP3S(
  config: GenerateP3SConfig,
  options: GenerateRunOptions = {},
): Promise<GenerateP3SResult> {
  const plan = planGeneration(config, options.onWarning);
  const models = loadModels(plan.settings);
  try {
    checkReference(plan.settings.reference, models.condition.latent.shape[0]!);
    checkSteps(plan.settings.steps, models.pipeline.scheduler.config.num_train_timesteps);
    checkAdapterFinite(models, plan.settings);
    const size = outputSize(plan.settings, plan.metadata, models.pipeline);
    checkMemory(plan, models, size, options.memoryBudget);
    const f = models.pipeline.vaeScaleFactor;
    checkWritable(plan.settings.outDir);
    const run: Generation = {
      plan,
      models,
      latentSize: [size.height / f, size.width / f],
      shared: sharedParameters(plan, models.p3s.settings, size),
      images: [],
      progress: { done: 0, total: plan.prompts.length * plan.seeds.length, label: (p) => p },
      onProgress: options.onProgress,
    };
    const ranking =
      plan.settings.reference === 'best' ? await rankedReference(run, options.onWarning) : null;
    if (ranking) run.shared.reference_scores = ranking.scores.map((x) => x.toFixed(4)).join(',');
    const reference =
      ranking?.best ?? (plan.settings.reference as Exclude<ReferenceChoice, 'best'>);
    for (let p = 0; p < plan.prompts.length; p++) await generatePrompt(run, p, reference);
    const contactSheetPath = plan.settings.contactSheet ? await writeSheet(run) : null;
    return {
      images: run.images,
      contactSheetPath,
      warnings: plan.warnings,
      metadata: plan.metadata,
      ranking,
    };
  } finally {
    models.release();
  }
}
