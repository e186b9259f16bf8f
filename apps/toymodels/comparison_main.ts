// npm run eval:methods [-- options]: the paper's Table I and Table II on the toy world — every
// method and ablation fine-tuned on each evaluation subject's look-alike references, each run in
// a one-thread child process, as many at once as there are cores; a stopped comparison continues
// where it stopped. Prints the tables in Markdown and writes comparison.json.
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { UsageError, parse } from '../cli/args.js';
import { writeJsonAtomic } from '../../src/io/json_file.js';
import { Progress } from '../terminal/progress.js';
import {
  COMPARISON_ROWS,
  comparisonRuns,
  finishedRun,
  markdownTables,
  runNumbers,
  saveRun,
  tableRows,
  type ComparisonRun,
  type RunNumbers,
} from './comparison.js';
import { runExperimentInChild } from './experiment_process.js';
import { EVALUATION_SUBJECTS, TUNING_SUBJECTS } from './recipes.js';
import { subjectSeeds } from './subjects.js';
import { TaskPool } from './task_pool.js';

const HELP = `npm run eval:methods -- [options]

The paper's comparison on the toy world. Table I: P3S, DreamBooth, Custom Diffusion and Textual
Inversion, each fine-tuned on a subject's references where a look-alike stands beside it — with
the negative click, with the positive click only, and (baselines) on the photos as taken. Table
II: P3S without the RNGR mask, without L_ac, and with the paper's weight scheduler. The probe
reads every generated image: the subject's colour + pattern + shape, a look-alike's colour +
pattern, the prompted context. Runs whose folder already holds their result are not made again.

Options:
  --model <dir>       toy model folder with probe/ (default models/toy)
  --subjects <set>    evaluation (default: seeds ${EVALUATION_SUBJECTS.join(', ')}), tuning (seeds
                      ${TUNING_SUBJECTS.join(', ')}, for choosing settings), or a comma-separated list
  --rows <ids>        only these rows (default all): ${COMPARISON_ROWS.map((r) => r.id).join(', ')}
  --work <dir>        where the runs go (default .eval-methods); comparison.json is written there
Threads: P3S_NUM_THREADS runs at once (default: all cores), one thread each.`;

function rowsFrom(value: unknown) {
  if (value === undefined) return COMPARISON_ROWS;
  const ids = String(value)
    .split(',')
    .map((s) => s.trim());
  const unknown = ids.filter((id) => !COMPARISON_ROWS.some((r) => r.id === id));
  if (unknown.length > 0)
    throw new UsageError(
      `--rows: unknown rows ${unknown.join(', ')}; known: ${COMPARISON_ROWS.map((r) => r.id).join(', ')}`,
    );
  return COMPARISON_ROWS.filter((r) => ids.includes(r.id));
}

/** Each run's numbers: from its folder when finished before, else made now through the pool. */
async function runAll(
  runs: readonly ComparisonRun[],
  pool: TaskPool,
  bar: Progress,
): Promise<RunNumbers[]> {
  let done = 0;
  return Promise.all(
    runs.map(async (run) => {
      const saved = finishedRun(run);
      if (saved) {
        bar.update(++done, 'done before');
        return saved;
      }
      const result = await pool.run((signal) =>
        runExperimentInChild(run.options, { threads: 1, signal }),
      );
      const numbers = runNumbers(result);
      saveRun(run, numbers);
      bar.update(++done, `${run.row} subject ${run.subject} ${run.clicks ?? 'photos'}`);
      return numbers;
    }),
  );
}

async function main(): Promise<void> {
  const { values } = parse(process.argv.slice(2), {
    model: { type: 'string' },
    subjects: { type: 'string' },
    rows: { type: 'string' },
    work: { type: 'string' },
  });
  if (values.help) return console.log(HELP);
  const subjects = subjectSeeds(values.subjects);
  const rows = rowsFrom(values.rows);
  const work = String(values.work ?? '.eval-methods');
  const model = String(values.model ?? 'models/toy');
  const runs = comparisonRuns(model, work, subjects, rows);
  const threads = Number(process.env.P3S_NUM_THREADS) || availableParallelism();
  const pool = new TaskPool(threads);
  const bar = new Progress('runs', runs.length);
  bar.update(0);
  const began = performance.now();
  try {
    const numbers = await runAll(runs, pool, bar);
    const results = tableRows(runs, numbers, rows);
    const seconds = (performance.now() - began) / 1000;
    const summary = { model, subjects, threads, seconds, results };
    writeJsonAtomic(join(work, 'comparison.json'), summary);
    console.log(markdownTables(results));
    console.log(
      `${runs.length} runs on ${subjects.length} subjects, ${(seconds / 60).toFixed(1)} min with ${threads} at once (runs made before count as done)`,
    );
  } catch (err) {
    pool.abort();
    throw err;
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof UsageError ? `${err.message}\n\n${HELP}` : err);
  process.exitCode = err instanceof UsageError ? 2 : 1;
});
