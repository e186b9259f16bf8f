// p3s train: parses flags (declared in src/p3s/train_settings.ts) and calls trainP3S.
import { parse, settingsFromFlags, UsageError } from './args.js';
import { trainingProgress } from '../terminal/progress.js';
import { branchFlags, trainP3S, type TrainP3SConfig } from '../../src/p3s/train.js';
import { resolveTrainSettings, TRAIN_SETTINGS } from '../../src/p3s/train_settings.js';
import { flagOptions, helpSections } from '../../src/settings/table.js';
import { TrainingDivergedError } from '../../src/training/errors.js';
import type { TrainingObserver } from '../../src/training/observer.js';

const HELP = `Usage: p3s train <photo|folder>... --base <folder> --clip <folder> --out <folder> --class <word> [options]
       p3s train --annotation <file.json> --base <folder> --clip <folder> --out <folder> [options]

Fine-tunes a P3S adapter (paper Sec. III-B): a subject encoder and a trainable copy of the U-Net
whose features are injected into the frozen base model's self-attention layers. Trains with
L = L_LDM + γ·L_ac (Eq. 15), Adam, 10% text-condition dropout. Writes <out>/adapter.safetensors,
which \`p3s generate\` uses with the same base model. --method trains a baseline on the same
batches instead: dreambooth (writes <out>/unet/), textual-inversion
(<out>/learned_embeds.safetensors) or custom-diffusion
(<out>/pytorch_custom_diffusion_weights.safetensors); see docs/p3s.md.

Arguments:
  photo|folder             filled reference photos of the subject: image files, folders of
                           images, or a \`p3s mask\` output folder (its *.filled.png photos)
${helpSections(TRAIN_SETTINGS)}
  -h, --help               this help

Ctrl-C or SIGTERM stops after the current step and writes a checkpoint; --resume continues
exactly, from the newest checkpoint that reads back whole (a damaged one is skipped, with a
warning). A run locks its --out folder (<out>/run.lock) while it runs; a new run into a folder
holding another run's checkpoints or adapter is refused unless given --overwrite. A run that
diverges writes no checkpoint or adapter with NaN weights and prints the command that continues
it from its last good checkpoint as a new run (--resume-from <file> --branch --lr <lower>).`;

/** Notes and a progress bar on stderr. */
/** The loss parts a method reports (P3S: ldm, ac; the baselines: ldm, and prior with one). */
const PARTS: readonly [string, string, (v: number) => string][] = [
  ['ldm', 'L_LDM', (v) => v.toFixed(4)],
  ['ac', 'L_ac', (v) => v.toExponential(2)],
  ['prior', 'L_prior', (v) => v.toFixed(4)],
];

function terminalObservers(): TrainingObserver[] {
  const tty = process.stderr.isTTY === true;
  const parts = (given: Record<string, number>): string =>
    PARTS.filter(([key]) => key in given)
      .map(([key, label, show]) => `${label} ${show(given[key]!)}`)
      .join(', ');
  return [
    { onLog: (m) => process.stderr.write(`${tty ? '\r\x1b[2K' : ''}${m}\n`) },
    trainingProgress('train', {
      detail: (p) => `step ${p.step}/${p.totalSteps} loss ${p.loss.toFixed(4)} (${parts(p.parts)})`,
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
    const resuming = given.resume === true || given.resumeFrom != null;
    if (given.branch && !resuming)
      throw new UsageError('--branch continues from a checkpoint: add --resume or --resume-from');
    if (given.overwrite && resuming)
      throw new UsageError(
        '--overwrite replaces the earlier run with a new one: give it without --resume or --resume-from',
      );
    const config = {
      ...given,
      references: given.annotation == null ? positionals : undefined,
    } as TrainP3SConfig;

    const controller = new AbortController();
    const onSigint = (): void => {
      process.stderr.write('\nStopping after this step (Ctrl-C again to quit now)...\n');
      controller.abort();
    };
    const onSigterm = (): void => {
      process.stderr.write('\nSIGTERM: stopping after this step, with a checkpoint...\n');
      controller.abort();
    };
    process.once('SIGINT', onSigint);
    process.once('SIGTERM', onSigterm);
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
    } catch (err) {
      if (err instanceof TrainingDivergedError) {
        const { learningRate } = resolveTrainSettings(config);
        err.message += `\nTo continue: ${continueCommand(argv, learningRate, err.lastCheckpoint)}`;
      }
      throw err;
    } finally {
      process.off('SIGINT', onSigint);
      process.off('SIGTERM', onSigterm);
    }
  },
};

/** Flags the continuing command replaces: those naming where to start, and the learning rate. */
const REPLACED_SWITCHES = new Set(['--resume', '--branch', '--overwrite']);
const REPLACED_VALUES = new Set(['--resume-from', '--lr']);

const shellWord = (w: string): string =>
  /^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`;

/**
 * The command line that continues a diverged run as its message advises (branchFlags): the
 * user's, with where to start and the learning rate replaced.
 */
export function continueCommand(
  argv: readonly string[],
  learningRate: number,
  lastCheckpoint: string | null,
): string {
  const kept: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!.split('=')[0]!;
    if (REPLACED_SWITCHES.has(argv[i]!)) continue;
    if (REPLACED_VALUES.has(flag)) {
      if (!argv[i]!.includes('=')) i++;
      continue;
    }
    kept.push(argv[i]!);
  }
  const words = ['p3s', 'train', ...kept, ...branchFlags({ learningRate }, lastCheckpoint)];
  return words.map(shellWord).join(' ');
}
