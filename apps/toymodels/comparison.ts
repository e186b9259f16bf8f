// The paper's comparison tables on the toy world (Table I: P3S against DreamBooth, Custom
// Diffusion and Textual Inversion; Table II: P3S without one of its parts), as selective
// experiments (experiment.ts) on the evaluation subjects, judged by the probe. Each run keeps its
// result in its folder, so a stopped comparison continues where it stopped.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PAPER_CURVE, formatWeightCurve } from '../../src/p3s/adapter/weight_schedule.js';
import type { TrainingMethodName } from '../../src/p3s/train_settings.js';
import { writeJsonAtomic } from '../../src/io/json_file.js';
import { describeObject } from '../../src/toyworld/captions.js';
import { pct } from '../demo/report_tables.js';
import type { SelectiveNumbers } from './evaluate.js';
import { measuredMaskChoice, readQuality } from './quality_file.js';
import type { ExperimentResult } from './experiment.js';
import type { ChildExperimentOptions } from './experiment_process.js';
import { recipeExperimentSettings, TOY_RECIPE } from './recipes.js';

/** Which click sets a row is run with. */
export type Clicks = 'negative' | 'positive';

/** One row of a table: a method and its settings, run on every subject with each click set. */
export interface ComparisonRow {
  /** Stable name: the runs' folder names. */
  id: string;
  label: string;
  table: 'I' | 'II';
  /** Each click set the row is run with; [] when the method sees no clicks (it trains on the photos). */
  clicks: readonly Clicks[];
  settings: Partial<ChildExperimentOptions>;
}

/**
 * Each baseline's steps and learning rate on the toy models, chosen on the tuning subjects with
 * the negative click (docs/eval.md): among the settings tried, the one drawing the subject's look
 * most often while keeping the prompted context in at least 70 % of images (Textual Inversion's
 * chosen again on version 3; DreamBooth's and Custom Diffusion's on version 2). Fewer class
 * images than diffusers' 100, for the table's time budget.
 */
export const TOY_BASELINES: Readonly<
  Record<Exclude<TrainingMethodName, 'p3s'>, { steps: number; learningRate: number }>
> = {
  dreambooth: { steps: 400, learningRate: 2e-4 },
  'custom-diffusion': { steps: 250, learningRate: 1e-3 },
  'textual-inversion': { steps: 400, learningRate: 0.05 },
};
const CLASS_IMAGES = 20;

const LABELS: Record<Exclude<TrainingMethodName, 'p3s'>, string> = {
  dreambooth: 'DreamBooth',
  'custom-diffusion': 'Custom Diffusion',
  'textual-inversion': 'Textual Inversion',
};

/** A baseline's run settings: on the photos as taken, or on the references RNGR filled. */
function baseline(method: Exclude<TrainingMethodName, 'p3s'>, trainOn: 'photos' | 'filled') {
  const { steps, learningRate } = TOY_BASELINES[method];
  return {
    steps,
    learningRate,
    trainOn,
    train: { method, classImages: CLASS_IMAGES },
  } satisfies Partial<ChildExperimentOptions>;
}

const p3s = recipeExperimentSettings(TOY_RECIPE);

/** The rows of both tables, in order. */
export const COMPARISON_ROWS: readonly ComparisonRow[] = [
  {
    id: 'p3s',
    label: 'P3S (p3s demo recipe)',
    table: 'I',
    clicks: ['negative', 'positive'],
    settings: p3s,
  },
  ...(['dreambooth', 'custom-diffusion', 'textual-inversion'] as const).flatMap(
    (m): ComparisonRow[] => [
      {
        id: `${m}-photos`,
        label: `${LABELS[m]}, photos as taken`,
        table: 'I',
        clicks: [],
        settings: baseline(m, 'photos'),
      },
      {
        id: `${m}-filled`,
        label: `${LABELS[m]}, RNGR-filled references`,
        table: 'I',
        // with the positive click only, RNGR paints nothing out: the references are the
        // photos, and the run would be the photos row's again
        clicks: ['negative'],
        settings: baseline(m, 'filled'),
      },
    ],
  ),
  {
    id: 'p3s-no-mask',
    label: 'P3S without the RNGR mask (photos as taken, not cut to the subject)',
    table: 'II',
    clicks: [],
    // the recipe's crop to the subject, its subject-only condition and its loss kept to the
    // subject need the mask: without it the whole photo, shown and learnt whole
    settings: {
      ...p3s,
      trainOn: 'photos',
      train: {
        ...p3s.train,
        subjectCrop: null,
        subjectOnlyCondition: false,
        backgroundLossWeight: 1,
      },
    },
  },
  {
    id: 'p3s-no-lac',
    label: 'P3S without L_ac (γ = 0)',
    table: 'II',
    clicks: ['negative'],
    settings: { ...p3s, train: { ...p3s.train, gamma: 0 } },
  },
  {
    id: 'p3s-scheduler',
    label: "P3S with the paper's weight scheduler ε_t",
    table: 'II',
    clicks: ['negative'],
    settings: {
      ...p3s,
      generate: { ...p3s.generate, weightCurve: formatWeightCurve(PAPER_CURVE) },
    },
  },
];

/** One run of the comparison: a row, a subject and a click set (null: the photos, no clicks). */
export interface ComparisonRun {
  row: string;
  subject: number;
  clicks: Clicks | null;
  options: ChildExperimentOptions;
}

/** Every run of the rows on the subjects, each in work/<row>/subject-<seed>/<clicks>. */
export function comparisonRuns(
  modelFolder: string,
  workDir: string,
  subjects: readonly number[],
  rows: readonly ComparisonRow[] = COMPARISON_ROWS,
): ComparisonRun[] {
  const masks = measuredMaskChoice(readQuality(modelFolder));
  // subject by subject, so that a comparison stopped early has every row for its first subjects
  return subjects.flatMap((subject) =>
    rows.flatMap((row) =>
      (row.clicks.length > 0 ? row.clicks : [null]).map((clicks) => ({
        row: row.id,
        subject,
        clicks,
        options: {
          modelFolder,
          outDir: join(workDir, row.id, `subject-${subject}`, clicks ?? 'photos'),
          subjectSeed: subject,
          // without clicks the method never sees the masks, which are still made and scored
          negativePoint: clicks !== 'positive',
          ...masks,
          ...row.settings,
        },
      })),
    ),
  );
}

/** What the tables keep of one run: selectiveQuality's shares, for one subject. */
export type RunNumbers = Omit<SelectiveNumbers, 'perSubject'> & {
  subject: string;
  trainSeconds: number;
  images: number;
};

export function runNumbers(r: ExperimentResult): RunNumbers {
  return {
    subject: describeObject(r.subject),
    fidelity: r.fidelity,
    lookalikeRate: r.lookalikeRate,
    contextAccuracy: r.backgroundAccuracy,
    colourFidelity: r.colourFidelity,
    lookalikeColourRate: r.lookalikeColourRate,
    maskIoU: r.masks.reduce((a, m) => a + m.subjectIoU, 0) / Math.max(1, r.masks.length),
    trainSeconds: r.trainSeconds,
    images: r.generated.length,
  };
}

const RESULT_FILE = 'comparison-result.json';

/** A finished run's numbers, if its folder holds them for these very options. */
export function finishedRun(run: ComparisonRun): RunNumbers | null {
  const path = join(run.options.outDir, RESULT_FILE);
  if (!existsSync(path)) return null;
  try {
    const saved = JSON.parse(readFileSync(path, 'utf8')) as {
      options: unknown;
      numbers: RunNumbers;
    };
    return JSON.stringify(saved.options) === JSON.stringify(run.options) ? saved.numbers : null;
  } catch {
    return null; // half-written by an older version, or edited: the run is made again
  }
}

export function saveRun(run: ComparisonRun, numbers: RunNumbers): void {
  writeJsonAtomic(join(run.options.outDir, RESULT_FILE), { options: run.options, numbers });
}

/** A row's runs with one click set: the means over subjects and each subject's numbers. */
export interface RowResult {
  row: string;
  label: string;
  table: 'I' | 'II';
  clicks: Clicks | null;
  mean: Omit<RunNumbers, 'subject'>;
  perSubject: (RunNumbers & { seed: number })[];
}

/** The runs' numbers grouped into table rows, in COMPARISON_ROWS order. */
export function tableRows(
  runs: readonly ComparisonRun[],
  numbers: readonly RunNumbers[],
  rows: readonly ComparisonRow[] = COMPARISON_ROWS,
): RowResult[] {
  const out: RowResult[] = [];
  for (const row of rows) {
    for (const clicks of row.clicks.length > 0 ? row.clicks : [null]) {
      const mine = runs.flatMap((r, i) =>
        r.row === row.id && r.clicks === clicks ? [{ ...numbers[i]!, seed: r.subject }] : [],
      );
      if (mine.length === 0) continue;
      const mean = (k: keyof Omit<RunNumbers, 'subject'>) =>
        mine.reduce((a, n) => a + n[k], 0) / mine.length;
      out.push({
        row: row.id,
        label: row.label,
        table: row.table,
        clicks,
        mean: {
          fidelity: mean('fidelity'),
          lookalikeRate: mean('lookalikeRate'),
          contextAccuracy: mean('contextAccuracy'),
          colourFidelity: mean('colourFidelity'),
          lookalikeColourRate: mean('lookalikeColourRate'),
          maskIoU: mean('maskIoU'),
          trainSeconds: mean('trainSeconds'),
          images: mean('images'),
        },
        perSubject: mine,
      });
    }
  }
  return out;
}

const CLICK_LABELS: Record<string, string> = {
  negative: 'positive + negative',
  positive: 'positive only',
  null: 'none (photos as taken)',
};

/** The tables in Markdown, as docs/eval.md shows them. */
export function markdownTables(results: readonly RowResult[]): string {
  const head =
    "| method | clicks | subject's look | a look-alike's look | prompted context | subject's colour | a look-alike's colour | training s (mean) |\n" +
    '|---|---|---|---|---|---|---|---|';
  const line = (r: RowResult) =>
    `| ${r.label} | ${CLICK_LABELS[String(r.clicks)]} | ${[
      r.mean.fidelity,
      r.mean.lookalikeRate,
      r.mean.contextAccuracy,
      r.mean.colourFidelity,
      r.mean.lookalikeColourRate,
    ]
      .map(pct)
      .join(' | ')} | ${r.mean.trainSeconds.toFixed(0)} |`;
  return (['I', 'II'] as const)
    .map((t) => {
      const rows = results.filter((r) => r.table === t);
      return rows.length ? `Table ${t}\n\n${head}\n${rows.map(line).join('\n')}\n` : '';
    })
    .filter((s) => s)
    .join('\n');
}
