// The comparison tables' bookkeeping (which runs, where, what a finished run keeps, how rows are
// averaged and printed) and one baseline run end to end through the selective experiment: a
// DreamBooth fine-tune on the photos as taken, generated with its own artifact and judged.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setNumThreads } from '../../../src/engine/index.js';
import {
  COMPARISON_ROWS,
  comparisonRuns,
  finishedRun,
  markdownTables,
  runNumbers,
  saveRun,
  tableRows,
  type RunNumbers,
} from '../../../apps/toymodels/comparison.js';
import { runSubjectExperiment } from '../../../apps/toymodels/experiment.js';
import { AttributeProbe } from '../../../apps/toymodels/probe.js';
import { TOY_RECIPE } from '../../../apps/toymodels/recipes.js';
import { repoRoot } from '../../helpers/paths.js';

setNumThreads(1);
const MODELS = join(repoRoot(), 'models', 'toy');
let root = '';
before(() => {
  root = mkdtempSync(join(tmpdir(), 'p3s-comparison-'));
});
after(() => rmSync(root, { recursive: true, force: true }));

const rows = (...ids: string[]) => COMPARISON_ROWS.filter((r) => ids.includes(r.id));

test('every row runs on every subject, subject by subject, with each of its click sets, each in a folder of its own', () => {
  const runs = comparisonRuns(
    '/m',
    '/w',
    [100, 101],
    rows('p3s', 'dreambooth-photos', 'p3s-no-lac'),
  );
  assert.deepEqual(
    runs.map((r) => [r.row, r.subject, r.clicks, r.options.outDir, r.options.negativePoint]),
    [100, 101].flatMap((s) => [
      ['p3s', s, 'negative', `/w/p3s/subject-${s}/negative`, true],
      ['p3s', s, 'positive', `/w/p3s/subject-${s}/positive`, false],
      ['dreambooth-photos', s, null, `/w/dreambooth-photos/subject-${s}/photos`, true],
      ['p3s-no-lac', s, 'negative', `/w/p3s-no-lac/subject-${s}/negative`, true],
    ]),
  );
  const [p3s, , db, noLac] = runs.map((r) => r.options);
  assert.equal(p3s!.steps, TOY_RECIPE.steps);
  assert.equal(p3s!.train?.method, undefined, 'P3S is the trainer default');
  assert.equal(db!.trainOn, 'photos');
  assert.equal(db!.train?.method, 'dreambooth');
  assert.equal(noLac!.train?.gamma, 0);
  assert.equal(
    noLac!.train?.injectionMode,
    TOY_RECIPE.injectionMode,
    'the rest of the recipe kept',
  );
  const [noMask] = comparisonRuns('/m', '/w', [1], rows('p3s-no-mask')).map((r) => r.options);
  assert.equal(noMask!.trainOn, 'photos');
  assert.equal(noMask!.train?.subjectCrop, null, 'a crop to the subject needs its mask');
  assert.equal(noMask!.train?.subjectOnlyCondition, false, 'so does a subject-only condition');
  assert.equal(noMask!.train?.backgroundLossWeight, 1, 'and a loss kept to the subject');
  const all = comparisonRuns('/m', '/w', [1], COMPARISON_ROWS).map((r) => r.options.outDir);
  assert.equal(new Set(all).size, all.length);
  const filled = comparisonRuns('/m', '/w', [1], rows('custom-diffusion-filled'));
  assert.deepEqual(
    filled.map((r) => r.clicks),
    ['negative'],
    'positive click only: nothing is painted out, the photos row is that run',
  );
});

test('every run masks with the CLIP layer and grid the model card measured best (quality.json)', () => {
  const folder = join(root, 'measured');
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(folder, 'quality.json'), JSON.stringify({ maskLayer: 2, maskDense: 4 }));
  const all = comparisonRuns(folder, '/w', [1], COMPARISON_ROWS).map((r) => r.options);
  assert.ok(all.every((o) => o.maskLayer === 2 && o.maskDense === 4));
  const unmeasured = comparisonRuns('/m', '/w', [1], rows('p3s'))[0]!.options;
  assert.ok(
    !('maskLayer' in unmeasured) && !('maskDense' in unmeasured),
    "the experiment's defaults",
  );
});

const numbers = (fidelity: number, subject = 'red star'): RunNumbers => ({
  subject,
  fidelity,
  lookalikeRate: 1 - fidelity,
  contextAccuracy: 0.5,
  colourFidelity: fidelity,
  lookalikeColourRate: 0,
  maskIoU: 0.7,
  trainSeconds: 10,
  images: 18,
});

test('a finished run is taken from its folder only for the same options', async () => {
  const [run] = comparisonRuns('/m', join(root, 'cache'), [3], rows('p3s'));
  assert.equal(finishedRun(run!), null);
  mkdirSync(run!.options.outDir, { recursive: true });
  saveRun(run!, numbers(0.25));
  assert.deepEqual(finishedRun(run!), numbers(0.25));
  assert.equal(finishedRun({ ...run!, options: { ...run!.options, steps: 7 } }), null);
  writeFileSync(join(run!.options.outDir, 'comparison-result.json'), '{"options":');
  assert.equal(finishedRun(run!), null, 'a half-written result is made again');
});

test('rows are averaged over subjects and printed as the two tables', () => {
  const chosen = rows('p3s', 'textual-inversion-photos', 'p3s-scheduler');
  const runs = comparisonRuns('/m', '/w', [1, 2], chosen);
  const values = runs.map((r) => numbers(r.subject === 1 ? 0.5 : 0.25));
  const results = tableRows(runs, values, chosen);
  assert.deepEqual(
    results.map((r) => [
      r.row,
      r.clicks,
      r.table,
      r.mean.fidelity,
      r.perSubject.map((s) => s.seed),
    ]),
    [
      ['p3s', 'negative', 'I', 0.375, [1, 2]],
      ['p3s', 'positive', 'I', 0.375, [1, 2]],
      ['textual-inversion-photos', null, 'I', 0.375, [1, 2]],
      ['p3s-scheduler', 'negative', 'II', 0.375, [1, 2]],
    ],
  );
  const md = markdownTables(results);
  assert.match(md, /^Table I\n/);
  assert.match(
    md,
    /\| P3S \(p3s demo recipe\) \| positive \+ negative \| 37\.5 % \| 62\.5 % \| 50 % \|/,
  );
  assert.match(md, /\| Textual Inversion, photos as taken \| none \(photos as taken\) \|/);
  assert.match(md, /\nTable II\n\n.*\n.*\n\| P3S with the paper's weight scheduler/);
});

test('a DreamBooth run on the photos as taken trains, generates with its artifact and is judged', async () => {
  const probe = AttributeProbe.load(join(MODELS, 'probe'));
  try {
    const outDir = join(root, 'db');
    const r = await runSubjectExperiment({
      modelFolder: MODELS,
      outDir,
      subjectSeed: 6,
      steps: 2,
      learningRate: 5e-4,
      trainOn: 'photos',
      train: { method: 'dreambooth', classImages: 1 },
      backgrounds: ['beach', 'snow'],
      imagesPerPrompt: 1,
      sampleSteps: 2,
      maskLayer: 0,
      maskDense: 4,
      probe,
    });
    assert.equal(r.losses.length, 2);
    assert.ok(existsSync(join(outDir, 'train', 'unet', 'diffusion_pytorch_model.safetensors')));
    assert.deepEqual(
      r.generated.map((g) => [g.prompt, g.background]),
      [
        ['a sks star on the beach', 'beach'],
        ['a sks star in the snow', 'snow'],
      ].map(([p, b]) => [p!.replace('star', r.subject.shape), b]),
    );
    assert.equal(runNumbers(r).images, 2);
    assert.equal(r.masks.length, 4, 'the masks are still made and scored');
  } finally {
    probe.dispose();
  }
});
