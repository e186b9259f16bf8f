// npm run train:toy [-- options]: reproduces the embedded default's models (see
// apps/toymodels/train_toy.ts and models/toy/README.md).
import { UsageError, intFlag, numberFlag, parse } from '../cli/args.js';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import {
  DEFAULT_TOY_STAGES,
  TOY_STAGES,
  checkNeeds,
  readTrainingReport,
  stageDependencies,
  trainToyModels,
  type StageReport,
  type ToyStage,
} from './train_toy.js';
import { runSideBySide } from './side_by_side.js';
import { DECODER_STAGE_DEFAULTS } from './vae_stage.js';
import { UNET_STAGE_DEFAULTS } from './unet_stage.js';
import { TOY_NOISE_SCHEDULES, type ToyNoiseSchedule } from './configs.js';
import { LAYOUTS, type Layout } from '../../src/toyworld/scene.js';

const HELP = `npm run train:toy -- [options]

Trains the toy world's VAE, CLIP, attribute probe and U-Net from scratch and writes them, fp16,
as a diffusers Stable Diffusion folder. Deterministic for a seed and thread count on CPU; a
killed run resumes from its newest checkpoint when started again with the same options.

Options:
  --out <dir>         model folder to write (default models/toy)
  --work <dir>        checkpoints and loss logs (default .toy-train)
  --stages <list>     comma-separated subset of ${TOY_STAGES.join(',')}
                      (default: ${DEFAULT_TOY_STAGES.join(',')}; adapter, a P3S adapter
                      pretrained on many subjects, is an experiment: docs/toy.md)
  --tokenizer <dir>   CLIP tokenizer folder (vocab.json, merges.txt); default <out>/tokenizer
  --seed <n>          default 0
  --scale <x>         multiply every stage's step count (e.g. 0.01 for a smoke run)
  --vae-steps, --decoder-steps, --clip-steps, --probe-steps, --unet-steps,
  --adapter-steps <n> exact step counts
  --clip-hard-negatives <k>   captions per image that change one attribute, added as CLIP
                      negatives (default 0, the shipped CLIP's recipe; docs/toy.md)
  --decoder-object-weight <w>  extra weight of the decoder stage's error on object pixels
                      (default ${DECODER_STAGE_DEFAULTS.objectWeight}, the shipped decoder's plain L1; 4 sharpens round
                      trips of real scenes but not generated images: docs/toy.md)
  --unet-train-text-encoder, --unet-frozen-text-encoder  whether the text encoder learns with
                      the U-Net (starting from the CLIP stage's; the model folder's
                      text_encoder/ becomes the trained one) or stays the CLIP stage's
                      (default: ${UNET_STAGE_DEFAULTS.trainTextEncoder ? 'trained' : 'frozen'})
  --unet-text-encoder-lr-scale <x>  its learning rate as a fraction of the U-Net's
                      (default ${UNET_STAGE_DEFAULTS.textEncoderLrScale})
  --unet-min-snr-gamma <γ>  weight the U-Net's loss by min(SNR, γ)/SNR (Hang et al. 2023);
                      0 weighs every timestep the same (default ${UNET_STAGE_DEFAULTS.minSnrGamma})
  --unet-noise-schedule <s>  sd15: SD 1.5's schedule and ε-prediction; zero-snr-v: zero
                      terminal SNR, v-prediction, trailing timesteps (DDIMScheduler), so that
                      pure noise holds no outline for the U-Net to follow (docs/toy.md)
                      (default ${UNET_STAGE_DEFAULTS.noiseSchedule})
  --unet-layout <l>   where the U-Net's training scenes put their objects: slots (one object
                      centred, two side by side, upright, one size per count) or free (anywhere,
                      any size and tilt, as the other stages see them) (default ${UNET_STAGE_DEFAULTS.layout})
  --unet-two-objects <x>  share of the U-Net's training scenes with two objects, in tenths
                      (default ${UNET_STAGE_DEFAULTS.twoObjectShare}; the rest show one)
  --unet-colour-dropout <x>, --unet-pattern-dropout <x>  share of objects whose colour
                      (pattern) the U-Net's captions leave unsaid, so that "a sks star" draws one
                      star of some colour, not the mean of all (defaults ${UNET_STAGE_DEFAULTS.colourDropout}, ${UNET_STAGE_DEFAULTS.patternDropout})
  --sequential        run the stages one after another in this process, on all threads
                      (by default, with 2 or more cores, stages that do not depend on each
                      other run side by side in child processes, one thread each)
Threads: P3S_NUM_THREADS (default: all cores).`;

/** --unet-train-text-encoder or --unet-frozen-text-encoder (not both); undefined: the default. */
function textEncoderFlag(values: Record<string, unknown>): boolean | undefined {
  const train = values['unet-train-text-encoder'] === true;
  const frozen = values['unet-frozen-text-encoder'] === true;
  if (train && frozen)
    throw new UsageError('Give --unet-train-text-encoder or --unet-frozen-text-encoder, not both');
  return train ? true : frozen ? false : undefined;
}

/** A flag whose value is a share from 0 to 1. */
function shareFlag(values: Record<string, unknown>, flag: string, fallback: number): number {
  return numberFlag(values, flag, fallback, (v) => v >= 0 && v <= 1, 'a share from 0 to 1');
}

/** A flag whose value is one of a few names. */
function choiceFlag<T extends string>(
  given: unknown,
  flag: string,
  names: readonly string[],
  fallback: T,
): T {
  if (given === undefined) return fallback;
  if (typeof given !== 'string' || !names.includes(given))
    throw new UsageError(
      `Expected one of ${names.join(', ')} for --${flag} but received ${String(given)}`,
    );
  return given as T;
}

async function main(): Promise<void> {
  const { values } = parse(process.argv.slice(2), {
    out: { type: 'string' },
    work: { type: 'string' },
    stages: { type: 'string' },
    tokenizer: { type: 'string' },
    seed: { type: 'string' },
    scale: { type: 'string' },
    'vae-steps': { type: 'string' },
    'decoder-steps': { type: 'string' },
    'clip-steps': { type: 'string' },
    'probe-steps': { type: 'string' },
    'unet-steps': { type: 'string' },
    'adapter-steps': { type: 'string' },
    'clip-hard-negatives': { type: 'string' },
    'decoder-object-weight': { type: 'string' },
    'unet-train-text-encoder': { type: 'boolean' },
    'unet-frozen-text-encoder': { type: 'boolean' },
    'unet-text-encoder-lr-scale': { type: 'string' },
    'unet-min-snr-gamma': { type: 'string' },
    'unet-noise-schedule': { type: 'string' },
    'unet-layout': { type: 'string' },
    'unet-two-objects': { type: 'string' },
    'unet-colour-dropout': { type: 'string' },
    'unet-pattern-dropout': { type: 'string' },
    sequential: { type: 'boolean' },
  });
  if (values.help) {
    console.log(HELP);
    return;
  }
  const stages = String(values.stages ?? DEFAULT_TOY_STAGES.join(','))
    .split(',')
    .map((s) => s.trim());
  for (const s of stages) {
    if (!(TOY_STAGES as readonly string[]).includes(s)) {
      throw new UsageError(`Unknown stage ${JSON.stringify(s)}; stages: ${TOY_STAGES.join(', ')}`);
    }
  }
  const steps: Partial<Record<ToyStage, number>> = {};
  for (const s of TOY_STAGES) {
    if (values[`${s}-steps`] !== undefined) steps[s] = intFlag(values, `${s}-steps`, 0, 1);
  }
  const out = String(values.out ?? 'models/toy');
  const cores = Number(process.env.P3S_NUM_THREADS) || availableParallelism();
  if (values.sequential !== true && stages.length > 1 && cores > 1) {
    checkNeeds(stages as ToyStage[], resolve(out));
    await runSideBySide({
      script: fileURLToPath(import.meta.url),
      args: [...withoutStages(process.argv.slice(2)), '--sequential'],
      dependencies: stageDependencies(stages as ToyStage[]),
      workers: cores,
      threadsAlone: cores,
    });
    const recorded = readTrainingReport(resolve(out));
    summarise(stages.flatMap((s) => recorded[s as ToyStage] ?? []));
    return;
  }
  const reports = await trainToyModels({
    out,
    work: String(values.work ?? '.toy-train'),
    seed: intFlag(values, 'seed', 0),
    stages: stages as ToyStage[],
    tokenizer: values.tokenizer as string | undefined,
    scale: numberFlag(values, 'scale', 1, (v) => v > 0, 'a positive number'),
    steps,
    clipHardNegatives: intFlag(values, 'clip-hard-negatives', 0, 0),
    decoderObjectWeight: numberFlag(
      values,
      'decoder-object-weight',
      DECODER_STAGE_DEFAULTS.objectWeight,
      (v) => Number.isFinite(v) && v >= 0,
      'a number ≥ 0',
    ),
    unetTrainTextEncoder: textEncoderFlag(values),
    unetTextEncoderLrScale: numberFlag(
      values,
      'unet-text-encoder-lr-scale',
      UNET_STAGE_DEFAULTS.textEncoderLrScale,
      (v) => Number.isFinite(v) && v > 0,
      'a positive number',
    ),
    unetMinSnrGamma: numberFlag(
      values,
      'unet-min-snr-gamma',
      UNET_STAGE_DEFAULTS.minSnrGamma,
      (v) => Number.isFinite(v) && v >= 0,
      'a number ≥ 0',
    ),
    unetNoiseSchedule: choiceFlag<ToyNoiseSchedule>(
      values['unet-noise-schedule'],
      'unet-noise-schedule',
      Object.keys(TOY_NOISE_SCHEDULES),
      UNET_STAGE_DEFAULTS.noiseSchedule,
    ),
    unetLayout: choiceFlag<Layout>(
      values['unet-layout'],
      'unet-layout',
      LAYOUTS,
      UNET_STAGE_DEFAULTS.layout,
    ),
    unetTwoObjectShare: numberFlag(
      values,
      'unet-two-objects',
      UNET_STAGE_DEFAULTS.twoObjectShare,
      (v) => v >= 0 && v <= 1 && Math.abs(v * 10 - Math.round(v * 10)) < 1e-9,
      'a share in tenths, 0 to 1',
    ),
    unetColourDropout: shareFlag(values, 'unet-colour-dropout', UNET_STAGE_DEFAULTS.colourDropout),
    unetPatternDropout: shareFlag(
      values,
      'unet-pattern-dropout',
      UNET_STAGE_DEFAULTS.patternDropout,
    ),
  });
  summarise(reports);
}

function summarise(reports: readonly StageReport[]): void {
  for (const r of reports) {
    console.log(
      `${r.stage}: ${r.steps} steps × ${r.batchSize}, loss ${r.finalLoss.toFixed(4)}, ` +
        `${(r.totalSeconds / 60).toFixed(1)} min on ${r.threads} thread${r.threads === 1 ? '' : 's'}`,
    );
  }
}

/** The command line without its --stages option (each child gets its own). */
function withoutStages(args: readonly string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--stages') i++;
    else if (!args[i]!.startsWith('--stages=')) kept.push(args[i]!);
  }
  return kept;
}

main().catch((err: unknown) => {
  console.error(err instanceof UsageError ? `${err.message}\n\n${HELP}` : err);
  process.exitCode = err instanceof UsageError ? 2 : 1;
});
