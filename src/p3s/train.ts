// P3S fine-tuning (paper Sec. III-B, IV-A): the frozen base model, a new adapter (subject
// encoder + trainable copy), and the filled reference photos of one subject.
//
// Per optimizer step, for each of `gradientAccumulation` micro-batches of `batchSize` samples:
//   x_0     the latent of a reference (VAE mean × scaling_factor, precomputed; mirrored if drawn)
//   t, ε    t ~ U{0..T−1}, ε ~ N(0, I);  x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε         (DDPM add_noise)
//   c_t     the prompt "a sks dog", or "" with probability 0.1 (condition dropout, Sec. IV-A)
//   (I',c_s) the subject condition: the same reference's latent and CLIP last hidden state
//   ε_θ     P3SUNet: copy features f_i (Eq. 4–6) scaled by ε_t (Eq. 9–10), injected (Eq. 7–8)
//   L       = L_LDM + γ·L_ac (Eq. 15) with L_LDM = ‖target − ε_θ‖² (Eq. 14; the target is ε, v or
//             x_0 by the scheduler's prediction_type) and L_ac on the last cross-attention maps
//             of copy and frozen U-Net (Eq. 11–13)
// then Adam (lr 1e-5) on the adapter's parameters only.
//
// Condition dropout drops only the text: the subject condition stays. Generation gives the
// subject condition to both halves of the classifier-free-guidance batch, so the
// unconditional branch the model learns here is ε(x_t | "", I', c_s) — "the subject, without a
// prompt" — which is exactly what generation's ε_∅ asks for.
//
// Randomness: one Generator(seed) draws, per micro-batch and in this order, the flips, the
// timesteps, the noise, the dropout decisions and (conditionFrom 'other') the condition
// references; the data order is a pure function of (seed, sample index). A checkpoint stores
// the generator's state and the step, so a resumed run draws exactly what the uninterrupted
// run would have (bit-identical weights on CPU with a fixed thread count).
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { basename, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Tensor } from '../engine/tensor.js';
import type { Module } from '../nn/module.js';
import { rand, randint, randn } from '../engine/creation.js';
import { Generator, manualSeed } from '../engine/random.js';
import { noGrad } from '../engine/autograd.js';
import { disposeAll, tidy } from '../engine/scope.js';
import * as ops from '../engine/ops.generated.js';
import { contactSheet, writePng } from '../io/image.js';
import { Adam } from '../optim/adam.js';
import { clipGradNorm } from '../optim/clip_grad.js';
import { CLIPVisionModel } from '../models/clip/clip_vision_model.js';
import { ModelLoadError } from '../models/loading.js';
import { StableDiffusionPipeline } from '../pipelines/stable_diffusion.js';
import { DDPMScheduler } from '../schedulers/scheduling_ddpm.js';
import { schedulerFromConfig } from '../schedulers/index.js';
import { readSchedulerConfig } from '../schedulers/scheduling_utils.js';
import {
  P3SAdapter,
  P3SUNet,
  type P3SSettings,
  type SubjectCondition,
} from './adapter/p3s_unet.js';
import {
  PAPER_CURVE,
  formatWeightCurve,
  parseWeightCurve,
  type WeightCurve,
} from './adapter/weight_schedule.js';
import { INJECTION_MODES, isInjectionMode, type InjectionMode } from './adapter/injection.js';
import { attentionConsistencyLoss, ldmLoss, totalLoss, weightedLdmLoss } from './adapter/losses.js';
import {
  AdapterError,
  baseModelFingerprint,
  loadAdapterWeights,
  modelFingerprint,
  saveAdapter,
} from './adapter/adapter_io.js';
import {
  clipProcessorFor,
  encodeReferences,
  resolveReferences,
  ReferencePhotoError,
  requireSubjectMasks,
  type ReferencePhoto,
  type EncodedReferences,
  type ReferenceSet,
  type ReferenceTensors,
} from './references.js';
import { fillPrompt } from './prompts.js';
import {
  latestCheckpoint,
  pruneCheckpoints,
  readCheckpointInfo,
  restoreCheckpoint,
  saveCheckpoint,
} from '../training/checkpoint.js';
import { runMaskJob } from './supervision/mask_job.js';
import { readAnnotation } from './supervision/annotations.js';
import { sampleP3S } from './generate.js';

export interface TrainP3SConfig {
  /** Base model folder in the diffusers layout (SD 1.5). */
  baseModel: string;
  /** CLIP vision model folder (transformers layout), for c_s (and the mask job). */
  clipModel: string;
  /** Where the adapter, checkpoints, samples and the log go. */
  outDir: string;
  /** Filled reference photos (files, folders, or a `p3s mask` output folder). */
  references?: string[];
  /** Or raw photos with clicks: runs the mask job first (into outDir/mask). */
  annotation?: string;
  /** The rare token naming the subject (default: the annotation's, else "sks"). */
  identifier?: string;
  /** The subject's class ("dog"); required unless the annotation gives it. */
  classWord?: string;
  /** The training prompt; `{}` / `[V]` become "identifier classWord" (default "a {}"). */
  promptTemplate?: string;
  /**
   * Cut each reference to the square around its subject mask, this many times the mask's box
   * (e.g. 1.5), before resizing: the subject fills the reference. Needs references from a
   * `p3s mask` folder (or an annotation). Default null: the whole photo.
   */
  subjectCrop?: number | null;
  /**
   * Encode the subject condition (I', c_s) from each reference with everything outside its
   * subject mask grey; the denoising target keeps the whole photo. The adapter is then given the
   * subject and not its surroundings, which it would otherwise carry into every new context.
   * Needs references from a `p3s mask` folder (or an annotation). Default false.
   */
  subjectOnlyCondition?: boolean;
  /**
   * Weight of Eq. (14)'s error outside the subject mask, per latent position (default 1: the
   * plain loss; 0: the subject only, as Break-A-Scene's masked loss). Below 1 the adapter has
   * less reason to reproduce the references' surroundings. Needs references from a `p3s mask`
   * folder (or an annotation).
   */
  backgroundLossWeight?: number;
  /** Square training size in pixels (default: the U-Net's sample_size × the VAE's factor). */
  resolution?: number;
  /** Passes over the references (default 60, Sec. IV-A). */
  epochs?: number;
  /** Optimizer steps in all; overrides epochs. */
  maxSteps?: number;
  /** Samples per micro-batch (default 1). */
  batchSize?: number;
  /** Micro-batches per optimizer step (default 1). */
  gradientAccumulation?: number;
  /** Adam's learning rate (default 1e-5, Sec. IV-A). */
  learningRate?: number;
  /** γ of Eq. (15) (default 0.1). */
  gamma?: number;
  /** Probability of the empty prompt (default 0.1, Sec. IV-A). */
  conditionDropout?: number;
  /** Mirror each sample left-right with probability ½ (default false). */
  flip?: boolean;
  /** Clip the gradients' global L2 norm to this (default: no clipping). */
  maxGradNorm?: number | null;
  /** λ of Eq. (7) (default 0.2). */
  lambda?: number;
  /** ε_t of Eq. (10) (default the paper's α = 0.5, β = 0.2, k = 2). */
  weightCurve?: WeightCurve | string;
  /**
   * Eq. (8) as written ('joint'), per token set ('decoupled', default), or per token set plus
   * the copy's feature at its own position ('aligned', not in the paper); see injection.ts.
   */
  injectionMode?: InjectionMode;
  /**
   * Which reference gives a sample's subject condition: 'same' (default) its own target, or
   * 'other' a different reference (needs ≥ 2), so the copy cannot just pass x_0 through.
   */
  conditionFrom?: 'same' | 'other';
  /**
   * Start the adapter from the weights of this adapter file (for instance one pretrained on many
   * subjects) instead of the U-Net's copy and zero projections. Its subject condition is not
   * used. It must have been trained on the same base U-Net. Default: none.
   */
  initAdapter?: string | null;
  /** Seeds the adapter's initialisation, the data order and every draw (default 0). */
  seed?: number;
  /** Write a checkpoint every N steps (default 100; 0: only at the end). */
  checkpointEvery?: number;
  /** Checkpoints kept (default 2). */
  keepCheckpoints?: number;
  /** Sample validation images every N steps (default 0: never). */
  sampleEvery?: number;
  /** Validation prompts (default: the training prompt). */
  validationPrompts?: string[];
  /** DDIM steps for validation images (default 25). */
  sampleSteps?: number;
  /** Images per validation prompt (default 2); seeds sampleSeed, sampleSeed + 1 ... */
  sampleImages?: number;
  sampleSeed?: number;
  sampleGuidanceScale?: number;
  /**
   * Compute a fixed evaluation loss (every reference at 5 spread timesteps, fixed noise, the
   * training prompt) before and after this session's steps (default true).
   */
  evaluate?: boolean;
  /** Continue from a checkpoint: true = the newest in outDir/checkpoints, or a path. */
  resume?: boolean | string;
  /** Stops between steps; writes a checkpoint first, then throws TrainingInterruptedError. */
  signal?: AbortSignal;
  onProgress?: (p: TrainProgress) => void | Promise<void>;
  /** Notes on what the run does (references found, checkpoint written, samples ...). */
  onLog?: (message: string) => void;
  /** For tests: sees (and may replace) each micro-batch's loss before it is checked. */
  lossHook?: (step: number, loss: Tensor) => Tensor;
  /** For tests and debugging: sees every model after each step's backward, before Adam steps. */
  afterBackward?: (models: {
    unet: Module;
    vae: Module;
    textEncoder: Module;
    adapter: Module;
  }) => void;
}

export interface TrainProgress {
  /** Optimizer steps done (1-based after the first). */
  step: number;
  totalSteps: number;
  /** This step's loss (mean over its micro-batches) and its parts. */
  loss: number;
  ldmLoss: number;
  acLoss: number;
  epoch: number;
  /** Seconds per step in this session, and the estimate of what is left. */
  secondsPerStep: number;
  etaSeconds: number;
  /** The step this session started from (0, or the resumed checkpoint's). */
  startStep: number;
}

export interface TrainP3SResult {
  adapterPath: string;
  steps: number;
  /** Losses of the steps run in this session, in order. */
  losses: number[];
  lastCheckpoint: string | null;
  sampleSheets: string[];
  references: string[];
  resumedFrom: number | null;
  /** The fixed evaluation loss before and after this session (null when evaluate is false). */
  evalLossBefore: number | null;
  evalLossAfter: number | null;
}

export class TrainingDivergedError extends Error {
  constructor(
    message: string,
    readonly step: number,
    readonly lastCheckpoint: string | null,
  ) {
    super(message);
    this.name = 'TrainingDivergedError';
  }
}

export class TrainingInterruptedError extends Error {
  constructor(
    message: string,
    readonly step: number,
    readonly checkpoint: string | null,
  ) {
    super(message);
    this.name = 'TrainingInterruptedError';
  }
}

// ---------------------------------------------------------------------------------------------
// Settings

interface Settings {
  identifier: string;
  classWord: string;
  promptTemplate: string;
  epochs: number;
  maxSteps: number | null;
  batchSize: number;
  gradientAccumulation: number;
  learningRate: number;
  gamma: number;
  conditionDropout: number;
  flip: boolean;
  maxGradNorm: number | null;
  lambda: number;
  weightCurve: WeightCurve;
  injectionMode: InjectionMode;
  conditionFrom: 'same' | 'other';
  backgroundLossWeight: number;
  seed: number;
  checkpointEvery: number;
  keepCheckpoints: number;
  sampleEvery: number;
  sampleSteps: number;
  sampleImages: number;
  sampleSeed: number;
  sampleGuidanceScale: number;
}

function int(v: number | undefined, fallback: number, what: string, min: number): number {
  const x = v ?? fallback;
  if (!Number.isSafeInteger(x) || x < min)
    throw new RangeError(
      `Expected ${min > 0 ? 'a positive' : 'a non-negative'} integer for ${what} but received ${x}`,
    );
  return x;
}

function num(
  v: number | undefined,
  fallback: number,
  what: string,
  ok: (x: number) => boolean,
  expected: string,
): number {
  const x = v ?? fallback;
  if (!Number.isFinite(x) || !ok(x))
    throw new RangeError(`Expected ${expected} for ${what} but received ${x}`);
  return x;
}

function resolveSettings(
  c: TrainP3SConfig,
  fromAnnotation: { identifier?: string; classWord?: string },
): Settings {
  const identifier = c.identifier ?? fromAnnotation.identifier ?? 'sks';
  const classWord = c.classWord ?? fromAnnotation.classWord;
  if (!/^\S+$/.test(identifier))
    throw new RangeError(
      `Expected one word for identifier but received ${JSON.stringify(identifier)}`,
    );
  if (classWord === undefined || classWord.trim() === '')
    throw new RangeError(
      'Expected a class word (e.g. "dog"): P3S trains on the prompt "a <identifier> <class>"',
    );
  const seed = int(c.seed, 0, 'seed', 0);
  if (seed >= 2 ** 32) throw new RangeError(`Expected a seed below 2^32 but received ${seed}`);
  return {
    identifier,
    classWord: classWord.trim(),
    promptTemplate: c.promptTemplate ?? 'a {}',
    epochs: int(c.epochs, 60, 'epochs', 1),
    maxSteps: c.maxSteps === undefined ? null : int(c.maxSteps, 0, 'maxSteps', 1),
    batchSize: int(c.batchSize, 1, 'batchSize', 1),
    gradientAccumulation: int(c.gradientAccumulation, 1, 'gradientAccumulation', 1),
    learningRate: num(c.learningRate, 1e-5, 'learningRate', (x) => x > 0, 'a positive number'),
    gamma: num(c.gamma, 0.1, 'gamma', (x) => x >= 0, 'a non-negative number'),
    conditionDropout: num(
      c.conditionDropout,
      0.1,
      'conditionDropout',
      (x) => x >= 0 && x <= 1,
      'a probability in [0, 1]',
    ),
    flip: c.flip ?? false,
    maxGradNorm:
      c.maxGradNorm === undefined || c.maxGradNorm === null
        ? null
        : num(c.maxGradNorm, 0, 'maxGradNorm', (x) => x > 0, 'a positive number'),
    lambda: num(c.lambda, 0.2, 'lambda', () => true, 'a number'),
    weightCurve:
      c.weightCurve === undefined
        ? PAPER_CURVE
        : typeof c.weightCurve === 'string'
          ? parseWeightCurve(c.weightCurve)
          : c.weightCurve,
    injectionMode: checkMode(c.injectionMode ?? 'decoupled'),
    conditionFrom: checkFrom(c.conditionFrom ?? 'same'),
    backgroundLossWeight: num(
      c.backgroundLossWeight,
      1,
      'backgroundLossWeight',
      (x) => x >= 0 && x <= 1,
      'a weight in [0, 1]',
    ),
    seed,
    checkpointEvery: int(c.checkpointEvery, 100, 'checkpointEvery', 0),
    keepCheckpoints: int(c.keepCheckpoints, 2, 'keepCheckpoints', 1),
    sampleEvery: int(c.sampleEvery, 0, 'sampleEvery', 0),
    sampleSteps: int(c.sampleSteps, 25, 'sampleSteps', 1),
    sampleImages: int(c.sampleImages, 2, 'sampleImages', 1),
    sampleSeed: int(c.sampleSeed, 0, 'sampleSeed', 0),
    sampleGuidanceScale: num(
      c.sampleGuidanceScale,
      7.5,
      'sampleGuidanceScale',
      () => true,
      'a number',
    ),
  };
}

function checkMode(m: string): InjectionMode {
  if (!isInjectionMode(m))
    throw new RangeError(
      `Expected injection mode ${INJECTION_MODES.map((x) => `"${x}"`).join(', ')} but received ${JSON.stringify(m)}`,
    );
  return m;
}

function checkFrom(m: string): 'same' | 'other' {
  if (m !== 'same' && m !== 'other')
    throw new RangeError(
      `Expected conditionFrom "same" or "other" but received ${JSON.stringify(m)}`,
    );
  return m;
}

// ---------------------------------------------------------------------------------------------
// Data order

/** mulberry32: a tiny seeded PRNG for the data order (independent of the torch stream). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Reference index of the i-th training sample: epoch e = ⌊i/N⌋ visits a permutation of 0..N−1. */
export class DataOrder {
  private readonly perms = new Map<number, number[]>();
  constructor(
    readonly seed: number,
    readonly n: number,
  ) {}
  permutation(epoch: number): number[] {
    let p = this.perms.get(epoch);
    if (!p) {
      const next = mulberry32((this.seed * 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca6b));
      p = Array.from({ length: this.n }, (_, i) => i);
      for (let i = this.n - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [p[i], p[j]] = [p[j]!, p[i]!];
      }
      if (this.perms.size > 4) this.perms.clear();
      this.perms.set(epoch, p);
    }
    return p;
  }
  at(sample: number): { reference: number; epoch: number } {
    const epoch = Math.floor(sample / this.n);
    return { reference: this.permutation(epoch)[sample % this.n]!, epoch };
  }
}

// ---------------------------------------------------------------------------------------------
// One micro-batch

interface StepContext {
  p3s: P3SUNet;
  scheduler: DDPMScheduler;
  refs: EncodedReferences;
  promptEmbeds: Tensor; // (1, 77, D)
  emptyEmbeds: Tensor; // (1, 77, D)
  generator: Generator;
  settings: Settings;
}

interface MicroLoss {
  loss: Tensor;
  ldm: Tensor;
  ac: Tensor | null;
  /** The captured attention maps: kept past tidy() by their processors, so free them after backward. */
  maps: Tensor[];
}

function rows(t: ReferenceTensors, which: keyof ReferenceTensors, index: number): Tensor {
  return t[which].slice(0, index, index + 1);
}

/** Eq. (14), the background's error weighted by backgroundLossWeight where subject masks are given. */
function subjectWeightedLdm(
  prediction: Tensor,
  target: Tensor,
  subjectMasks: Tensor | null,
  settings: Settings,
): Tensor {
  if (subjectMasks === null) return ldmLoss(prediction, target);
  const background = settings.backgroundLossWeight;
  const weights = subjectMasks.mul(1 - background).add(background); // m + w·(1 − m)
  return weightedLdmLoss(prediction, target, weights);
}

/**
 * Eq. (14)–(15) for one micro-batch of reference indices (the forward pass only; the caller
 * calls backward). Draws from ctx.generator in the documented order.
 */
export function microBatchLoss(ctx: StepContext, references: readonly number[]): MicroLoss {
  const { refs, generator, settings, scheduler } = ctx;
  const b = references.length;
  const n = refs.latents.shape[0]!;
  const T = scheduler.config.num_train_timesteps;
  // 1. flips
  const flips = settings.flip
    ? (rand([b], { generator }).toArray() as number[]).map((u) => u < 0.5)
    : new Array<boolean>(b).fill(false);
  // 2. timesteps t ~ U{0..T−1}
  const timesteps = randint(0, T, [b], { generator }).toArray() as number[];
  // 3. x_0 and noise ε
  const source = (j: number): ReferenceSet => (flips[j] ? refs.flipped! : refs);
  const x0 = ops.cat(
    references.map((r, j) => rows(source(j), 'latents', r)),
    0,
  ); // (B, C, h, w)
  const noise = randn(x0.shape, { generator, dtype: x0.dtype });
  // 4. condition dropout: the empty prompt for classifier-free guidance
  const dropped = (rand([b], { generator }).toArray() as number[]).map(
    (u) => u < settings.conditionDropout,
  );
  // 5. the subject condition's reference
  let condRefs = [...references];
  if (settings.conditionFrom === 'other' && n > 1) {
    const draws = randint(0, n - 1, [b], { generator }).toArray() as number[];
    condRefs = references.map((r, j) => (draws[j]! >= r ? draws[j]! + 1 : draws[j]!));
  }
  const xt = scheduler.addNoise(x0, noise, timesteps); // x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε
  const target = scheduler.trainingTarget(x0, noise, timesteps); // ε, v or x_0
  const context = ops.cat(
    dropped.map((d) => (d ? ctx.emptyEmbeds : ctx.promptEmbeds)),
    0,
  ); // (B, 77, D)
  const condition: SubjectCondition = {
    latent: ops.cat(
      condRefs.map((r, j) => rows(source(j).condition, 'latents', r)),
      0,
    ),
    clipStates: ops.cat(
      condRefs.map((r, j) => rows(source(j).condition, 'clipStates', r)),
      0,
    ),
  };
  const out = ctx.p3s.forward(xt, timesteps, context, condition, {
    captureAttention: settings.gamma > 0,
  });
  const masks = refs.subjectMasks
    ? ops.cat(
        references.map((r, j) => source(j).subjectMasks!.slice(0, r, r + 1)),
        0,
      )
    : null;
  const ldm = subjectWeightedLdm(out.noisePred, target, masks, settings); // Eq. (14)
  const ac =
    out.copyAttention && out.frozenAttention
      ? attentionConsistencyLoss(out.copyAttention, out.frozenAttention) // Eq. (11)–(13)
      : null;
  const loss = totalLoss(ldm, ac, settings.gamma); // Eq. (15)
  const maps = [out.copyAttention, out.frozenAttention].filter((m): m is Tensor => m !== null);
  return { loss, ldm, ac, maps };
}

/**
 * Eq. (15) on a fixed batch, without gradients: every reference at timesteps ⌊(k + ½)·T/K⌋,
 * k < K, with noise from its own Generator (the training stream is not touched), the training
 * prompt and the reference's own subject condition. Comparable across steps and runs.
 */
export function evaluationLoss(ctx: StepContext, k = 5): number {
  return noGrad(() => {
    const { refs, scheduler, settings } = ctx;
    const n = refs.latents.shape[0]!;
    const T = scheduler.config.num_train_timesteps;
    const timesteps = Array.from({ length: k }, (_, i) => Math.floor(((i + 0.5) * T) / k));
    const generator = new Generator(0x5eed);
    let total = 0;
    for (let r = 0; r < n; r++) {
      total += tidy(() => {
        const x0 = refs.latents.slice(0, r, r + 1).expand(k, ...refs.latents.shape.slice(1));
        const noise = randn(x0.shape, { generator, dtype: x0.dtype });
        const xt = scheduler.addNoise(x0, noise, timesteps);
        const target = scheduler.trainingTarget(x0, noise, timesteps);
        const context = ctx.promptEmbeds.expand(k, ...ctx.promptEmbeds.shape.slice(1));
        const condition = {
          latent: rows(refs.condition, 'latents', r),
          clipStates: rows(refs.condition, 'clipStates', r),
        };
        const out = ctx.p3s.forward(xt, timesteps, context, condition, {
          captureAttention: settings.gamma > 0,
        });
        const maps = [out.copyAttention, out.frozenAttention].filter(
          (m): m is Tensor => m !== null,
        );
        try {
          const ac = maps.length === 2 ? attentionConsistencyLoss(maps[0]!, maps[1]!) : null;
          const masks = refs.subjectMasks
            ? refs.subjectMasks.slice(0, r, r + 1).expand(k, 1, -1, -1)
            : null;
          const ldm = subjectWeightedLdm(out.noisePred, target, masks, settings);
          return totalLoss(ldm, ac, settings.gamma).item();
        } finally {
          disposeAll(maps);
        }
      });
    }
    return total / n;
  });
}

// ---------------------------------------------------------------------------------------------
// The run

/** Run settings added after checkpoints were first written: a checkpoint without one ran at its default. */
const LATER_IDENTITY_DEFAULTS: Record<string, unknown> = {
  background_loss_weight: 1,
  init_adapter: null,
};

/** The first 16 hex digits of a file's SHA-256 (names the adapter a run started from). */
function fileDigest(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex').slice(0, 16);
}

function hashTensors(tensors: Tensor[]): string {
  const hash = createHash('sha256');
  for (const t of tensors) {
    const a = t.contiguous();
    const v = a.toTypedArray();
    hash.update(`${t.shape.join('x')}:`);
    hash.update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    if (a !== t) a.dispose();
  }
  return hash.digest('hex').slice(0, 16);
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Fine-tunes a P3S adapter; see the top of this file. Writes outDir/adapter.safetensors. */
export async function trainP3S(config: TrainP3SConfig): Promise<TrainP3SResult> {
  const log = (m: string): void => config.onLog?.(m);
  // 0. inputs, before any model is loaded
  if (!existsSync(config.baseModel))
    throw new ModelLoadError(`Base model folder not found: ${config.baseModel}`);
  if (!existsSync(config.clipModel))
    throw new ModelLoadError(`CLIP vision model folder not found: ${config.clipModel}`);
  const initAdapter = config.initAdapter ?? null;
  if (initAdapter !== null && !existsSync(initAdapter))
    throw new AdapterError(`Adapter to start from not found: ${initAdapter}`);
  if ((config.references === undefined) === (config.annotation === undefined))
    throw new ReferencePhotoError(
      'Expected reference photos or an annotation file (one of the two)',
    );
  let fromAnnotation: { identifier?: string; classWord?: string } = {};
  if (config.annotation !== undefined) {
    const a = readAnnotation(config.annotation);
    fromAnnotation = { identifier: a.identifier, classWord: a.classWord };
  }
  const settings = resolveSettings(config, fromAnnotation);
  mkdirSync(config.outDir, { recursive: true });
  const checkpointDir = join(config.outDir, 'checkpoints');
  let resumePath: string | null = null;
  if (config.resume) {
    resumePath =
      typeof config.resume === 'string' ? config.resume : latestCheckpoint(checkpointDir);
    if (resumePath === null)
      throw new Error(`Nothing to resume: no checkpoint in ${checkpointDir}`);
    if (!existsSync(resumePath)) throw new Error(`Checkpoint not found: ${resumePath}`);
  }

  // 1. references (the mask job first when given raw photos and clicks)
  let references: ReferencePhoto[];
  if (config.annotation !== undefined) {
    const maskDir = join(config.outDir, 'mask');
    if (resumePath !== null && existsSync(join(maskDir, 'summary.json'))) {
      log(`Reusing the masks in ${maskDir}`);
    } else {
      log(`Running the mask job on ${config.annotation} into ${maskDir}`);
      await runMaskJob({
        annotationPath: config.annotation,
        clipFolder: config.clipModel,
        outDir: maskDir,
      });
    }
    references = resolveReferences([maskDir]);
  } else {
    references = resolveReferences(config.references!);
  }
  const referencePaths = references.map((r) => r.path);
  const subjectCrop = config.subjectCrop ?? null;
  const subjectOnlyCondition = config.subjectOnlyCondition ?? false;
  if (subjectCrop !== null && !(subjectCrop >= 1))
    throw new RangeError(
      `Expected a subject crop margin of at least 1 but received ${subjectCrop}`,
    );
  // before any model is loaded
  requireSubjectMasks(references, {
    crop: subjectCrop !== null,
    subjectOnlyCondition,
    weightedLoss: settings.backgroundLossWeight < 1,
  });
  log(
    `${referencePaths.length} reference photo(s): ${referencePaths.map((p) => basename(p)).join(', ')}`,
  );
  if (settings.conditionFrom === 'other' && referencePaths.length < 2)
    throw new RangeError('conditionFrom "other" needs at least two reference photos');

  // 2. models: frozen U-Net, VAE, text encoder, CLIP vision
  const pipeline = StableDiffusionPipeline.fromPretrained(config.baseModel, { scheduler: 'ddpm' });
  const owned: Tensor[] = [];
  let clip: CLIPVisionModel | null = null;
  let adapter: P3SAdapter | null = null;
  let ownedOptimizer: Adam | null = null;
  let p3s: P3SUNet | null = null;
  try {
    pipeline.unet.freeze().eval();
    pipeline.vae.freeze().eval();
    pipeline.textEncoder.freeze().eval();
    const scheduler = pipeline.scheduler as DDPMScheduler;
    const f = pipeline.vaeScaleFactor;
    const sampleSize = pipeline.unet.config.sample_size;
    const resolution = int(
      config.resolution,
      (Array.isArray(sampleSize) ? sampleSize[0]! : (sampleSize ?? 64)) * f,
      'resolution',
      1,
    );
    if (resolution % f !== 0)
      throw new RangeError(
        `Expected a resolution that is a multiple of ${f} but received ${resolution}`,
      );
    clip = CLIPVisionModel.fromPretrained(config.clipModel);
    clip.freeze().eval();
    const clipFingerprint = modelFingerprint(clip, clip.config);
    const clipHiddenSize = clip.config.hidden_size;

    // 3. precompute I' (latents) and c_s (CLIP states), and the two text contexts
    const refs = await encodeReferences(
      references,
      { vae: pipeline.vae, clip, processor: clipProcessorFor(config.clipModel, clip) },
      {
        resolution,
        flip: settings.flip,
        subjectMargin: subjectCrop,
        subjectOnlyCondition,
        subjectMasks: settings.backgroundLossWeight < 1,
        onWarning: log,
      },
    );
    for (const set of [refs, refs.flipped]) {
      if (set === null) continue;
      owned.push(set.latents, set.clipStates);
      if (set.condition.latents !== set.latents)
        owned.push(set.condition.latents, set.condition.clipStates);
      if (set.subjectMasks) owned.push(set.subjectMasks);
    }
    if (subjectOnlyCondition) log('Subject condition: the references with their subject only');
    clip.dispose();
    clip = null;
    const prompt = fillPrompt(settings.promptTemplate, settings.identifier, settings.classWord);
    const { promptEmbeds: both } = pipeline.encodePrompt([prompt, ''], null);
    const promptEmbeds = both.slice(0, 0, 1);
    const emptyEmbeds = both.slice(0, 1, 2);
    owned.push(both, promptEmbeds, emptyEmbeds);
    log(`Training prompt: "${prompt}"`);

    // 4. what must match for a resume to continue the same run
    const baseFingerprint = baseModelFingerprint(pipeline.unet);
    const identity: Record<string, unknown> = {
      base_fingerprint: baseFingerprint,
      clip_fingerprint: clipFingerprint,
      references_fingerprint: hashTensors(
        subjectOnlyCondition
          ? [refs.latents, refs.clipStates, refs.condition.latents, refs.condition.clipStates]
          : [refs.latents, refs.clipStates],
      ),
      prompt,
      resolution,
      batch_size: settings.batchSize,
      gradient_accumulation: settings.gradientAccumulation,
      learning_rate: settings.learningRate,
      gamma: settings.gamma,
      condition_dropout: settings.conditionDropout,
      flip: settings.flip,
      max_grad_norm: settings.maxGradNorm,
      lambda: settings.lambda,
      weight_curve: formatWeightCurve(settings.weightCurve),
      injection_mode: settings.injectionMode,
      condition_from: settings.conditionFrom,
      background_loss_weight: settings.backgroundLossWeight,
      init_adapter: initAdapter === null ? null : fileDigest(initAdapter),
      seed: settings.seed,
      prediction_type: scheduler.config.prediction_type,
    };

    // 5. adapter, optimizer, generator (fresh, or from the checkpoint)
    manualSeed(settings.seed);
    adapter = new P3SAdapter(pipeline.unet, clipHiddenSize);
    if (initAdapter !== null && resumePath === null) {
      loadAdapterWeights(adapter, initAdapter, pipeline.unet, config.baseModel);
      log(`Adapter starts from ${initAdapter}`);
    }
    adapter.requiresGrad_(true).train();
    const p3sSettings: P3SSettings = {
      lambda: settings.lambda,
      curve: settings.weightCurve,
      mode: settings.injectionMode,
      numTrainTimesteps: scheduler.config.num_train_timesteps,
    };
    p3s = new P3SUNet(pipeline.unet, adapter, p3sSettings);
    const params = adapter.parameters();
    const optimizer = new Adam(params, { lr: settings.learningRate });
    ownedOptimizer = optimizer;
    const generator = new Generator(settings.seed);
    let step = 0;
    let resumedFrom: number | null = null;
    if (resumePath !== null) {
      const info = readCheckpointInfo(resumePath);
      const saved = info.config;
      const differ = Object.keys(identity).filter(
        (k) =>
          JSON.stringify(k in saved ? saved[k] : LATER_IDENTITY_DEFAULTS[k]) !==
          JSON.stringify(identity[k]),
      );
      if (differ.length > 0) {
        throw new Error(
          `Cannot resume from ${basename(resumePath)}: the run differs in ${differ
            .map(
              (k) =>
                `${k} (checkpoint ${JSON.stringify(saved[k])}, now ${JSON.stringify(identity[k])})`,
            )
            .join(', ')}`,
        );
      }
      restoreCheckpoint(resumePath, { adapter, optimizer, generator });
      step = info.step;
      resumedFrom = step;
      log(`Resumed from ${resumePath} at step ${step}`);
    }

    const n = referencePaths.length;
    const perStep = settings.batchSize * settings.gradientAccumulation;
    const totalSteps = settings.maxSteps ?? Math.ceil((settings.epochs * n) / perStep);
    const order = new DataOrder(settings.seed, n);
    const ctx: StepContext = {
      p3s,
      scheduler,
      refs,
      promptEmbeds,
      emptyEmbeds,
      generator,
      settings,
    };
    const startStep = step;
    const losses: number[] = [];
    const sampleSheets: string[] = [];
    let lastCheckpoint: string | null = resumePath !== null ? resolve(resumePath) : null;
    let lastSavedStep = resumePath !== null ? step : -1;
    let lastLoss = NaN;
    const logPath = join(config.outDir, 'train-log.jsonl');
    const started = performance.now();
    const writeCheckpoint = (): string => {
      const path = saveCheckpoint(checkpointDir, {
        step,
        adapter: adapter!,
        optimizer,
        generator,
        config: identity,
        loss: lastLoss,
      });
      pruneCheckpoints(checkpointDir, settings.keepCheckpoints);
      lastCheckpoint = path;
      lastSavedStep = step;
      log(`Checkpoint ${path}`);
      return path;
    };
    const ddim =
      settings.sampleEvery > 0
        ? schedulerFromConfig(readSchedulerConfig(join(config.baseModel, 'scheduler')), {
            className: 'DDIMScheduler',
          })
        : null;
    const validationPrompts = (config.validationPrompts ?? [prompt]).map((p) =>
      fillPrompt(p, settings.identifier, settings.classWord),
    );
    const condition: SubjectCondition = {
      latent: refs.condition.latents,
      clipStates: refs.condition.clipStates,
    };

    const evaluate = config.evaluate ?? true;
    const evalLossBefore = evaluate ? evaluationLoss(ctx) : null;
    if (evalLossBefore !== null)
      log(`Evaluation loss at step ${step}: ${evalLossBefore.toPrecision(5)}`);

    // 6. the loop
    while (step < totalSteps) {
      let stepLoss = 0;
      let stepLdm = 0;
      let stepAc = 0;
      let epoch = 0;
      for (let micro = 0; micro < settings.gradientAccumulation; micro++) {
        const first = (step * settings.gradientAccumulation + micro) * settings.batchSize;
        const picks = Array.from({ length: settings.batchSize }, (_, j) => order.at(first + j));
        epoch = picks[0]!.epoch;
        const values = tidy(() => {
          const {
            loss: raw,
            ldm,
            ac,
            maps,
          } = microBatchLoss(
            ctx,
            picks.map((p) => p.reference),
          );
          try {
            const loss = config.lossHook ? config.lossHook(step + 1, raw) : raw;
            const v = { loss: loss.item(), ldm: ldm.item(), ac: ac ? ac.item() : 0 };
            // a non-finite loss is not back-propagated: the weights stay as the last good step left them
            if (Number.isFinite(v.loss)) loss.div(settings.gradientAccumulation).backward();
            return v;
          } finally {
            disposeAll(maps);
          }
        });
        if (!Number.isFinite(values.loss)) {
          optimizer.zeroGrad();
          throw divergence(
            step + 1,
            `the loss is ${values.loss} (L_LDM ${values.ldm}, L_ac ${values.ac})`,
            lastCheckpoint,
            lastSavedStep,
          );
        }
        stepLoss += values.loss / settings.gradientAccumulation;
        stepLdm += values.ldm / settings.gradientAccumulation;
        stepAc += values.ac / settings.gradientAccumulation;
      }
      config.afterBackward?.({
        unet: pipeline.unet,
        vae: pipeline.vae,
        textEncoder: pipeline.textEncoder,
        adapter,
      });
      if (settings.maxGradNorm !== null) {
        const norm = clipGradNorm(params, settings.maxGradNorm);
        if (!Number.isFinite(norm)) {
          optimizer.zeroGrad();
          throw divergence(step + 1, `the gradient norm is ${norm}`, lastCheckpoint, lastSavedStep);
        }
      }
      optimizer.step();
      optimizer.zeroGrad();
      step += 1;
      lastLoss = stepLoss;
      losses.push(stepLoss);
      const seconds = (performance.now() - started) / 1000;
      const secondsPerStep = seconds / (step - startStep);
      appendFileSync(
        logPath,
        `${JSON.stringify({ step, loss: stepLoss, ldm: stepLdm, ac: stepAc, epoch, seconds: Number(seconds.toFixed(3)) })}\n`,
      );
      await config.onProgress?.({
        step,
        totalSteps,
        loss: stepLoss,
        ldmLoss: stepLdm,
        acLoss: stepAc,
        epoch,
        secondsPerStep,
        etaSeconds: secondsPerStep * (totalSteps - step),
        startStep,
      });
      if (
        settings.checkpointEvery > 0 &&
        step % settings.checkpointEvery === 0 &&
        step < totalSteps
      )
        writeCheckpoint();
      if (ddim && step % settings.sampleEvery === 0) {
        const sheet = await writeSamples(
          { pipeline, p3s, condition },
          ddim,
          validationPrompts,
          settings,
          join(config.outDir, 'samples'),
          step,
        );
        sampleSheets.push(sheet);
        log(`Samples ${sheet}`);
      }
      // let the finalizers of this step's handles run (docs/engine.md, Memory)
      await tick();
      if (config.signal?.aborted && step < totalSteps) {
        const path = lastSavedStep === step ? lastCheckpoint : writeCheckpoint();
        throw new TrainingInterruptedError(
          `Training stopped at step ${step} of ${totalSteps}; resume from ${path}`,
          step,
          path,
        );
      }
    }

    // 7. the final checkpoint and the adapter
    if (lastSavedStep !== step) writeCheckpoint();
    const evalLossAfter = evaluate ? evaluationLoss(ctx) : null;
    if (evalLossAfter !== null)
      log(`Evaluation loss at step ${step}: ${evalLossAfter.toPrecision(5)}`);
    const adapterPath = join(config.outDir, 'adapter.safetensors');
    saveAdapter(adapterPath, adapter, condition, {
      baseModel: basename(resolve(config.baseModel)),
      baseFingerprint,
      clipModel: basename(resolve(config.clipModel)),
      clipFingerprint,
      identifier: settings.identifier,
      classWord: settings.classWord,
      promptTemplate: settings.promptTemplate,
      lambda: settings.lambda,
      weightCurve: formatWeightCurve(settings.weightCurve),
      injectionMode: settings.injectionMode,
      numTrainTimesteps: scheduler.config.num_train_timesteps,
      trainingSteps: step,
      resolution,
      references: refs.names,
      training: {
        learning_rate: settings.learningRate,
        gamma: settings.gamma,
        batch_size: settings.batchSize,
        gradient_accumulation: settings.gradientAccumulation,
        condition_dropout: settings.conditionDropout,
        condition_from: settings.conditionFrom,
        background_loss_weight: settings.backgroundLossWeight,
        flip: settings.flip,
        max_grad_norm: settings.maxGradNorm,
        seed: settings.seed,
        subject_crop: subjectCrop,
        subject_only_condition: subjectOnlyCondition,
        init_adapter: initAdapter === null ? null : basename(initAdapter),
        prompt,
      },
    });
    log(`Adapter ${adapterPath}`);
    return {
      adapterPath,
      steps: step,
      losses,
      lastCheckpoint,
      sampleSheets,
      references: referencePaths,
      resumedFrom,
      evalLossBefore,
      evalLossAfter,
    };
  } finally {
    p3s?.detach();
    // Adam's moments are the optimizer's own tensors (it has no dispose())
    ownedOptimizer?.dispose();
    adapter?.dispose();
    clip?.dispose();
    disposeAll(owned);
    pipeline.dispose();
  }
}

function divergence(
  step: number,
  what: string,
  lastCheckpoint: string | null,
  lastSavedStep: number,
): TrainingDivergedError {
  const kept = lastCheckpoint
    ? `the last good checkpoint is ${lastCheckpoint} (step ${lastSavedStep})`
    : 'no checkpoint was written yet';
  return new TrainingDivergedError(
    `Training diverged at step ${step}: ${what}. Nothing of this step was applied; ${kept}. ` +
      'Lower the learning rate or set a gradient clipping norm (maxGradNorm / --max-grad-norm).',
    step,
    lastCheckpoint,
  );
}

/** Validation images for each prompt, as one contact sheet samples/step-NNNNNN.png. */
async function writeSamples(
  models: Parameters<typeof sampleP3S>[0],
  scheduler: Parameters<typeof sampleP3S>[1],
  prompts: string[],
  settings: Settings,
  dir: string,
  step: number,
): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const n = models.condition.latent.shape[0]!;
  const [h, w] = [models.condition.latent.shape[2]!, models.condition.latent.shape[3]!];
  const seeds = Array.from({ length: settings.sampleImages }, (_, k) => settings.sampleSeed + k);
  const images = [];
  for (const prompt of prompts) {
    images.push(
      ...(await sampleP3S(models, scheduler, {
        prompt,
        negativePrompt: '',
        seeds,
        references: seeds.map((_, k) => k % n),
        steps: settings.sampleSteps,
        guidanceScale: settings.sampleGuidanceScale,
        eta: 0,
        latentSize: [h, w],
      })),
    );
  }
  const path = join(dir, `step-${String(step).padStart(6, '0')}.png`);
  await writePng(path, contactSheet(images, seeds.length, { gap: 2 }), {
    text: {
      step: String(step),
      prompts: prompts.join('\n'),
      seeds: seeds.join(','),
      steps: String(settings.sampleSteps),
      guidance_scale: String(settings.sampleGuidanceScale),
    },
  });
  return path;
}
