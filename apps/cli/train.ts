// p3s train: parses flags and calls trainP3S.
import { INJECTION_MODES } from '../../src/p3s/adapter/injection.js';
import { parse, intFlag, numberFlag, Progress, UsageError, choiceFlag } from './args.js';
import { trainP3S, type TrainP3SConfig } from '../../src/p3s/train.js';
import { parseWeightCurve } from '../../src/p3s/adapter/weight_schedule.js';

const HELP = `Usage: p3s train <photo|folder>... --base <folder> --clip <folder> --out <folder> --class <word> [options]
       p3s train --annotation <file.json> --base <folder> --clip <folder> --out <folder> [options]

Fine-tunes a P3S adapter (paper Sec. III-B): a subject encoder and a trainable copy of the U-Net
whose features are injected into the frozen base model's self-attention layers. Trains with
L = L_LDM + γ·L_ac (Eq. 15), Adam, 10% text-condition dropout. Writes <out>/adapter.safetensors,
which \`p3s generate\` uses with the same base model.

Arguments:
  photo|folder             filled reference photos of the subject: image files, folders of
                           images, or a \`p3s mask\` output folder (its *.filled.png photos)
Inputs:
  --annotation <file>      raw photos with clicks instead (docs/annotations.md): runs the mask
                           job first, into <out>/mask
  --base <folder>          base model in the diffusers layout (Stable Diffusion 1.5)
  --clip <folder>          CLIP vision model (transformers layout) for the subject's c_s
  --out <folder>           adapter.safetensors, checkpoints/, samples/, train-log.jsonl
Subject and prompt:
  --class <word>           the subject's class, as in "a sks dog" (default: the annotation's)
  --identifier <token>     rare token naming the subject (default: the annotation's, else sks)
  --prompt <template>      training prompt; {} or [V] = "<identifier> <class>" (default "a {}")
Training:
  --crop-subject <x>       cut each reference to the square x times its subject mask's box
                           (e.g. 1.5) so the subject fills it; needs a p3s mask folder or
                           --annotation (default: the whole photo)
  --subject-only-condition the adapter's condition shows the subject alone (the rest of each
                           reference grey; the denoising target keeps the whole photo), so it
                           does not carry the references' surroundings into new contexts;
                           needs a p3s mask folder or --annotation
  --background-loss-weight <w>
                           weight of the denoising error outside the subject mask (default 1:
                           the paper's loss; 0: the subject only), so the adapter has less
                           reason to learn the references' surroundings; needs a p3s mask
                           folder or --annotation
  --resolution <px>        square training size (default: the U-Net's sample_size × 8, SD 1.5: 512)
  --epochs <n>             passes over the references (default 60)
  --steps <n>              optimizer steps in all (overrides --epochs)
  --batch-size <n>         samples per micro-batch (default 1)
  --grad-accum <n>         micro-batches per optimizer step (default 1)
  --lr <x>                 Adam learning rate (default 1e-5)
  --gamma <x>              weight γ of the attention consistency loss (default 0.1)
  --dropout <p>            probability of the empty prompt, for guidance (default 0.1)
  --flip                   mirror samples left-right at random
  --max-grad-norm <x>      clip the gradients' global norm (default: no clipping)
  --condition-from <s>     subject condition from the 'same' reference (default) or an 'other' one
  --init-adapter <file>    start from this adapter's weights (e.g. one pretrained on many
                           subjects, as models/toy ships) instead of the U-Net's copy with zero
                           projections; it must be for the same base model (default: none)
  --seed <n>               initialisation, data order and every draw (default 0)
P3S settings (stored in the adapter; generate can override them):
  --lambda <x>             λ of Eq. 7 (default 0.2)
  --weight-curve <c>       ε_t of Eq. 10: paper[:α,β,k] (default paper:0.5,0.2,2), fixed:<w>,
                           quadratic-increasing, quadratic-decreasing
  --injection <mode>       decoupled (default), joint (Eq. 8 as written) or aligned (decoupled
                           plus the copy's feature at its own position; not in the paper,
                           a stronger adapter on small U-Nets; see docs/p3s.md)
Checkpoints and samples:
  --checkpoint-every <n>   write a checkpoint every n steps (default 100; 0: only at the end)
  --keep-checkpoints <n>   how many to keep (default 2)
  --resume                 continue from the newest checkpoint in <out>/checkpoints
  --resume-from <file>     continue from this checkpoint
  --sample-every <n>       write validation images every n steps to <out>/samples (default: never)
  --validation-prompt <p>  a validation prompt (repeatable; default: the training prompt)
  --sample-steps <n>       DDIM steps of validation images (default 25)
  --no-eval                skip the fixed evaluation loss before and after training
  -h, --help               this help

Ctrl-C stops after the current step and writes a checkpoint; --resume continues exactly.`;

export const trainCommand = {
  summary: 'reference photos -> P3S adapter',
  async run(argv: string[]): Promise<void> {
    const { values, positionals } = parse(argv, {
      annotation: { type: 'string' },
      base: { type: 'string' },
      clip: { type: 'string' },
      out: { type: 'string' },
      class: { type: 'string' },
      identifier: { type: 'string' },
      prompt: { type: 'string' },
      resolution: { type: 'string' },
      epochs: { type: 'string' },
      steps: { type: 'string' },
      'batch-size': { type: 'string' },
      'grad-accum': { type: 'string' },
      lr: { type: 'string' },
      gamma: { type: 'string' },
      dropout: { type: 'string' },
      flip: { type: 'boolean' },
      'max-grad-norm': { type: 'string' },
      'condition-from': { type: 'string' },
      seed: { type: 'string' },
      lambda: { type: 'string' },
      'weight-curve': { type: 'string' },
      injection: { type: 'string' },
      'crop-subject': { type: 'string' },
      'subject-only-condition': { type: 'boolean' },
      'background-loss-weight': { type: 'string' },
      'init-adapter': { type: 'string' },
      'checkpoint-every': { type: 'string' },
      'keep-checkpoints': { type: 'string' },
      resume: { type: 'boolean' },
      'resume-from': { type: 'string' },
      'sample-every': { type: 'string' },
      'validation-prompt': { type: 'string', multiple: true },
      'sample-steps': { type: 'string' },
      'no-eval': { type: 'boolean' },
    });
    if (values.help) {
      console.log(HELP);
      return;
    }
    const str = (name: string): string | undefined => values[name] as string | undefined;
    const annotation = str('annotation');
    if (annotation === undefined && positionals.length === 0)
      throw new UsageError('Expected reference photos (or a folder) or --annotation <file>');
    if (annotation !== undefined && positionals.length > 0)
      throw new UsageError('Give reference photos or --annotation, not both');
    for (const name of ['base', 'clip', 'out']) {
      if (str(name) === undefined) throw new UsageError(`Expected --${name} <folder>`);
    }
    if (values.resume && str('resume-from') !== undefined)
      throw new UsageError('Give --resume or --resume-from, not both');
    const optionalInt = (name: string, min: number): number | undefined =>
      values[name] === undefined ? undefined : intFlag(values, name, 0, min);
    const optionalNum = (name: string, check: (v: number) => boolean, what: string) =>
      values[name] === undefined ? undefined : numberFlag(values, name, 0, check, what);
    const injection =
      values.injection === undefined
        ? undefined
        : choiceFlag(values, 'injection', INJECTION_MODES, 'decoupled');
    const from = str('condition-from');
    if (from !== undefined && from !== 'same' && from !== 'other')
      throw new UsageError(`Expected same or other for --condition-from but received ${from}`);
    const curve = str('weight-curve');
    if (curve !== undefined) {
      try {
        parseWeightCurve(curve);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
    }

    const controller = new AbortController();
    const onSigint = (): void => {
      process.stderr.write('\nStopping after this step (Ctrl-C again to quit now)...\n');
      controller.abort();
    };
    process.once('SIGINT', onSigint);
    const tty = process.stderr.isTTY === true;
    let progress: Progress | undefined;
    const config: TrainP3SConfig = {
      baseModel: str('base')!,
      clipModel: str('clip')!,
      outDir: str('out')!,
      references: annotation === undefined ? positionals : undefined,
      annotation,
      classWord: str('class'),
      identifier: str('identifier'),
      promptTemplate: str('prompt'),
      subjectCrop: optionalNum('crop-subject', (v) => v >= 1, 'a number of at least 1'),
      subjectOnlyCondition: values['subject-only-condition'] as boolean | undefined,
      backgroundLossWeight: optionalNum(
        'background-loss-weight',
        (v) => v >= 0 && v <= 1,
        'a weight in [0, 1]',
      ),
      initAdapter: str('init-adapter'),
      resolution: optionalInt('resolution', 1),
      epochs: optionalInt('epochs', 1),
      maxSteps: optionalInt('steps', 1),
      batchSize: optionalInt('batch-size', 1),
      gradientAccumulation: optionalInt('grad-accum', 1),
      learningRate: optionalNum('lr', (v) => v > 0, 'a positive number'),
      gamma: optionalNum('gamma', (v) => v >= 0, 'a non-negative number'),
      conditionDropout: optionalNum('dropout', (v) => v >= 0 && v <= 1, 'a probability'),
      flip: values.flip === true,
      maxGradNorm: optionalNum('max-grad-norm', (v) => v > 0, 'a positive number') ?? null,
      conditionFrom: from as 'same' | 'other' | undefined,
      seed: optionalInt('seed', 0),
      lambda: optionalNum('lambda', Number.isFinite, 'a number'),
      weightCurve: curve,
      injectionMode: injection,
      checkpointEvery: optionalInt('checkpoint-every', 0),
      keepCheckpoints: optionalInt('keep-checkpoints', 1),
      resume: str('resume-from') ?? (values.resume === true ? true : undefined),
      sampleEvery: optionalInt('sample-every', 0),
      validationPrompts: values['validation-prompt'] as string[] | undefined,
      sampleSteps: optionalInt('sample-steps', 1),
      evaluate: values['no-eval'] !== true,
      signal: controller.signal,
      onLog: (m) => process.stderr.write(`${tty ? '\r\x1b[2K' : ''}${m}\n`),
      onProgress: (p) => {
        progress ??= new Progress('train', p.totalSteps - p.startStep);
        progress.update(
          p.step - p.startStep,
          `step ${p.step}/${p.totalSteps} loss ${p.loss.toFixed(4)} (L_LDM ${p.ldmLoss.toFixed(4)}, L_ac ${p.acLoss.toExponential(2)})`,
        );
      },
    };
    try {
      const result = await trainP3S(config);
      if (result.evalLossBefore !== null && result.evalLossAfter !== null) {
        console.log(
          `Evaluation loss: ${result.evalLossBefore.toPrecision(5)} -> ${result.evalLossAfter.toPrecision(5)}`,
        );
      }
      console.log(`Wrote ${result.adapterPath} (${result.steps} steps)`);
    } finally {
      process.off('SIGINT', onSigint);
    }
  },
};
