// npm run train:toy [-- options]: reproduces the embedded default's models (see
// apps/toymodels/train_toy.ts and models/toy/README.md).
import { UsageError, intFlag, numberFlag, parse } from '../cli/args.js';
import { DEFAULT_TOY_STAGES, TOY_STAGES, trainToyModels, type ToyStage } from './train_toy.js';
import { DECODER_STAGE_DEFAULTS } from './vae_stage.js';

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
  --unet-train-text-encoder  the text encoder learns with the U-Net (starting from the CLIP
                      stage's); the model folder's text_encoder/ becomes the trained one
Threads: P3S_NUM_THREADS (default: all cores).`;

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
  const reports = await trainToyModels({
    out: String(values.out ?? 'models/toy'),
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
    unetTrainTextEncoder: values['unet-train-text-encoder'] === true,
  });
  for (const r of reports) {
    console.log(
      `${r.stage}: ${r.steps} steps × ${r.batchSize}, loss ${r.finalLoss.toFixed(4)}, ` +
        `${(r.totalSeconds / 60).toFixed(1)} min on ${r.threads} thread${r.threads === 1 ? '' : 's'}`,
    );
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof UsageError ? `${err.message}\n\n${HELP}` : err);
  process.exitCode = err instanceof UsageError ? 2 : 1;
});
