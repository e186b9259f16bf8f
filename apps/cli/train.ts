// p3s train: parses flags (declared in src/p3s/train_settings.ts) and calls trainP3S.
import { parse, settingsFromFlags, UsageError } from './args.js';
import { trainingProgress } from '../terminal/progress.js';
import { trainP3S, type TrainP3SConfig } from '../../src/p3s/train.js';
import { TRAIN_SETTINGS } from '../../src/p3s/train_settings.js';
import { flagOptions, helpSections } from '../../src/settings/table.js';
import type { TrainingObserver } from '../../src/training/observer.js';

const HELP = `Usage: p3s train <photo|folder>... --base <folder> --clip <folder> --out <folder> --class <word> [options]
       p3s train --annotation <file.json> --base <folder> --clip <folder> --out <folder> [options]

Fine-tunes a P3S adapter (paper Sec. III-B): a subject encoder and a trainable copy of the U-Net
whose features are injected into the frozen base model's self-attention layers. Trains with
L = L_LDM + γ·L_ac (Eq. 15), Adam, 10% text-condition dropout. Writes <out>/adapter.safetensors,
which \`p3s generate\` uses with the same base model.

Arguments:
  photo|folder             filled reference photos of the subject: image files, folders of
                           images, or a \`p3s mask\` output folder (its *.filled.png photos)
${helpSections(TRAIN_SETTINGS)}
  -h, --help               this help

Ctrl-C stops after the current step and writes a checkpoint; --resume continues exactly.`;

/** Notes and a progress bar on stderr. */
function terminalObservers(): TrainingObserver[] {
  const tty = process.stderr.isTTY === true;
  return [
    { onLog: (m) => process.stderr.write(`${tty ? '\r\x1b[2K' : ''}${m}\n`) },
    trainingProgress('train', {
      detail: (p) =>
        `step ${p.step}/${p.totalSteps} loss ${p.loss.toFixed(4)} (L_LDM ${(p.parts.ldm ?? 0).toFixed(4)}, L_ac ${(p.parts.ac ?? 0).toExponential(2)})`,
    }),
  ];
}

export const trainCommand = {
  summary: 'reference photos -> P3S adapter',
  async run(argv: string[]): Promise<void> {
    const { values, positionals } = parse(argv, flagOptions(TRAIN_SETTINGS));
    if (values.help) {
      console.log(HELP);
      return;
    }
    const given = settingsFromFlags(TRAIN_SETTINGS, values);
    if (given.annotation == null && positionals.length === 0)
      throw new UsageError('Expected reference photos (or a folder) or --annotation <file>');
    if (given.annotation != null && positionals.length > 0)
      throw new UsageError('Give reference photos or --annotation, not both');
    if (given.resume && given.resumeFrom != null)
      throw new UsageError('Give --resume or --resume-from, not both');
    const config = {
      ...given,
      references: given.annotation == null ? positionals : undefined,
    } as TrainP3SConfig;

    const controller = new AbortController();
    const onSigint = (): void => {
      process.stderr.write('\nStopping after this step (Ctrl-C again to quit now)...\n');
      controller.abort();
    };
    process.once('SIGINT', onSigint);
    try {
      const result = await trainP3S(config, {
        observers: terminalObservers(),
        signal: controller.signal,
      });
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
