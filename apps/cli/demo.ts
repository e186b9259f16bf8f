// p3s demo: parses flags (declared in apps/demo/settings.ts) and calls runDemo.
import { parse, settingsFromFlags, UsageError } from './args.js';
import { DEMO_SETTINGS, runDemo, ToyModelFolderError } from '../demo/demo.js';
import { flagOptions, helpSections } from '../../src/settings/table.js';

const HELP = `Usage: p3s demo [options]

Runs P3S end to end on the embedded toy world: picks reference scenes where the subject stands
next to a look-alike (same shape, other colour or pattern), clicks the subject (positive) and the
look-alike (negative), builds the masks (Eq. 1–3), fine-tunes P3S on the filled references,
generates the subject in new contexts, and writes an HTML report whose path it prints. By default
it runs the same experiment once more with the positive click only, to show what the negative
point buys. A separately trained probe judges every generated image.

${helpSections(DEMO_SETTINGS)}
  -h, --help               this help
Threads: P3S_NUM_THREADS (default: all cores, split between the two processes).`;

export const demoCommand = {
  summary: 'the whole method on the embedded toy models, with an HTML report',
  async run(argv: string[]): Promise<void> {
    const { values, positionals } = parse(argv, flagOptions(DEMO_SETTINGS));
    if (values.help) {
      console.log(HELP);
      return;
    }
    if (positionals.length > 0) throw new UsageError(`Unexpected argument ${positionals[0]}`);
    const given = settingsFromFlags(DEMO_SETTINGS, values);
    const demo = await runDemo(given).catch((err: unknown) => {
      // a wrong --model is a usage error: nothing ran
      throw err instanceof ToyModelFolderError ? new UsageError(err.message) : err;
    });
    for (const r of demo.runs) {
      console.log(
        `${r.negativePoint ? 'positive + negative point' : 'positive point only      '}: ` +
          `subject's look in ${(100 * r.fidelity).toFixed(0)} % of images, ` +
          `a look-alike's in ${(100 * r.lookalikeRate).toFixed(0)} %`,
      );
    }
    console.log(`Report: ${demo.reportPath} (${demo.seconds.toFixed(0)} s)`);
  },
};
