// The demo: one selective-subject experiment on the toy models with the negative click and, by
// default, the same without it (the baseline), run in turn or side by side in two processes,
// then the HTML report. Progress goes to stderr; the CLI prints the outcome.
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { formatWeightCurve } from '../../src/p3s/adapter/weight_schedule.js';
import { resolveSettings } from '../../src/settings/table.js';
import { Progress } from '../terminal/progress.js';
import { AttributeProbe } from '../toymodels/probe.js';
import { measuredMaskChoice, readQuality } from '../toymodels/quality_file.js';
import {
  EXPERIMENT_CONTEXTS,
  runSubjectExperiment,
  type ExperimentResult,
} from '../toymodels/experiment.js';
import {
  runExperimentInChild,
  type ChildExperimentOptions,
} from '../toymodels/experiment_process.js';
import {
  PAPER_RECIPE,
  recipeExperimentSettings,
  recipeFromSettings,
  recipeSettings,
  TOY_RECIPE,
  type AdapterRecipe,
} from '../toymodels/recipes.js';
import { renderReport } from './report.js';
import { DEMO_SETTINGS, type DemoOptions, type DemoSettings } from './settings.js';

export { DEMO_SETTINGS, type DemoOptions, type DemoSettings } from './settings.js';

/** A folder that does not hold the toy models (their parts are named in the message). */
export class ToyModelFolderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ToyModelFolderError';
  }
}

export interface DemoResult {
  /** The run with the negative click, then the baseline (when run). */
  runs: ExperimentResult[];
  reportPath: string;
  seconds: number;
}

/**
 * The settings, resolved once: each adapter setting not given is the chosen recipe's (the
 * paper's with paperSettings, else the toy recipe the table's defaults are).
 */
export function resolveDemoSettings(options: DemoOptions): {
  settings: DemoSettings;
  recipe: AdapterRecipe;
} {
  const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined));
  const base = options.paperSettings ? PAPER_RECIPE : TOY_RECIPE;
  const { train, generate } = recipeSettings(base);
  const settings = resolveSettings(DEMO_SETTINGS, { ...train, ...generate, ...given });
  const recipe = recipeFromSettings({
    ...settings,
    maxSteps: settings.maxSteps ?? base.steps,
    identifier: settings.identifier ?? base.identifier,
    weightCurve: formatWeightCurve(settings.weightCurve),
  });
  return { settings, recipe };
}

/** Refuses a folder without the toy models' parts the demo loads. */
export function checkToyModels(folder: string): void {
  for (const part of ['model_index.json', 'image_encoder/config.json', 'probe/config.json']) {
    if (!existsSync(join(folder, part)))
      throw new ToyModelFolderError(
        `${folder} is not a toy model folder (no ${part}); run \`npm run train:toy\` or pass --model`,
      );
  }
}

/**
 * The experiments to run: with the negative click, then (unless skipped) without. The first also
 * generates the base model's own images, the report's reference row (the same for both runs:
 * same subject, prompts and seeds).
 */
function demoExperiments(
  settings: DemoSettings,
  recipe: AdapterRecipe,
  model: string,
  modelQuality: Record<string, unknown> | null,
): ChildExperimentOptions[] {
  const experiment = recipeExperimentSettings(recipe);
  const out = resolve(settings.outDir);
  return (settings.baseline ? [true, false] : [true]).map((negativePoint) => ({
    modelFolder: model,
    outDir: join(out, negativePoint ? 'selective' : 'baseline'),
    subjectSeed: settings.subjectSeed,
    imagesPerPrompt: settings.numImages,
    negativePoint,
    baseModelImages: negativePoint,
    ...measuredMaskChoice(modelQuality),
    ...experiment,
    generate: { ...experiment.generate, latentBias: settings.latentBias },
  }));
}

/** Runs the demo's experiments and writes report.html into the output folder. */
export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const { settings, recipe } = resolveDemoSettings(options);
  const model = resolve(settings.modelFolder);
  checkToyModels(model);
  const modelQuality = readQuality(model);
  const started = Date.now();
  const experiments = demoExperiments(settings, recipe, model, modelQuality);
  const cores = availableParallelism();
  const runs =
    experiments.length > 1 && cores >= 2 && !settings.sequential
      ? await runInParallel(experiments, cores)
      : await runInTurn(experiments, model);
  const reportPath = join(resolve(settings.outDir), 'report.html');
  const seconds = (Date.now() - started) / 1000;
  const latentBias = settings.latentBias;
  renderReport(reportPath, {
    main: runs[0]!,
    baseline: runs[1] ?? null,
    modelQuality,
    seconds,
    settings: {
      recipe: settings.paperSettings ? 'paper' : 'toy',
      ...recipe,
      ...(latentBias > 0 ? { latentBias } : {}),
    },
    settingsHelp: settingsHelp(),
  });
  return { runs, reportPath, seconds };
}

/** What each setting the report lists does: the help of --help, by the recipe's keys. */
function settingsHelp(): Record<string, string> {
  const help: Record<string, string> = Object.fromEntries(
    DEMO_SETTINGS.map((s) => [s.key, s.help]),
  );
  return {
    ...help,
    recipe:
      "where the defaults came from: toy (a recipe that draws the subject on the toy models) or paper (the paper's adapter)",
    steps: help.maxSteps ?? '',
  };
}

const label = (o: ChildExperimentOptions): string =>
  o.negativePoint === false ? 'positive point only' : 'with negative point';

/** The experiments one after the other, in this process, each with its own progress bars. */
async function runInTurn(
  experiments: ChildExperimentOptions[],
  model: string,
): Promise<ExperimentResult[]> {
  const probe = AttributeProbe.load(join(model, 'probe'));
  const runs: ExperimentResult[] = [];
  try {
    for (const options of experiments) {
      let trainBar: Progress | null = null;
      let genBar: Progress | null = null;
      console.error(`p3s demo: ${label(options)}`);
      runs.push(
        await runSubjectExperiment({
          ...options,
          probe,
          onTrainProgress: (p) => {
            trainBar ??= new Progress('  fine-tune', p.totalSteps);
            trainBar.update(p.step, `loss ${p.loss.toFixed(4)}`);
          },
          onGenerateProgress: (p) => {
            genBar ??= new Progress('  generate ', p.total);
            if (p.step === p.steps) genBar.update(p.done);
          },
        }),
      );
    }
  } finally {
    probe.dispose();
  }
  return runs;
}

/**
 * The experiments side by side, one child process each with an equal share of the cores, and one
 * progress bar over all their fine-tuning steps and images.
 */
async function runInParallel(
  experiments: ChildExperimentOptions[],
  cores: number,
): Promise<ExperimentResult[]> {
  const threads =
    Number(process.env.P3S_NUM_THREADS ?? 0) || Math.max(1, Math.floor(cores / experiments.length));
  console.error(
    `p3s demo: ${experiments.map(label).join(' and ')}, side by side (${threads} thread${threads > 1 ? 's' : ''} each)`,
  );
  // Each experiment generates imagesPerPrompt images in every context (EXPERIMENT_CONTEXTS), and
  // as many again with the base model alone when asked to; a reference ranking's images are
  // counted once the generation reports its own total.
  const work = experiments.map((o) => ({
    train: 0,
    generate: 0,
    steps: o.steps ?? 0,
    images: EXPERIMENT_CONTEXTS.length * (o.imagesPerPrompt ?? 0) * (o.baseModelImages ? 2 : 1),
  }));
  const total = (): number => work.reduce((n, w) => n + w.steps + w.images, 0);
  const bar = new Progress('  fine-tune + generate', total());
  const show = (): void => {
    bar.setTotal(total());
    bar.update(work.reduce((n, w) => n + w.train + w.generate, 0));
  };
  const controller = new AbortController();
  const runs = experiments.map((options, i) =>
    runExperimentInChild(options, {
      threads,
      signal: controller.signal,
      onTrainProgress: (p) => {
        work[i]!.train = p.step;
        show();
      },
      onGenerateProgress: (p) => {
        if (p.step !== p.steps) return;
        work[i]!.images = p.total;
        work[i]!.generate = p.done;
        show();
      },
    }),
  );
  try {
    return await Promise.all(runs);
  } catch (err) {
    controller.abort(); // one failed: stop the other rather than wait for a result we drop
    await Promise.allSettled(runs);
    throw err;
  }
}
