// `npm run train:toy`: trains the embedded default's models from scratch on the toy world, stage
// by stage — VAE, its decoder, CLIP, attribute probe, U-Net, then the quality evaluation, and on
// request a P3S adapter pretrained on many subjects — and writes them as a diffusers folder with
// fp16 weights. Each stage checkpoints to `work/<stage>/` and resumes where a killed run stopped;
// a finished stage only re-exports. The U-Net stage trains on the *exported* (fp16-rounded) VAE
// and text encoder, so it learns exactly the latents and contexts the shipped models produce.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Progress } from '../terminal/progress.js';
import { getNumThreads } from '../../src/engine/device.js';
import { CLIPTextModelWithProjection } from '../../src/models/clip/clip_text_model.js';
import { CLIPVisionModel } from '../../src/models/clip/clip_vision_model.js';
import { clipProcessorFor } from '../../src/p3s/references.js';
import { StableDiffusionPipeline } from '../../src/pipelines/stable_diffusion.js';
import { AutoencoderKL } from '../../src/models/vae/autoencoder_kl.js';
import { writeTokenizer } from '../testing/tiny_models.js';
import { CLIPTokenizer } from '../../src/tokenizers/clip_tokenizer.js';
import { CLIP_STAGE_DEFAULTS, trainToyClip } from './clip_stage.js';
import {
  CLIP_TOKENIZER_LICENSE,
  exportToyClip,
  exportToyPipelineIndex,
  exportToyUNet,
  exportToyVae,
} from './export.js';
import { PROBE_STAGE_DEFAULTS, trainProbe } from './probe.js';
import type { StageResult } from './stage.js';
import { evaluateToyModels, selectiveQuality, writeQuality, type ToyQuality } from './evaluate.js';
import { runExperimentInChild, type ChildExperimentOptions } from './experiment_process.js';
import { TOY_RECIPE } from './recipes.js';
import { TaskPool } from './task_pool.js';
import { writeModelCard } from './model_card.js';
import { UNET_STAGE_DEFAULTS, trainToyUNet } from './unet_stage.js';
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

/** Subjects of the eval stage's selective-fidelity experiments. */
const SELECTIVE_SUBJECTS = 6;

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
  /** Altered captions per image as extra CLIP negatives (default 0: the shipped recipe). */
  clipHardNegatives?: number;
  /** Extra weight of the decoder stage's error on object pixels (default: the stage's). */
  decoderObjectWeight?: number;
  progress?: boolean;
}

export interface StageReport extends StageResult {
  stage: ToyStage;
  steps: number;
  batchSize: number;
  threads: number;
  /** CLIP stage: altered captions per image used as negatives (absent: none). */
  hardNegatives?: number;
  /** Decoder stage: extra weight on object pixels (absent: plain L1, the stage's first recipe). */
  objectWeight?: number;
}

/** training.json: what each stage ran, kept across runs. */
export function readTrainingReport(out: string): Partial<Record<ToyStage, StageReport>> {
  const path = join(out, 'training.json');
  return existsSync(path)
    ? (JSON.parse(readFileSync(path, 'utf8')) as Partial<Record<ToyStage, StageReport>>)
    : {};
}

export async function trainToyModels(options: TrainToyOptions): Promise<StageReport[]> {
  const out = resolve(options.out);
  const work = resolve(options.work);
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
  const scale = options.scale ?? 1;
  const stepsOf = (stage: ToyStage, fallback: number) =>
    options.steps?.[stage] ?? Math.max(2, Math.round(fallback * scale));
  const common = { seed: options.seed, progress: options.progress };
  const reports: StageReport[] = [];
  const record = (
    stage: ToyStage,
    steps: number,
    batchSize: number,
    result: StageResult,
    extra: Partial<StageReport> = {},
  ) => {
    const report = { stage, steps, batchSize, threads: getNumThreads(), ...extra, ...result };
    reports.push(report);
    const all = { ...readTrainingReport(out), [stage]: report };
    writeFileSync(join(out, 'training.json'), `${JSON.stringify(all, null, 2)}\n`);
  };

  for (const stage of TOY_STAGES.filter((s) => options.stages.includes(s))) {
    const dir = join(work, stage);
    const vaeSettings = {
      ...VAE_STAGE_DEFAULTS,
      steps: stepsOf('vae', VAE_STAGE_DEFAULTS.steps),
    };
    if (stage === 'vae') {
      const { vae, result } = await trainToyVae({ ...vaeSettings, ...common, dir });
      try {
        exportToyVae(vae, out, latentScalingFactor(vae));
      } finally {
        vae.dispose();
      }
      record(stage, vaeSettings.steps, vaeSettings.batchSize, result);
    } else if (stage === 'decoder') {
      // Starts from the VAE stage's weights exactly as exported (fp16), whatever ran before.
      const { vae: base } = await trainToyVae({
        ...vaeSettings,
        ...common,
        dir: join(work, 'vae'),
      });
      try {
        exportToyVae(base, out, latentScalingFactor(base));
      } finally {
        base.dispose();
      }
      const settings = {
        ...DECODER_STAGE_DEFAULTS,
        steps: stepsOf('decoder', DECODER_STAGE_DEFAULTS.steps),
        objectWeight: options.decoderObjectWeight ?? DECODER_STAGE_DEFAULTS.objectWeight,
      };
      const vae = AutoencoderKL.fromPretrained(join(out, 'vae'));
      try {
        const { result } = await trainToyVaeDecoder({ ...settings, ...common, dir }, vae);
        exportToyVae(vae, out, vae.config.scaling_factor);
        const { objectWeight } = settings;
        record(
          stage,
          settings.steps,
          settings.batchSize,
          result,
          objectWeight ? { objectWeight } : {},
        );
      } finally {
        vae.dispose();
      }
    } else if (stage === 'clip') {
      const settings = {
        ...CLIP_STAGE_DEFAULTS,
        steps: stepsOf('clip', CLIP_STAGE_DEFAULTS.steps),
        hardNegatives: options.clipHardNegatives ?? CLIP_STAGE_DEFAULTS.hardNegatives,
      };
      const { clip, result } = await trainToyClip({ ...settings, ...common, dir }, tokenizer);
      try {
        exportToyClip(clip.text, clip.vision, out, tokenizerFolder);
      } finally {
        clip.dispose();
      }
      const { hardNegatives } = settings;
      record(
        stage,
        settings.steps,
        settings.batchSize,
        result,
        hardNegatives ? { hardNegatives } : {},
      );
    } else if (stage === 'probe') {
      const settings = {
        ...PROBE_STAGE_DEFAULTS,
        steps: stepsOf('probe', PROBE_STAGE_DEFAULTS.steps),
      };
      const { probe, result } = await trainProbe({ ...settings, ...common, dir });
      try {
        probe.save(join(out, 'probe'));
      } finally {
        probe.dispose();
      }
      record(stage, settings.steps, settings.batchSize, result);
    } else if (stage === 'adapter') {
      if (!existsSync(join(out, 'unet', 'config.json')) || !existsSync(join(out, 'image_encoder')))
        throw new Error(`The adapter stage needs ${out}'s unet and image_encoder: run them first`);
      const settings = {
        ...ADAPTER_STAGE_DEFAULTS,
        steps: stepsOf('adapter', ADAPTER_STAGE_DEFAULTS.steps),
      };
      const pipeline = StableDiffusionPipeline.fromPretrained(out, { scheduler: 'ddpm' });
      const clip = CLIPVisionModel.fromPretrained(join(out, 'image_encoder'));
      try {
        const frozen = {
          unet: pipeline.unet,
          vae: pipeline.vae,
          textEncoder: pipeline.textEncoder,
          tokenizer,
          clip,
          processor: clipProcessorFor(join(out, 'image_encoder'), clip),
        };
        const stageOptions = { ...settings, ...common, dir };
        const { adapter, result } = await trainToyAdapter(stageOptions, frozen);
        try {
          exportPretrainedAdapter(adapter, out, frozen, stageOptions);
        } finally {
          adapter.dispose();
        }
        record(stage, settings.steps, settings.batchSize, result);
      } finally {
        pipeline.dispose();
        clip.dispose();
      }
    } else if (stage === 'eval') {
      let measuring: Progress | undefined;
      const quality = await evaluateToyModels(out, {
        onPartDone: (done, total, part) => {
          if (options.progress === false) return;
          measuring ??= new Progress('eval: quality', total);
          measuring.update(done, part);
        },
      });
      // Six subjects: the recipe was chosen on subjects 0 and 2, so fewer would flatter it.
      const selectiveOptions = {
        subjects: SELECTIVE_SUBJECTS,
        maskLayer: quality.maskLayer,
        maskDense: quality.maskDense,
      };
      // The 24 runs go to one-thread child processes, as many at once as this stage has threads
      // (at this size one thread runs an op about as fast as two).
      const pool = new TaskPool(getNumThreads());
      const total = 2 * 2 * SELECTIVE_SUBJECTS; // two adapters, with and without the negative click
      let done = 0;
      const bar = options.progress === false ? null : new Progress('eval: P3S runs', total);
      bar?.update(0);
      const runOptions = {
        run: (o: ChildExperimentOptions) =>
          pool.run((signal) => runExperimentInChild(o, { threads: 1, signal })),
        onRunDone: () => bar?.update(++done),
      };
      try {
        [quality.selective, quality.selectiveRecipe] = await Promise.all([
          selectiveQuality(out, join(work, 'selective'), { ...selectiveOptions, ...runOptions }),
          selectiveQuality(out, join(work, 'selective-recipe'), {
            ...selectiveOptions,
            ...runOptions,
            recipe: TOY_RECIPE,
          }),
        ]);
      } catch (err) {
        pool.abort();
        throw err;
      }
      writeQuality(out, quality);
    } else {
      for (const part of ['vae', 'text_encoder']) {
        if (!existsSync(join(out, part, 'config.json'))) {
          throw new Error(
            `The unet stage needs ${join(out, part)}: run the vae and clip stages first`,
          );
        }
      }
      const settings = {
        ...UNET_STAGE_DEFAULTS,
        steps: stepsOf('unet', UNET_STAGE_DEFAULTS.steps),
      };
      const vae = AutoencoderKL.fromPretrained(join(out, 'vae'));
      const textEncoder = CLIPTextModelWithProjection.fromPretrained(join(out, 'text_encoder'));
      try {
        const { unet, result } = await trainToyUNet(
          { ...settings, ...common, dir },
          { vae, textEncoder, tokenizer },
        );
        try {
          exportToyUNet(unet, out);
          exportToyPipelineIndex(out);
        } finally {
          unet.dispose();
        }
        record(stage, settings.steps, settings.batchSize, result);
      } finally {
        vae.dispose();
        textEncoder.dispose();
      }
    }
  }
  writeModelCard(
    out,
    readTrainingReport(out),
    existsSync(join(out, 'quality.json'))
      ? (JSON.parse(readFileSync(join(out, 'quality.json'), 'utf8')) as ToyQuality)
      : null,
  );
  return reports;
}
