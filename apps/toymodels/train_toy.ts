// `npm run train:toy`: trains the embedded default's models from scratch on the toy world, stage
// by stage — VAE, its decoder, CLIP, attribute probe, U-Net, then the quality evaluation, and on
// request a P3S adapter pretrained on many subjects — and writes them as a diffusers folder with
// fp16 weights. The stages are a table: what each reads from the model folder (checked before
// anything runs), what it writes there, what training.json records of it, and how it runs. Each
// stage checkpoints to `work/<stage>/` and resumes where a killed run stopped; a finished stage
// only re-exports. The U-Net stage trains on the *exported* (fp16-rounded) VAE and text encoder,
// so it learns exactly the latents and contexts the shipped models produce.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Progress } from '../terminal/progress.js';
import { getNumThreads } from '../../src/engine/device.js';
import { CLIPTextModelWithProjection } from '../../src/models/clip/clip_text_model.js';
import { CLIPVisionModel } from '../../src/models/clip/clip_vision_model.js';
import { clipProcessorFor } from '../../src/p3s/references.js';
import { StableDiffusionPipeline } from '../../src/pipelines/stable_diffusion.js';
import { AutoencoderKL } from '../../src/models/vae/autoencoder_kl.js';
import { writeTokenizer } from '../../src/models/save_pretrained.js';
import { CLIPTokenizer } from '../../src/tokenizers/clip_tokenizer.js';
import { CLIP_STAGE_DEFAULTS, trainToyClip } from './clip_stage.js';
import {
  CLIP_TOKENIZER_LICENSE,
  exportToyClip,
  exportToyPipelineIndex,
  exportToyTextEncoder,
  exportToyUNet,
  exportToyVae,
} from './export.js';
import { PROBE_STAGE_DEFAULTS, trainProbe } from './probe.js';
import type { StageResult, StageSettings } from './stage.js';
import { evaluateToyModels, selectiveQuality, writeQuality, type ToyQuality } from './evaluate.js';
import { readQuality } from './quality_file.js';
import { runExperimentInChild, type ChildExperimentOptions } from './experiment_process.js';
import { EVALUATION_SUBJECTS, TOY_RECIPE } from './recipes.js';
import { TaskPool } from './task_pool.js';
import { writeModelCard } from './model_card.js';
import { UNET_STAGE_DEFAULTS, trainToyUNet } from './unet_stage.js';
import type { ToyNoiseSchedule } from './configs.js';
import type { Layout } from '../../src/toyworld/scene.js';
import {
  ADAPTER_STAGE_DEFAULTS,
  exportPretrainedAdapter,
  trainToyAdapter,
} from './adapter_stage.js';
import {
  DECODER_STAGE_DEFAULTS,
  VAE_STAGE_DEFAULTS,
  latentScalingFactor,
  trainToyVae,
  trainToyVaeDecoder,
} from './vae_stage.js';

export const TOY_STAGES = ['vae', 'decoder', 'clip', 'probe', 'unet', 'eval', 'adapter'] as const;
export type ToyStage = (typeof TOY_STAGES)[number];
/** What `npm run train:toy` runs unless told: the adapter stage is an experiment (docs/toy.md). */
export const DEFAULT_TOY_STAGES: readonly ToyStage[] = TOY_STAGES.filter((s) => s !== 'adapter');

export interface TrainToyOptions {
  /** The model folder to write (diffusers layout). */
  out: string;
  /** Checkpoints and loss logs. */
  work: string;
  seed: number;
  stages: readonly ToyStage[];
  /** A CLIP tokenizer folder (vocab.json, merges.txt); default: out/tokenizer. */
  tokenizer?: string;
  /** Multiplies every stage's step count (quick trial runs, tests). Default 1. */
  scale?: number;
  /** Overrides of the stages' step counts. */
  steps?: Partial<Record<ToyStage, number>>;
  /** Altered captions per image as extra CLIP negatives (default: the stage's, 0). */
  clipHardNegatives?: number;
  /** Extra weight of the decoder stage's error on object pixels (default: the stage's). */
  decoderObjectWeight?: number;
  /** The U-Net stage trains the text encoder along (default: the stage's, frozen). */
  unetTrainTextEncoder?: boolean;
  /** Its learning rate as a fraction of the U-Net's (default: the stage's). */
  unetTextEncoderLrScale?: number;
  /** γ of the U-Net stage's min-SNR loss weighting, 0 for none (default: the stage's). */
  unetMinSnrGamma?: number;
  /** The U-Net's noise schedule and prediction type (default: the stage's). */
  unetNoiseSchedule?: ToyNoiseSchedule;
  unetLayout?: Layout;
  unetTwoObjectShare?: number;
  /** Shares of objects whose colour (pattern) the U-Net's captions leave unsaid. */
  unetColourDropout?: number;
  unetPatternDropout?: number;
  progress?: boolean;
}

/** Settings training.json records besides steps and batch size (model_card.ts reads them). */
type RecordedSetting =
  | 'hardNegatives'
  | 'objectWeight'
  | 'trainTextEncoder'
  | 'textEncoderLrScale'
  | 'minSnrGamma'
  | 'layout'
  | 'twoObjectShare'
  | 'colourDropout'
  | 'patternDropout';

export interface StageReport extends StageResult {
  stage: ToyStage;
  steps: number;
  batchSize: number;
  threads: number;
  /** CLIP stage: altered captions per image used as negatives (absent in older reports: 0). */
  hardNegatives?: number;
  /** Decoder stage: extra weight on object pixels (absent in older reports: 0, plain L1). */
  objectWeight?: number;
  /** U-Net stage: 1 when the text encoder learned with it (absent in older reports: frozen). */
  trainTextEncoder?: number;
  /** U-Net stage, text encoder trained along: its learning rate over the U-Net's. */
  textEncoderLrScale?: number;
  /** U-Net stage: γ of the min-SNR loss weighting (absent in older reports: 0, unweighted). */
  minSnrGamma?: number;
  /** U-Net stage: its scenes' layout (absent in older reports: free). */
  layout?: Layout;
  /** U-Net stage: share of two-object scenes (absent in older reports: 0.4). */
  twoObjectShare?: number;
  /** U-Net stage: shares of objects whose colour (pattern) went unsaid (absent: 0). */
  colourDropout?: number;
  patternDropout?: number;
}

/** What every stage runs with: the run's options, its folders and the shared tokenizer. */
interface StageContext {
  options: TrainToyOptions;
  /** The model folder. */
  out: string;
  /** Checkpoints and loss logs, a folder per stage. */
  work: string;
  tokenizer: CLIPTokenizer;
  tokenizerFolder: string;
}

/** What a training stage ran with and what it measured. */
interface TrainedRun {
  settings: { steps: number; batchSize: number } & Partial<
    Record<RecordedSetting, number | string>
  >;
  result: StageResult;
}

/** One row of the stage table. */
interface ToyStageEntry {
  /** Folders of the model folder it reads (by their config.json), written by earlier stages. */
  needs: readonly string[];
  /** What it writes into the model folder (besides training.json and README.md). */
  writes: readonly string[];
  /** Its settings that training.json records besides steps and batch size. */
  records: readonly RecordedSetting[];
  /**
   * Trains the stage, resuming from its checkpoints in work/<stage>, and writes its models into
   * the model folder; null for a stage that trains nothing.
   */
  run(ctx: StageContext): Promise<TrainedRun | null>;
}

/**
 * A stage's settings: its defaults at the run's step count (exact, or scaled), with the run's
 * overrides, seed, progress and the stage's folder.
 */
function stageSettings<D extends { steps: number }>(
  ctx: StageContext,
  stage: ToyStage,
  defaults: D,
  overrides: Partial<D> = {},
): D & Omit<StageSettings, 'steps' | 'batchSize' | 'lr'> {
  const { options } = ctx;
  const scaled = Math.max(2, Math.round(defaults.steps * (options.scale ?? 1)));
  const given = Object.entries(overrides).filter(([, v]) => v !== undefined);
  return {
    ...defaults,
    steps: options.steps?.[stage] ?? scaled,
    ...(Object.fromEntries(given) as Partial<D>),
    seed: options.seed,
    progress: options.progress,
    dir: join(ctx.work, stage),
  };
}

async function vaeStage(ctx: StageContext): Promise<TrainedRun> {
  const settings = stageSettings(ctx, 'vae', VAE_STAGE_DEFAULTS);
  const { vae, result } = await trainToyVae(settings);
  try {
    exportToyVae(vae, ctx.out, latentScalingFactor(vae));
  } finally {
    vae.dispose();
  }
  return { settings, result };
}

async function decoderStage(ctx: StageContext): Promise<TrainedRun> {
  // Starts from the VAE stage's weights exactly as exported (fp16), whatever ran before.
  await vaeStage(ctx);
  const settings = stageSettings(ctx, 'decoder', DECODER_STAGE_DEFAULTS, {
    objectWeight: ctx.options.decoderObjectWeight,
  });
  const vae = AutoencoderKL.fromPretrained(join(ctx.out, 'vae'));
  try {
    const { result } = await trainToyVaeDecoder(settings, vae);
    exportToyVae(vae, ctx.out, vae.config.scaling_factor);
    return { settings, result };
  } finally {
    vae.dispose();
  }
}

async function clipStage(ctx: StageContext): Promise<TrainedRun> {
  const settings = stageSettings(ctx, 'clip', CLIP_STAGE_DEFAULTS, {
    hardNegatives: ctx.options.clipHardNegatives,
  });
  const { clip, result } = await trainToyClip(settings, ctx.tokenizer);
  try {
    exportToyClip(clip.text, clip.vision, ctx.out, ctx.tokenizerFolder);
  } finally {
    clip.dispose();
  }
  return { settings, result };
}

async function probeStage(ctx: StageContext): Promise<TrainedRun> {
  const settings = stageSettings(ctx, 'probe', PROBE_STAGE_DEFAULTS);
  const { probe, result } = await trainProbe(settings);
  try {
    probe.save(join(ctx.out, 'probe'));
  } finally {
    probe.dispose();
  }
  return { settings, result };
}

async function unetStage(ctx: StageContext): Promise<TrainedRun> {
  const settings = stageSettings(ctx, 'unet', UNET_STAGE_DEFAULTS, {
    trainTextEncoder: ctx.options.unetTrainTextEncoder,
    textEncoderLrScale: ctx.options.unetTextEncoderLrScale,
    minSnrGamma: ctx.options.unetMinSnrGamma,
    noiseSchedule: ctx.options.unetNoiseSchedule,
    layout: ctx.options.unetLayout,
    twoObjectShare: ctx.options.unetTwoObjectShare,
    colourDropout: ctx.options.unetColourDropout,
    patternDropout: ctx.options.unetPatternDropout,
  });
  const vae = AutoencoderKL.fromPretrained(join(ctx.out, 'vae'));
  const textEncoder = CLIPTextModelWithProjection.fromPretrained(join(ctx.out, 'text_encoder'));
  try {
    const { unet, result } = await trainToyUNet(settings, {
      vae,
      textEncoder,
      tokenizer: ctx.tokenizer,
    });
    try {
      exportToyUNet(unet, ctx.out);
      if (settings.trainTextEncoder) exportToyTextEncoder(textEncoder, ctx.out);
      exportToyPipelineIndex(ctx.out, settings.noiseSchedule);
    } finally {
      unet.dispose();
    }
    return {
      settings: {
        ...settings,
        trainTextEncoder: Number(settings.trainTextEncoder),
        ...(settings.trainTextEncoder ? { textEncoderLrScale: settings.textEncoderLrScale } : {}),
      },
      result,
    };
  } finally {
    vae.dispose();
    textEncoder.dispose();
  }
}

async function adapterStage(ctx: StageContext): Promise<TrainedRun> {
  const settings = stageSettings(ctx, 'adapter', ADAPTER_STAGE_DEFAULTS);
  const { out } = ctx;
  const pipeline = StableDiffusionPipeline.fromPretrained(out, { scheduler: 'ddpm' });
  const clip = CLIPVisionModel.fromPretrained(join(out, 'image_encoder'));
  try {
    const frozen = {
      unet: pipeline.unet,
      vae: pipeline.vae,
      textEncoder: pipeline.textEncoder,
      tokenizer: ctx.tokenizer,
      clip,
      processor: clipProcessorFor(join(out, 'image_encoder'), clip),
    };
    const { adapter, result } = await trainToyAdapter(settings, frozen);
    try {
      exportPretrainedAdapter(adapter, out, frozen, settings);
    } finally {
      adapter.dispose();
    }
    return { settings, result };
  } finally {
    pipeline.dispose();
    clip.dispose();
  }
}

/** The selective-fidelity experiments of both adapters, in one-thread child processes. */
async function selectiveRuns(ctx: StageContext, quality: ToyQuality): Promise<void> {
  const { out, work } = ctx;
  // The evaluation subjects, never the ones the recipe was tuned on.
  const common = {
    subjects: EVALUATION_SUBJECTS,
    maskLayer: quality.maskLayer,
    maskDense: quality.maskDense,
  };
  // As many runs at once as this stage has threads (at this size one thread runs an op about as
  // fast as two).
  const pool = new TaskPool(getNumThreads());
  const total = 2 * 2 * EVALUATION_SUBJECTS.length; // two adapters, with and without the click
  let done = 0;
  const bar = ctx.options.progress === false ? null : new Progress('eval: P3S runs', total);
  bar?.update(0);
  const runs = {
    ...common,
    run: (o: ChildExperimentOptions) =>
      pool.run((signal) => runExperimentInChild(o, { threads: 1, signal })),
    onRunDone: () => bar?.update(++done),
  };
  try {
    [quality.selective, quality.selectiveRecipe] = await Promise.all([
      selectiveQuality(out, join(work, 'selective'), runs),
      selectiveQuality(out, join(work, 'selective-recipe'), { ...runs, recipe: TOY_RECIPE }),
    ]);
  } catch (err) {
    pool.abort();
    throw err;
  }
}

async function evalStage(ctx: StageContext): Promise<null> {
  let measuring: Progress | undefined;
  const quality = await evaluateToyModels(ctx.out, {
    onPartDone: (done, total, part) => {
      if (ctx.options.progress === false) return;
      measuring ??= new Progress('eval: quality', total);
      measuring.update(done, part);
    },
  });
  await selectiveRuns(ctx, quality);
  writeQuality(ctx.out, quality);
  return null;
}

/** The stages, run in TOY_STAGES's order. */
const TOY_STAGE_TABLE: Readonly<Record<ToyStage, ToyStageEntry>> = {
  vae: { needs: [], writes: ['vae'], records: [], run: vaeStage },
  // trains the vae stage first where it has not run (its checkpoints, not the model folder)
  decoder: { needs: [], writes: ['vae'], records: ['objectWeight'], run: decoderStage },
  clip: {
    needs: [],
    writes: ['text_encoder', 'image_encoder', 'tokenizer', 'feature_extractor'],
    records: ['hardNegatives'],
    run: clipStage,
  },
  probe: { needs: [], writes: ['probe'], records: [], run: probeStage },
  unet: {
    needs: ['vae', 'text_encoder'],
    // text_encoder: only when it learns with the U-Net
    writes: ['unet', 'scheduler', 'model_index.json'],
    records: [
      'trainTextEncoder',
      'textEncoderLrScale',
      'minSnrGamma',
      'layout',
      'twoObjectShare',
      'colourDropout',
      'patternDropout',
    ],
    run: unetStage,
  },
  eval: {
    needs: ['vae', 'text_encoder', 'image_encoder', 'unet', 'probe'],
    writes: ['quality.json'],
    records: [],
    run: evalStage,
  },
  adapter: {
    needs: ['vae', 'text_encoder', 'image_encoder', 'unet'],
    writes: ['p3s_adapter'],
    records: [],
    run: adapterStage,
  },
};

/** "a", "a and b", "a, b and c". */
function listOf(items: readonly string[]): string {
  return items.length < 2 ? items.join('') : `${items.slice(0, -1).join(', ')} and ${items.at(-1)}`;
}

/**
 * For each stage, the earlier ones (in TOY_STAGES's order) it must wait for when stages run side by
 * side: those that write a part it reads or writes.
 */
export function stageDependencies(stages: readonly ToyStage[]): Map<ToyStage, ToyStage[]> {
  const ordered = TOY_STAGES.filter((s) => stages.includes(s));
  return new Map(
    ordered.map((stage, i) => {
      const { needs, writes } = TOY_STAGE_TABLE[stage];
      const touches = new Set([...needs, ...writes]);
      const before = ordered
        .slice(0, i)
        .filter((s) => TOY_STAGE_TABLE[s].writes.some((part) => touches.has(part)));
      return [stage, before];
    }),
  );
}

/**
 * Fails, before anything runs, where a stage needs a part that neither exists nor is made, or
 * where the clip stage would replace the text encoder a U-Net in the folder learnt along with.
 */
export function checkNeeds(stages: readonly ToyStage[], out: string): void {
  checkTextEncoderKept(stages, out);
  stages.forEach((stage, i) => {
    const made = new Set(stages.slice(0, i).flatMap((s) => TOY_STAGE_TABLE[s].writes));
    const missing = TOY_STAGE_TABLE[stage].needs.filter(
      (part) => !made.has(part) && !existsSync(join(out, part, 'config.json')),
    );
    if (missing.length === 0) return;
    const writers = new Set(
      missing.map((part) => TOY_STAGES.find((s) => TOY_STAGE_TABLE[s].writes.includes(part))!),
    );
    throw new Error(
      `The ${stage} stage needs ${listOf(missing.map((p) => join(out, p)))}: ` +
        `run the ${listOf([...writers])} stage${writers.size > 1 ? 's' : ''} first`,
    );
  });
}

/**
 * The clip stage writes text_encoder/. A U-Net trained with its text encoder learning along reads
 * that one, not the clip stage's, so the clip stage alone would leave the U-Net reading a text
 * encoder it was never trained with.
 */
function checkTextEncoderKept(stages: readonly ToyStage[], out: string): void {
  if (!stages.includes('clip') || stages.includes('unet')) return;
  if (!readTrainingReport(out).unet?.trainTextEncoder) return;
  if (!existsSync(join(out, 'unet', 'config.json'))) return;
  throw new Error(
    `The clip stage would replace ${join(out, 'text_encoder')}, which ${join(out, 'unet')} was ` +
      'trained with (its text encoder learnt along with the U-Net): run the unet stage after it ' +
      '(--stages clip,unet), or give another --out',
  );
}

/** training.json: what each stage ran, kept across runs. */
export function readTrainingReport(out: string): Partial<Record<ToyStage, StageReport>> {
  const path = join(out, 'training.json');
  return existsSync(path)
    ? (JSON.parse(readFileSync(path, 'utf8')) as Partial<Record<ToyStage, StageReport>>)
    : {};
}

/** Adds a stage's report to training.json; returns it. */
function recordStage(out: string, stage: ToyStage, run: TrainedRun): StageReport {
  const { settings, result } = run;
  const recorded = Object.fromEntries(
    TOY_STAGE_TABLE[stage].records.map((k) => [k, settings[k]]),
  ) as Partial<Pick<StageReport, RecordedSetting>>;
  const report: StageReport = {
    stage,
    steps: settings.steps,
    batchSize: settings.batchSize,
    threads: getNumThreads(),
    ...recorded,
    ...result,
  };
  const all = { ...readTrainingReport(out), [stage]: report };
  writeFileSync(join(out, 'training.json'), `${JSON.stringify(all, null, 2)}\n`);
  return report;
}

/** The run's context: the model folder with CLIP's tokenizer (and its licence) in it. */
function prepare(options: TrainToyOptions): StageContext {
  const out = resolve(options.out);
  mkdirSync(out, { recursive: true });
  const tokenizerFolder = join(out, 'tokenizer');
  const source = options.tokenizer ? resolve(options.tokenizer) : tokenizerFolder;
  if (!existsSync(join(source, 'vocab.json'))) {
    throw new Error(
      `No CLIP tokenizer at ${source} (vocab.json, merges.txt); pass --tokenizer <folder>`,
    );
  }
  if (source !== tokenizerFolder) writeTokenizer(tokenizerFolder, source);
  writeFileSync(join(tokenizerFolder, 'LICENSE'), CLIP_TOKENIZER_LICENSE);
  const tokenizer = CLIPTokenizer.fromPretrained(tokenizerFolder);
  return { options, out, work: resolve(options.work), tokenizer, tokenizerFolder };
}

export async function trainToyModels(options: TrainToyOptions): Promise<StageReport[]> {
  const ctx = prepare(options);
  const stages = TOY_STAGES.filter((s) => options.stages.includes(s));
  checkNeeds(stages, ctx.out);
  const reports: StageReport[] = [];
  for (const stage of stages) {
    const run = await TOY_STAGE_TABLE[stage].run(ctx);
    if (run) reports.push(recordStage(ctx.out, stage, run));
  }
  const quality = readQuality(ctx.out) as ToyQuality | null;
  writeModelCard(ctx.out, readTrainingReport(ctx.out), quality);
  return reports;
}
