// P3S fine-tuning (paper Sec. III-B, IV-A): the frozen base model, a new adapter (subject
// encoder + trainable copy), and the filled reference photos of one subject. A run goes through
// stages, each a function of the run object:
//   1. inputs      settings validated once (train_settings.ts); photos, or clicks → mask job
//   2. models      the frozen U-Net, VAE, text encoder and CLIP vision
//   3. references  I' (latents) and c_s (CLIP states) precomputed; the two text contexts
//   4. method      the P3S method (method.ts) with a fresh or given adapter, or with --method
//                  a baseline on the same batches (src/baselines/: DreamBooth, Textual
//                  Inversion, Custom Diffusion), whose prompt names the subject by its token
//   5. identity    what a checkpoint must match to continue this run; the resume point
//   6. loop        the shared resumable loop (training/loop.ts) over micro-batches drawn by
//                  training/fine_tuning.ts: x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε, the prompt "a sks dog"
//                  or "" (10 % condition dropout, Sec. IV-A), Adam on the adapter only
//   7. finish      the evaluation loss after, the adapter file (only with fit weights)
//
// A run owns its output folder (training/run_folder.ts, run_lock.ts): checked writable before
// any work, locked while it runs, and a new run into a folder holding another run's checkpoints
// or adapter is refused unless asked to replace it (overwrite). A run that diverged continues
// from its last good checkpoint with other settings as a new run (branch).
//
// Condition dropout drops only the text: the subject condition stays. Generation gives the
// subject condition to both halves of the classifier-free-guidance batch, so the unconditional
// branch learnt here, ε(x_t | "", I', c_s) — "the subject, without a prompt" — is what
// generation's ε_∅ asks for.
import { existsSync, readdirSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { Generator, manualSeed } from '../engine/random.js';
import { disposeAll } from '../engine/scope.js';
import type { Tensor } from '../engine/tensor.js';
import { CLIPVisionModel } from '../models/clip/clip_vision_model.js';
import { ModelLoadError } from '../models/loading.js';
import { Adam } from '../optim/adam.js';
import { StableDiffusionPipeline } from '../pipelines/stable_diffusion.js';
import { holdFrozenInHalfPrecision } from '../models/precision.js';
import type { Module } from '../nn/module.js';
import { schedulerFromConfig } from '../schedulers/index.js';
import type { DDPMScheduler } from '../schedulers/scheduling_ddpm.js';
import { readSchedulerConfig } from '../schedulers/scheduling_utils.js';
import { identityOf, metadataOf, olderDefaults } from '../settings/table.js';
import { latestCheckpoint, listCheckpoints } from '../training/checkpoint.js';
import { TrainingDivergedError, writeFailure } from '../training/errors.js';
import { unfitState } from '../training/finite.js';
import { DataOrder } from '../training/data_order.js';
import { evaluationLoss, fineTuningStep, type FineTuningData } from '../training/fine_tuning.js';
import { tensorsDigest, type RunIdentity } from '../training/identity.js';
import { runTraining, type TrainingOutcome } from '../training/loop.js';
import { namedSchedule } from '../training/lr_schedule.js';
import { logTo, type TrainingObserver } from '../training/observer.js';
import { checkWritable, deleteEarlierRun, refuseEarlierRun } from '../training/run_folder.js';
import { refuseOtherRun } from '../training/resume.js';
import { lockRunFolder, type RunLock } from '../training/run_lock.js';
import type { FineTuningMethod } from '../training/method.js';
import { BASELINE_OUTPUTS, createBaseline, subjectToken } from '../baselines/index.js';
import {
  AdapterError,
  baseModelFingerprint,
  loadAdapterWeights,
  modelFingerprint,
} from './adapter/adapter_io.js';
import { formatWeightCurve } from './adapter/weight_schedule.js';
import { readAnnotation } from './supervision/annotations.js';
import { runMaskJob } from './supervision/mask_job.js';
import { P3SMethod } from './method.js';
import { DEFAULT_IDENTIFIER, fillPrompt } from './prompts.js';
import {
  clipProcessorFor,
  encodeReferences,
  ReferencePhotoError,
  requireSubjectMasks,
  resolveReferences,
  type EncodedReferences,
  type ReferencePhoto,
} from './references.js';
import { SampleWriter } from './samples.js';
import { checkTrainingMemory } from './train_memory.js';
import {
  resolveTrainSettings,
  TRAIN_SETTINGS,
  type TrainP3SConfig,
  type TrainSettings,
} from './train_settings.js';

export type { TrainP3SConfig, TrainSettings } from './train_settings.js';

export interface TrainP3SResult {
  adapterPath: string;
  steps: number;
  /** Losses of the steps run in this session, in order. */
  losses: number[];
  lastCheckpoint: string;
  sampleSheets: string[];
  references: string[];
  resumedFrom: number | null;
  /** The fixed evaluation loss before and after this session (null when evaluate is false). */
  evalLossBefore: number | null;
  evalLossAfter: number | null;
}

export interface TrainRunOptions {
  observers?: readonly TrainingObserver[];
  /** Stops between steps; a checkpoint is written, then TrainingInterruptedError is thrown. */
  signal?: AbortSignal;
  /**
   * Bytes this run may use beyond its loaded models (a server's per-job share); default: what
   * the system, or its cgroup limit, has available.
   */
  memoryBudget?: number;
}

/** Refuses the P3S-only settings with another method. */
function checkMethodSettings(settings: TrainSettings): void {
  if (settings.trainTextEncoder && settings.method !== 'dreambooth')
    throw new RangeError(
      `--train-text-encoder is for --method dreambooth only (now ${settings.method})`,
    );
  if (settings.method === 'p3s') return;
  const p3sOnly = [
    [settings.initAdapter !== null, '--init-adapter'],
    [settings.sampleEvery > 0, '--sample-every'],
  ] as const;
  for (const [given, flag] of p3sOnly)
    if (given)
      throw new RangeError(
        `${flag} is for --method p3s only (now ${settings.method}); generate with p3s generate --adapter <the run's output> instead`,
      );
}

/** A P3S run as it goes through its stages. */
interface Run {
  settings: TrainSettings;
  identifier: string;
  classWord: string;
  references: ReferencePhoto[];
  resumeFrom: string | null;
  observers: readonly TrainingObserver[];
  log(message: string): void;
  /** What the run holds and frees at the end. */
  owned: Tensor[];
  /** The output folder's lock, released at the end. */
  lock: RunLock;
}

// ---------------------------------------------------------------------------------------------
// 1. inputs, before any model is loaded

async function prepareInputs(config: TrainP3SConfig, options: TrainRunOptions): Promise<Run> {
  const settings = resolveTrainSettings(config);
  const observers = options.observers ?? [];
  const log = (m: string): void => logTo(observers, m);
  if (!existsSync(settings.baseModel))
    throw new ModelLoadError(`Base model folder not found: ${settings.baseModel}`);
  if (!existsSync(settings.clipModel))
    throw new ModelLoadError(`CLIP vision model folder not found: ${settings.clipModel}`);
  if (settings.initAdapter !== null && !existsSync(settings.initAdapter))
    throw new AdapterError(`Adapter to start from not found: ${settings.initAdapter}`);
  if ((config.references === undefined) === (settings.annotation === null))
    throw new ReferencePhotoError(
      'Expected reference photos or an annotation file (one of the two)',
    );
  const annotation = settings.annotation === null ? null : readAnnotation(settings.annotation);
  const identifier = settings.identifier ?? annotation?.identifier ?? DEFAULT_IDENTIFIER;
  const classWord = settings.classWord ?? annotation?.classWord;
  if (classWord === undefined || classWord.trim() === '')
    throw new RangeError(
      'Expected a class word (e.g. "dog"): P3S trains on the prompt "a <identifier> <class>"',
    );
  checkResumeSettings(settings);
  checkMethodSettings(settings);
  checkWritable(settings.outDir);
  const lock = lockRunFolder(settings.outDir, log);
  try {
    const resumeFrom = resumePoint(settings);
    const references = await checkedReferences(config, settings, resumeFrom !== null, log);
    const subject = { identifier, classWord: classWord.trim() };
    return { settings, ...subject, references, resumeFrom, observers, log, owned: [], lock };
  } catch (err) {
    lock.release();
    throw err;
  }
}

/** The reference photos (referencePhotos), checked against the settings that need masks. */
async function checkedReferences(
  config: TrainP3SConfig,
  settings: TrainSettings,
  resuming: boolean,
  log: (m: string) => void,
): Promise<ReferencePhoto[]> {
  const references = await referencePhotos(config, settings, resuming, log);
  requireSubjectMasks(references, {
    crop: settings.subjectCrop !== null,
    subjectOnlyCondition: settings.subjectOnlyCondition,
    weightedLoss: settings.backgroundLossWeight < 1,
  });
  log(
    `${references.length} reference photo(s): ${references.map((r) => basename(r.path)).join(', ')}`,
  );
  if (settings.cropJitter > 0 && settings.subjectCrop === null)
    throw new RangeError(
      '--crop-jitter moves and scales the subject crop: it needs --crop-subject',
    );
  if (settings.conditionFrom === 'other' && references.length < 2)
    throw new RangeError('conditionFrom "other" needs at least two reference photos');
  return references;
}

/** Refuses combinations of resume, resumeFrom, branch and overwrite that mean nothing. */
function checkResumeSettings(settings: TrainSettings): void {
  const resuming = settings.resume || settings.resumeFrom !== null;
  if (settings.resume && settings.resumeFrom !== null)
    throw new RangeError('Give resume or resumeFrom, not both');
  if (settings.branch && !resuming)
    throw new RangeError(
      'branch continues from a checkpoint: give it with resume (--resume) or resumeFrom (--resume-from)',
    );
  if (settings.overwrite && resuming)
    throw new RangeError(
      'overwrite replaces the earlier run with a new one: give it without resume or resumeFrom',
    );
}

/** The files of an earlier run in the output folder: its work, and what else it wrote. */
function earlierRun(outDir: string): { work: string[]; byproducts: string[] } {
  const checkpoints = join(outDir, 'checkpoints');
  const samples = join(outDir, 'samples');
  const inFolder = (dir: string, pattern: RegExp): string[] =>
    existsSync(dir)
      ? readdirSync(dir)
          .filter((f) => pattern.test(f))
          .map((f) => join(dir, f))
      : [];
  const exists = (f: string): string[] => (existsSync(join(outDir, f)) ? [join(outDir, f)] : []);
  return {
    work: [
      ...listCheckpoints(checkpoints).map((c) => c.path),
      ...['adapter.safetensors', ...BASELINE_OUTPUTS].flatMap(exists),
    ],
    byproducts: [
      ...inFolder(checkpoints, /^checkpoint-\d+\.safetensors\.abandoned$/),
      ...inFolder(samples, /^step-\d+\.png$/),
      ...exists('train-log.jsonl'),
      // generation's --reference best, made with the adapter this run replaces
      ...exists('adapter.ranking.json'),
    ],
  };
}

/**
 * The checkpoint to continue from (resume: the newest in outDir/checkpoints), or null for a new
 * run, which must not replace another run's work unless told to (overwrite).
 */
function resumePoint(settings: TrainSettings): string | null {
  if (settings.resumeFrom !== null) {
    if (!existsSync(settings.resumeFrom))
      throw new Error(`Checkpoint not found: ${settings.resumeFrom}`);
    return settings.resumeFrom;
  }
  const dir = join(settings.outDir, 'checkpoints');
  if (!settings.resume) {
    // with overwrite, the earlier run is deleted only once this run is ready to train (trainLoop)
    if (!settings.overwrite)
      refuseEarlierRun(
        settings.outDir,
        earlierRun(settings.outDir).work,
        'continue it (--resume), continue it with other settings as a new run (--resume --branch), replace it (--overwrite) or give another output folder (--out)',
      );
    return null;
  }
  const latest = latestCheckpoint(dir);
  if (latest === null) throw new Error(`Nothing to resume: no checkpoint in ${dir}`);
  return latest;
}

/** The photos given, or the mask job's filled photos when given raw photos and clicks. */
async function referencePhotos(
  config: TrainP3SConfig,
  settings: TrainSettings,
  resuming: boolean,
  log: (m: string) => void,
): Promise<ReferencePhoto[]> {
  if (settings.annotation === null) return resolveReferences(config.references!);
  const maskDir = join(settings.outDir, 'mask');
  if (resuming && existsSync(join(maskDir, 'summary.json'))) {
    log(`Reusing the masks in ${maskDir}`);
  } else {
    log(`Running the mask job on ${settings.annotation} into ${maskDir}`);
    await runMaskJob({
      annotationPath: settings.annotation,
      clipFolder: settings.clipModel,
      outDir: maskDir,
    });
  }
  return resolveReferences([maskDir]);
}

// ---------------------------------------------------------------------------------------------
// 2. models and 3. references

interface Frozen {
  pipeline: StableDiffusionPipeline;
  scheduler: DDPMScheduler;
  resolution: number;
  clipFingerprint: string;
  clipHiddenSize: number;
}

function trainingResolution(pipeline: StableDiffusionPipeline, given: number | null): number {
  const f = pipeline.vaeScaleFactor;
  const sampleSize = pipeline.unet.config.sample_size;
  const resolution = given ?? (Array.isArray(sampleSize) ? sampleSize[0]! : (sampleSize ?? 64)) * f;
  if (resolution % f !== 0)
    throw new RangeError(
      `Expected a resolution that is a multiple of ${f} but received ${resolution}`,
    );
  return resolution;
}

/** Loads CLIP vision, encodes the references with it and the VAE, and frees it again. */
async function encodeWithClip(
  run: Run,
  frozen: Omit<Frozen, 'clipFingerprint' | 'clipHiddenSize'>,
) {
  const { settings } = run;
  const clip = CLIPVisionModel.fromPretrained(settings.clipModel);
  try {
    clip.freeze().eval();
    const references = await encodeReferences(
      run.references,
      { vae: frozen.pipeline.vae, clip, processor: clipProcessorFor(settings.clipModel, clip) },
      {
        resolution: frozen.resolution,
        flip: settings.flip,
        subjectMargin: settings.subjectCrop,
        cropJitter: settings.cropJitter,
        subjectOnlyCondition: settings.subjectOnlyCondition,
        withSubjectMasks: settings.backgroundLossWeight < 1,
        onWarning: run.log,
      },
    );
    for (const set of [references, ...references.variants]) {
      run.owned.push(set.latents, set.clipStates);
      if (set.condition.latents !== set.latents)
        run.owned.push(set.condition.latents, set.condition.clipStates);
      if (set.subjectMasks) run.owned.push(set.subjectMasks);
    }
    if (settings.subjectOnlyCondition)
      run.log('Subject condition: the references with their subject only');
    return {
      references,
      clipFingerprint: modelFingerprint(clip, clip.config),
      clipHiddenSize: clip.config.hidden_size,
    };
  } finally {
    clip.dispose();
  }
}

/** The training prompt's and the empty prompt's text contexts, (1, 77, D) each. */
function promptContexts(run: Run, pipeline: StableDiffusionPipeline) {
  const token = subjectToken(run.settings.method, run.identifier);
  const prompt = fillPrompt(run.settings.promptTemplate, token, run.classWord);
  const { promptEmbeds: both } = pipeline.encodePrompt([prompt, ''], null);
  const contexts = { prompt: both.slice(0, 0, 1), empty: both.slice(0, 1, 2) };
  run.owned.push(both, contexts.prompt, contexts.empty);
  run.log(`Training prompt: "${prompt}"`);
  return { prompt, contexts };
}

// ---------------------------------------------------------------------------------------------
// 4. method and 5. identity

/** The run's method: P3S, or a baseline (src/baselines/) on the same batches. */
async function createMethod(
  run: Run,
  frozen: Frozen,
  references: EncodedReferences,
  prompt: string,
): Promise<FineTuningMethod> {
  const { settings } = run;
  if (settings.method === 'p3s') return createP3SMethod(run, frozen, references, prompt);
  return createBaseline({
    method: settings.method,
    pipeline: frozen.pipeline,
    scheduler: frozen.scheduler,
    prompt,
    identifier: run.identifier,
    classWord: run.classWord,
    resolution: frozen.resolution,
    settings,
    baseFingerprint: baseModelFingerprint(frozen.pipeline.unet),
    log: run.log,
  });
}

function createP3SMethod(
  run: Run,
  frozen: Frozen,
  references: EncodedReferences,
  prompt: string,
): P3SMethod {
  const { settings } = run;
  const { unet } = frozen.pipeline;
  const numTrainTimesteps = frozen.scheduler.config.num_train_timesteps;
  manualSeed(settings.seed); // the adapter's initialisation
  const method = new P3SMethod(
    unet,
    frozen.clipHiddenSize,
    {
      lambda: settings.lambda,
      weightCurve: settings.weightCurve,
      injectionMode: settings.injectionMode,
      numTrainTimesteps,
    },
    references,
    settings,
    {
      baseModel: basename(resolve(settings.baseModel)),
      baseFingerprint: baseModelFingerprint(unet),
      clipModel: basename(resolve(settings.clipModel)),
      clipFingerprint: frozen.clipFingerprint,
      identifier: run.identifier,
      classWord: run.classWord,
      promptTemplate: settings.promptTemplate,
      lambda: settings.lambda,
      weightCurve: formatWeightCurve(settings.weightCurve),
      injectionMode: settings.injectionMode,
      numTrainTimesteps,
      resolution: frozen.resolution,
      references: references.names,
      training: { ...metadataOf(TRAIN_SETTINGS, settings), prompt },
    },
  );
  if (settings.initAdapter !== null && run.resumeFrom === null) {
    loadAdapterWeights(method.adapter, settings.initAdapter, unet, settings.baseModel);
    run.log(`Adapter starts from ${settings.initAdapter}`);
  }
  method.adapter.requiresGrad_(true).train();
  return method;
}

/** What must match for a resume to continue the same run. */
function runIdentity(
  run: Run,
  frozen: Frozen,
  references: EncodedReferences,
  prompt: string,
): RunIdentity {
  const { settings } = run;
  const data = settings.subjectOnlyCondition
    ? [
        references.latents,
        references.clipStates,
        references.condition.latents,
        references.condition.clipStates,
      ]
    : [references.latents, references.clipStates];
  return {
    values: {
      base_fingerprint: baseModelFingerprint(frozen.pipeline.unet),
      clip_fingerprint: frozen.clipFingerprint,
      references_fingerprint: tensorsDigest(data),
      prompt,
      resolution: frozen.resolution,
      prediction_type: frozen.scheduler.config.prediction_type,
      ...identityOf(TRAIN_SETTINGS, settings),
    },
    olderDefaults: olderDefaults(TRAIN_SETTINGS),
    fixed: BRANCH_KEEPS,
  };
}

const RESUME_ADVICE =
  'to continue from it with other settings as a new run, add --branch (branch: true); to start afresh, --overwrite without --resume';

/** What a branch must keep: the models, the data and what the adapter is trained for. */
const BRANCH_KEEPS = [
  'method',
  'base_fingerprint',
  'clip_fingerprint',
  'references_fingerprint',
  'prompt',
  'resolution',
  'prediction_type',
];

/** A tenth of a learning rate, to three digits: what a divergence message suggests. */
const lowerLearningRate = (lr: number): number => Number((lr / 10).toPrecision(3));

/**
 * The flags that continue a diverged run from its last good checkpoint as a new run with a
 * tenth of its learning rate (or, without a checkpoint, start it again so).
 */
export function branchFlags(
  settings: Pick<TrainSettings, 'learningRate'>,
  lastCheckpoint: string | null,
): string[] {
  const lr = ['--lr', String(lowerLearningRate(settings.learningRate))];
  return lastCheckpoint === null ? lr : ['--resume-from', lastCheckpoint, '--branch', ...lr];
}

/** What the divergence message advises: exact flags, and the API's names. */
function divergenceAdvice(settings: TrainSettings, lastCheckpoint: string | null): string {
  const clip =
    settings.maxGradNorm === null
      ? '--max-grad-norm 1'
      : `a --max-grad-norm below ${settings.maxGradNorm}`;
  const flags = branchFlags(settings, lastCheckpoint).join(' ');
  return lastCheckpoint === null
    ? `Lower the learning rate (now ${settings.learningRate}) or clip the gradients and run again: ${flags} (or ${clip}).`
    : `Lower the learning rate (now ${settings.learningRate}) or clip the gradients, continuing from that checkpoint as a new run: ${flags} (or ${clip}; API: resumeFrom and branch: true).`;
}

// ---------------------------------------------------------------------------------------------
// 6. the loop and 7. finish

/** The base model's modules no method trains (DreamBooth trains the U-Net, Custom Diffusion part of it). */
function frozenModules(pipeline: StableDiffusionPipeline): Module[] {
  return [pipeline.unet, pipeline.vae, pipeline.textEncoder].filter((m) =>
    m.parameters().every((p) => !p.requiresGrad),
  );
}

/** P3S's validation images (other methods refuse --sample-every: checkMethodSettings). */
function validationSamples(
  run: Run,
  frozen: Frozen,
  method: FineTuningMethod,
  prompt: string,
): SampleWriter | null {
  if (!(method instanceof P3SMethod)) return null;
  const { settings } = run;
  const ddim =
    settings.sampleEvery > 0
      ? schedulerFromConfig(readSchedulerConfig(join(settings.baseModel, 'scheduler')), {
          className: 'DDIMScheduler',
        })
      : frozen.scheduler;
  const prompts = (settings.validationPrompts ?? [prompt]).map((p) =>
    fillPrompt(p, run.identifier, run.classWord),
  );
  return new SampleWriter(
    { pipeline: frozen.pipeline, p3s: method.p3s, condition: method.condition },
    ddim,
    {
      every: settings.sampleEvery,
      prompts,
      images: settings.sampleImages,
      firstSeed: settings.sampleSeed,
      steps: settings.sampleSteps,
      guidanceScale: settings.sampleGuidanceScale,
    },
    join(settings.outDir, 'samples'),
    run.log,
  );
}

async function trainLoop(
  run: Run,
  data: FineTuningData,
  method: FineTuningMethod,
  identity: RunIdentity,
  extra: {
    optimizer: Adam;
    observers: TrainingObserver[];
    pipeline: StableDiffusionPipeline;
    signal?: AbortSignal;
  },
): Promise<TrainingOutcome> {
  const { settings } = run;
  const n = run.references.length;
  const perStep = settings.batchSize * settings.gradientAccumulation;
  const observers = [...run.observers, ...extra.observers];
  if (settings.overwrite) {
    const earlier = earlierRun(settings.outDir);
    deleteEarlierRun(settings.outDir, [...earlier.work, ...earlier.byproducts], run.log);
  }
  const totalSteps = settings.maxSteps ?? Math.ceil((settings.epochs * n) / perStep);
  return runTraining({
    name: 'Training',
    checkpointDir: join(settings.outDir, 'checkpoints'),
    logPath: join(settings.outDir, 'train-log.jsonl'),
    totalSteps,
    checkpointEvery: settings.checkpointEvery,
    keepCheckpoints: settings.keepCheckpoints,
    identity,
    state: { model: method.trainable, optimizer: extra.optimizer, generator: data.generator },
    resumeFrom: run.resumeFrom,
    resumeFallback: settings.resume,
    branch: settings.branch,
    // one forward pass per reference at t = T/2: cheap, and NaN when the weights compute NaN
    probeLoss: () => evaluationLoss(data, method, 1),
    reserveBytes: method.artifactBytes(),
    learningRate: namedSchedule(settings.lrSchedule, settings.learningRate, totalSteps),
    maxGradNorm: settings.maxGradNorm,
    computeGradients: (step) => fineTuningStep(data, method, step, observers),
    modules: {
      unet: extra.pipeline.unet,
      vae: extra.pipeline.vae,
      textEncoder: extra.pipeline.textEncoder,
      adapter: method.trainable,
    },
    observers,
    signal: extra.signal,
    divergenceAdvice: (lastCheckpoint) => divergenceAdvice(settings, lastCheckpoint),
    resumeAdvice: RESUME_ADVICE,
  });
}

/**
 * Writes the adapter if its weights are fit (finite, a finite evaluation loss when evaluated);
 * else stops with the divergence error. Records where the run branched from, if it did.
 */
function writeAdapter(
  run: Run,
  method: FineTuningMethod,
  state: { optimizer: Adam; evalLossAfter: number | null },
  outcome: TrainingOutcome,
): string {
  const { settings } = run;
  const unfit =
    unfitState({ model: method.trainable, optimizer: state.optimizer }) ??
    (state.evalLossAfter !== null && !Number.isFinite(state.evalLossAfter)
      ? `the evaluation loss is ${state.evalLossAfter}`
      : null);
  if (unfit !== null) {
    const last = outcome.lastCheckpoint;
    throw new TrainingDivergedError(
      `Training diverged by step ${outcome.step}: ${unfit}. The adapter was not written; the last checkpoint is ${last} (step ${outcome.step}). ${divergenceAdvice(settings, last)}`,
      outcome.step,
      last,
    );
  }
  // the lineage is known once the loop has taken its checkpoint
  if (outcome.lineage !== null) method.recordLineage?.(outcome.lineage);
  try {
    return method.save(settings.outDir, outcome.step);
  } catch (err) {
    throw writeFailure(err, settings.outDir, `write the ${method.name} output`);
  }
}

/** Fine-tunes a P3S adapter; see the top of this file. Writes outDir/adapter.safetensors. */
export async function trainP3S(
  config: TrainP3SConfig,
  options: TrainRunOptions = {},
): Promise<TrainP3SResult> {
  const run = await prepareInputs(config, options);
  try {
    return await trainInFolder(run, options);
  } finally {
    run.lock.release();
  }
}

/** Stages 2 to 7, in the locked output folder. */
async function trainInFolder(run: Run, options: TrainRunOptions): Promise<TrainP3SResult> {
  const { settings } = run;
  const pipeline = StableDiffusionPipeline.fromPretrained(settings.baseModel, {
    scheduler: 'ddpm',
  });
  let method: FineTuningMethod | null = null;
  let optimizer: Adam | null = null;
  try {
    for (const m of [pipeline.unet, pipeline.vae, pipeline.textEncoder]) m.freeze().eval();
    const scheduler = pipeline.scheduler as DDPMScheduler;
    const resolution = trainingResolution(pipeline, settings.resolution);
    const shape = {
      resolution,
      batchSize: settings.batchSize,
      injectionMode: settings.injectionMode,
    };
    checkTrainingMemory(
      pipeline,
      { ...shape, given: settings.resolution !== null },
      options.memoryBudget,
    );
    const encoded = await encodeWithClip(run, { pipeline, scheduler, resolution });
    const frozen: Frozen = { pipeline, scheduler, resolution, ...encoded };
    const { prompt, contexts } = promptContexts(run, pipeline);
    const identity = runIdentity(run, frozen, encoded.references, prompt);
    // before a baseline draws its class images, which a refused resume would waste
    if (run.resumeFrom !== null && !settings.branch)
      refuseOtherRun(run.resumeFrom, identity, RESUME_ADVICE);
    method = await createMethod(run, frozen, encoded.references, prompt);
    // after the method: P3S's trainable copy starts from the U-Net's float32 weights
    if (settings.frozenPrecision === 'half') holdFrozenInHalfPrecision(frozenModules(pipeline));
    optimizer = new Adam(method.trainable.parameters(), {
      lr: settings.learningRate,
      momentDtype: settings.optimizerPrecision === 'half' ? 'bfloat16' : 'float32',
      roundingSeed: settings.seed,
    });
    const data: FineTuningData = {
      references: encoded.references,
      contexts,
      scheduler,
      settings,
      order: new DataOrder(settings.seed, run.references.length),
      generator: new Generator(settings.seed),
    };
    // the fixed evaluation loss before this session's steps (after a resume: of its weights) and after
    const evaluation = { before: null as number | null };
    const evaluate = (step: number): number | null => {
      if (!settings.evaluate) return null;
      const loss = evaluationLoss(data, method!);
      run.log(`Evaluation loss at step ${step}: ${loss.toPrecision(5)}`);
      return loss;
    };
    const samples = validationSamples(run, frozen, method, prompt);
    const evaluateFirst: TrainingObserver = {
      onStart: (step) => void (evaluation.before = evaluate(step)),
    };
    const outcome = await trainLoop(run, data, method, identity, {
      optimizer,
      observers: samples ? [evaluateFirst, samples] : [evaluateFirst],
      pipeline,
      signal: options.signal,
    });
    const evalLossAfter = evaluate(outcome.step);
    const adapterPath = writeAdapter(run, method, { optimizer, evalLossAfter }, outcome);
    run.log(`${method instanceof P3SMethod ? 'Adapter' : `${method.name} output`} ${adapterPath}`);
    return {
      adapterPath,
      steps: outcome.step,
      losses: outcome.losses,
      lastCheckpoint: outcome.lastCheckpoint,
      sampleSheets: samples?.sheets ?? [],
      references: run.references.map((r) => r.path),
      resumedFrom: run.resumeFrom === null ? null : outcome.startStep,
      evalLossBefore: evaluation.before,
      evalLossAfter,
    };
  } finally {
    method?.dispose();
    // Adam's moments are the optimizer's own tensors
    optimizer?.dispose();
    disposeAll(run.owned);
    pipeline.dispose();
  }
}
