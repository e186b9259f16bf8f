// p3s demo: the whole method on the embedded toy models, with an HTML report.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, choiceFlag, intFlag, numberFlag, UsageError } from './args.js';
import { Progress } from '../terminal/progress.js';
import { INJECTION_MODES } from '../../src/p3s/adapter/injection.js';
import { parseWeightCurve } from '../../src/p3s/adapter/weight_schedule.js';
import {
  PAPER_RECIPE,
  recipeExperimentSettings,
  TOY_RECIPE,
  type AdapterRecipe,
} from '../toymodels/recipes.js';
import { availableParallelism } from 'node:os';
import { AttributeProbe } from '../toymodels/probe.js';
import { runSubjectExperiment, type ExperimentResult } from '../toymodels/experiment.js';
import {
  runExperimentInChild,
  type ChildExperimentOptions,
} from '../toymodels/experiment_process.js';
import { renderReport } from '../demo/report.js';

/** The models shipped in the repository (models/toy), found from this file's location. */
export const SHIPPED_TOY_MODELS = fileURLToPath(new URL('../../../models/toy', import.meta.url));

const DEMO_SUBJECT = 6;
const DEMO_IMAGES = 3;

const HELP = `Usage: p3s demo [options]

Runs P3S end to end on the embedded toy world: picks reference scenes where the subject stands
next to a look-alike (same shape, other colour or pattern), clicks the subject (positive) and the
look-alike (negative), builds the masks (Eq. 1–3), fine-tunes P3S on the filled references,
generates the subject in new contexts, and writes an HTML report whose path it prints. By default
it runs the same experiment once more with the positive click only, to show what the negative
point buys. A separately trained probe judges every generated image.

Options:
  --out <folder>       where everything goes (default ./p3s-demo)
  --model <folder>     toy model folder (default: the shipped models/toy)
  --subject <n>        which subject (a seed; default 6, a blue striped circle whose masks are
                       typical: mean reference-mask IoU 0.78 vs 0.76 on held-out pairs)
Adapter settings (defaults: a recipe that draws the subject on the toy models, docs/toy.md):
  --steps <n>          fine-tuning steps per run (default 600)
  --lr <x>             fine-tuning learning rate (default 1e-3)
  --images <n>         images per context (default 3)
  --injection <mode>   decoupled, joint or aligned (default aligned; see p3s train --help)
  --crop-subject <x>   fine-tune on references cut to x times the subject mask's box (default
                       1.5)
  --weight-curve <c>   ε_t at generation (default fixed:0.5; see p3s generate --help)
  --subject-guidance   guidance amplifies the subject as well as the text (default on; see
                       p3s generate --help)
  --subject-only-condition
                       the adapter's condition shows the subject alone, the rest of each
                       reference grey (default off; see p3s train --help)
  --background-loss-weight <w>
                       weight of the denoising error outside the subject mask (default 1;
                       see p3s train --help)
  --paper-settings     the paper's adapter instead: decoupled injection, whole references,
                       lr 1e-4, 100 steps, the paper's ε_t curve, subject on both guidance
                       halves (on the toy models it barely changes the base model's images);
                       the flags above still override it
  --latent-bias <s>    add s × the reference latent to the starting noise (see p3s generate
                       --help); on the toy models it trades the prompted context away (docs/toy.md)
  --no-baseline        skip the positive-point-only run
  --sequential         run the two experiments one after the other in this process (by default
                       they run side by side in two processes, one core each, when there are
                       at least 2 cores: about half the wall time on 2 cores)
  -h, --help           this help
Threads: P3S_NUM_THREADS (default: all cores, split between the two processes).`;

export const demoCommand = {
  summary: 'the whole method on the embedded toy models, with an HTML report',
  async run(argv: string[]): Promise<void> {
    const { values } = parse(argv, {
      out: { type: 'string' },
      model: { type: 'string' },
      subject: { type: 'string' },
      steps: { type: 'string' },
      lr: { type: 'string' },
      images: { type: 'string' },
      'no-baseline': { type: 'boolean' },
      sequential: { type: 'boolean' },
      injection: { type: 'string' },
      'crop-subject': { type: 'string' },
      'weight-curve': { type: 'string' },
      'latent-bias': { type: 'string' },
      'subject-guidance': { type: 'boolean' },
      'paper-settings': { type: 'boolean' },
      'subject-only-condition': { type: 'boolean' },
      'background-loss-weight': { type: 'string' },
    });
    if (values.help) {
      console.log(HELP);
      return;
    }
    const model = resolve(String(values.model ?? SHIPPED_TOY_MODELS));
    for (const part of ['model_index.json', 'image_encoder/config.json', 'probe/config.json']) {
      if (!existsSync(join(model, part))) {
        throw new UsageError(
          `${model} is not a toy model folder (no ${part}); run \`npm run train:toy\` or pass --model`,
        );
      }
    }
    const out = resolve(String(values.out ?? 'p3s-demo'));
    // The model card's measurements pick the CLIP layer and grid density that mask best.
    const qualityPath = join(model, 'quality.json');
    const modelQuality = existsSync(qualityPath)
      ? (JSON.parse(readFileSync(qualityPath, 'utf8')) as Record<string, unknown>)
      : null;
    const measured = (key: string) =>
      typeof modelQuality?.[key] === 'number' ? (modelQuality[key] as number) : undefined;
    const base = values['paper-settings'] ? PAPER_RECIPE : TOY_RECIPE;
    // The recipe, each flag given overriding its setting.
    const recipe: AdapterRecipe = {
      steps: intFlag(values, 'steps', base.steps, 1),
      learningRate: numberFlag(values, 'lr', base.learningRate, (v) => v > 0, 'a positive number'),
      injection: choiceFlag(values, 'injection', INJECTION_MODES, base.injection),
      subjectCrop:
        values['crop-subject'] === undefined
          ? base.subjectCrop
          : numberFlag(values, 'crop-subject', 1.5, (v) => v >= 1, 'a number of at least 1'),
      weightCurve: (values['weight-curve'] as string | undefined) ?? base.weightCurve,
      subjectGuidance: values['subject-guidance'] === true || base.subjectGuidance,
      subjectOnlyCondition: values['subject-only-condition'] === true || base.subjectOnlyCondition,
      backgroundLossWeight: numberFlag(
        values,
        'background-loss-weight',
        base.backgroundLossWeight,
        (v) => v >= 0 && v <= 1,
        'a weight in [0, 1]',
      ),
    };
    try {
      parseWeightCurve(recipe.weightCurve);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const latentBias = numberFlag(
      values,
      'latent-bias',
      0,
      (v) => Number.isFinite(v) && v >= 0,
      'a non-negative number',
    );
    const started = Date.now();
    const variants = values['no-baseline'] ? [true] : [true, false];
    const settings = recipeExperimentSettings(recipe);
    const experiment = (negativePoint: boolean): ChildExperimentOptions => ({
      modelFolder: model,
      outDir: join(out, negativePoint ? 'selective' : 'baseline'),
      subjectSeed: intFlag(values, 'subject', DEMO_SUBJECT),
      imagesPerPrompt: intFlag(values, 'images', DEMO_IMAGES, 1),
      negativePoint,
      maskLayer: measured('maskLayer'),
      maskDense: measured('maskDense'),
      ...settings,
      generate: { ...settings.generate, latentBias },
    });
    const cores = availableParallelism();
    const runs =
      variants.length > 1 && cores >= 2 && !values.sequential
        ? await runInParallel(variants.map(experiment), cores)
        : await runInTurn(variants.map(experiment), model);
    const reportPath = join(out, 'report.html');
    const seconds = (Date.now() - started) / 1000;
    renderReport(reportPath, {
      main: runs[0]!,
      baseline: runs[1] ?? null,
      modelQuality,
      seconds,
      settings: {
        recipe: values['paper-settings'] ? 'paper' : 'toy',
        ...recipe,
        ...(latentBias > 0 ? { latentBias } : {}),
      },
    });
    for (const r of runs) {
      console.log(
        `${r.negativePoint ? 'positive + negative point' : 'positive point only      '}: ` +
          `subject's look in ${(100 * r.fidelity).toFixed(0)} % of images, ` +
          `a look-alike's in ${(100 * r.lookalikeRate).toFixed(0)} %`,
      );
    }
    console.log(`Report: ${reportPath} (${seconds.toFixed(0)} s)`);
  },
};

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
  // Each experiment generates imagesPerPrompt images in 4 new contexts (experiment.ts).
  const work = experiments.map((o) => ({
    train: 0,
    generate: 0,
    steps: o.steps ?? 0,
    images: 4 * (o.imagesPerPrompt ?? 0),
  }));
  const bar = new Progress(
    '  fine-tune + generate',
    work.reduce((n, w) => n + w.steps + w.images, 0),
  );
  const show = (): void => bar.update(work.reduce((n, w) => n + w.train + w.generate, 0));
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
