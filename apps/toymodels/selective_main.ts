// npm run eval:selective [-- options]: the model card's selective-fidelity experiment on its own —
// P3S fine-tuned per subject with and without the negative click, each run in a one-thread child
// process, as many at once as there are cores — printed as a table per subject.
import { availableParallelism } from 'node:os';
import { UsageError, intFlag, parse } from '../cli/args.js';
import { Progress } from '../terminal/progress.js';
import { pct } from '../demo/report_tables.js';
import { selectiveQuality, type SelectiveQuality, type SubjectNumbers } from './evaluate.js';
import { runExperimentInChild, type ChildExperimentOptions } from './experiment_process.js';
import {
  EVALUATION_SUBJECTS,
  PAPER_RECIPE,
  TOY_RECIPE,
  TUNING_SUBJECTS,
  type AdapterRecipe,
} from './recipes.js';
import { subjectSeeds } from './subjects.js';
import { TaskPool } from './task_pool.js';

const HELP = `npm run eval:selective -- [options]

Fine-tunes P3S on each subject's look-alike references with the negative click and with the
positive click only, generates the subject in every context, and prints what the probe reads:
the subject's colour + pattern + shape, a look-alike's colour + pattern, the prompted context.

Options:
  --model <dir>       toy model folder with probe/ (default models/toy)
  --subjects <set>    evaluation (default: seeds ${EVALUATION_SUBJECTS.join(', ')}, what the model card
                      reports), tuning (seeds ${TUNING_SUBJECTS.join(', ')}, for choosing settings), or a
                      comma-separated list of seeds
  --paper             the paper's adapter instead of p3s demo's recipe
  --recipe <json>     fields of the recipe to change, e.g. '{"steps":300,"weightCurve":"fixed:1"}'
  --work <dir>        where the runs go (default .eval-selective)
  --mask-layer <n>, --mask-dense <n>  RNGR's CLIP layer and grid density (default: those the
                      model card reports, from the model folder's quality.json)
Threads: P3S_NUM_THREADS runs at once (default: all cores), one thread each.`;

function recipeFrom(values: Record<string, unknown>): AdapterRecipe {
  const base = values.paper === true ? PAPER_RECIPE : TOY_RECIPE;
  if (values.recipe === undefined) return base;
  let changes: unknown;
  try {
    changes = JSON.parse(String(values.recipe));
  } catch {
    throw new UsageError(`--recipe is not valid JSON: ${String(values.recipe)}`);
  }
  if (typeof changes !== 'object' || changes === null || Array.isArray(changes)) {
    throw new UsageError(`--recipe must be a JSON object, e.g. '{"steps":300}'`);
  }
  const unknown = Object.keys(changes).filter((k) => !(k in base));
  if (unknown.length > 0) {
    throw new UsageError(
      `--recipe: unknown fields ${unknown.join(', ')}; known: ${Object.keys(base).join(', ')}`,
    );
  }
  return { ...base, ...(changes as Partial<AdapterRecipe>) };
}

function printTable(q: SelectiveQuality): void {
  const cells = (n: Pick<SubjectNumbers, 'fidelity' | 'lookalikeRate' | 'contextAccuracy'>) =>
    [n.fidelity, n.lookalikeRate, n.contextAccuracy].map((v) => pct(v).padStart(7)).join(' ');
  console.log(
    `${'subject'.padEnd(30)} ${'with the negative click'.padEnd(23)}   positive click only`,
  );
  console.log(`${''.padEnd(30)} subject look-a. context   subject look-a. context`);
  q.withNegative.perSubject.forEach((n, i) => {
    const label = `${n.seed} ${n.subject}`.padEnd(30);
    console.log(`${label} ${cells(n)}   ${cells(q.positiveOnly.perSubject[i]!)}`);
  });
  console.log(`${'mean'.padEnd(30)} ${cells(q.withNegative)}   ${cells(q.positiveOnly)}`);
}

async function main(): Promise<void> {
  const { values } = parse(process.argv.slice(2), {
    model: { type: 'string' },
    subjects: { type: 'string' },
    paper: { type: 'boolean' },
    recipe: { type: 'string' },
    work: { type: 'string' },
    'mask-layer': { type: 'string' },
    'mask-dense': { type: 'string' },
  });
  if (values.help) return console.log(HELP);
  const subjects = subjectSeeds(values.subjects);
  const recipe = recipeFrom(values);
  const pool = new TaskPool(Number(process.env.P3S_NUM_THREADS) || availableParallelism());
  const bar = new Progress('P3S runs', 2 * subjects.length);
  bar.update(0);
  let done = 0;
  try {
    // --paper alone: the model card's paper-adapter runs (selectiveQuality's defaults).
    const paperDefaults = values.paper === true && values.recipe === undefined;
    const model = String(values.model ?? 'models/toy');
    const q = await selectiveQuality(model, String(values.work ?? '.eval-selective'), {
      subjects,
      recipe: paperDefaults ? undefined : recipe,
      // unset: the runs mask as the model card does (experimentMasks)
      maskLayer: intFlag(values, 'mask-layer', undefined, -1),
      maskDense: intFlag(values, 'mask-dense', undefined, 1),
      run: (o: ChildExperimentOptions) =>
        pool.run((signal) => runExperimentInChild(o, { threads: 1, signal })),
      onRunDone: () => bar.update(++done),
    });
    printTable(q);
  } catch (err) {
    pool.abort();
    throw err;
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof UsageError ? `${err.message}\n\n${HELP}` : err);
  process.exitCode = err instanceof UsageError ? 2 : 1;
});
