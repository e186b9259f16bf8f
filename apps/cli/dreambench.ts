// p3s dreambench: parses flags (declared in src/eval/dreambench_settings.ts), calls
// runDreamBench, prints the means per method.
import { join } from 'node:path';
import { parse, settingsFromFlags, UsageError } from './args.js';
import { Progress } from '../terminal/progress.js';
import {
  runDreamBench,
  type DreamBenchResult,
  type DreamBenchStage,
} from '../../src/eval/dreambench_run.js';
import { DREAMBENCH_SETTINGS, type DreamBenchConfig } from '../../src/eval/dreambench_settings.js';
import { metricCell, SCORE_COLUMNS } from '../../src/eval/eval_report.js';
import { flagOptions, helpSections } from '../../src/settings/table.js';

const HELP = `Usage: p3s dreambench --base <folder> --clip <folder> --out <folder> [options]

DreamBench's protocol in one command (DreamBooth, Ruiz et al. 2023; docs/eval.md): for every
subject and method, fine-tune on the subject's photos (p3s train --method), generate its 25
prompts (p3s generate), score the images against the photos (p3s eval: CLIP-I, CLIP-Iv, CLIP-T,
with --dino DINO and DINO-v) and average each metric over the subjects. A stopped run continues
where it stopped when given the same --out: finished stages are not done again and a training
resumes from its last checkpoint. DreamBench has no clicks: P3S gets yours from --annotations,
or a positive click at the centre of each subject's first photo.

${helpSections(DREAMBENCH_SETTINGS)}
  -h, --help               this help`;

/** One line per stage on stderr: the run's place in the whole. */
function stageProgress(): (s: DreamBenchStage) => void {
  let bar: Progress | undefined;
  return (s) => {
    bar ??= new Progress('dreambench', s.total);
    const verb = s.skipped ? 'done before' : 'running';
    bar.update(s.done, `${s.subject} · ${s.method} · ${s.stage} (${verb})`);
  };
}

/** The means per method as a text table. */
export function formatDreamBenchTable(r: DreamBenchResult): string {
  const head = ['method', 'subjects', 'images', ...SCORE_COLUMNS.map(([, name]) => name)];
  const rows = r.methods.map((m) => [
    m.method,
    String(Object.keys(m.perSubject).length),
    String(m.images),
    ...SCORE_COLUMNS.map(([key]) => metricCell(m.mean[key], key)),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  return [line(head), ...rows.map(line)].map((l) => l.trimEnd()).join('\n');
}

export const dreambenchCommand = {
  summary: 'DreamBench: train, generate and score every subject with each method',
  async run(argv: string[]): Promise<void> {
    const { values, positionals } = parse(argv, flagOptions(DREAMBENCH_SETTINGS));
    if (values.help) {
      console.log(HELP);
      return;
    }
    if (positionals.length > 0) throw new UsageError(`Unexpected argument ${positionals[0]}`);
    const given = settingsFromFlags(DREAMBENCH_SETTINGS, values) as DreamBenchConfig;
    const result = await runDreamBench(given, { onStage: stageProgress() });
    console.log(formatDreamBenchTable(result));
    if (result.missing.length > 0) console.log(`Not run (no photos): ${result.missing.join(', ')}`);
    console.log(`Scores: ${join(given.outDir, 'dreambench.json')}`);
  },
};
