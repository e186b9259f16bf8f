// selectiveQuality's bookkeeping, with a stand-in runner: which runs it asks for, and how it
// averages their results over subjects (the experiments themselves are tested in selective.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { selectiveQuality } from '../../../apps/toymodels/evaluate.js';
import type { ExperimentResult } from '../../../apps/toymodels/experiment.js';
import type { ChildExperimentOptions } from '../../../apps/toymodels/experiment_process.js';
import { TOY_RECIPE } from '../../../apps/toymodels/recipes.js';

/** A result whose shares encode the run: subject 10 + s with the click gives fidelity (s + 1) / 8. */
function fakeResult(o: ChildExperimentOptions): ExperimentResult {
  const s = o.subjectSeed - 10;
  const fidelity = o.negativePoint ? (s + 1) / 8 : 0;
  return {
    subjectSeed: o.subjectSeed,
    subject: { shape: 'star', colour: 'red', pattern: s === 0 ? 'stripes' : 'solid' },
    fidelity,
    lookalikeRate: o.negativePoint ? 0 : 0.5,
    backgroundAccuracy: o.negativePoint ? 0.75 : 0.25,
    colourFidelity: 0.25 * s,
    lookalikeColourRate: 0.125,
    masks: [
      { subjectIoU: o.negativePoint ? 0.8 : 0.4 },
      { subjectIoU: o.negativePoint ? 0.6 : 0.2 },
    ],
    generated: new Array(16).fill(null),
  } as unknown as ExperimentResult;
}

test('every subject runs with and without the click, and the shares are averaged over subjects', async () => {
  const asked: ChildExperimentOptions[] = [];
  const progress: [number, number][] = [];
  const q = await selectiveQuality('/models', '/work', {
    subjects: [10, 11, 12],
    maskLayer: 0,
    maskDense: 4,
    recipe: TOY_RECIPE,
    run: async (o) => {
      asked.push(o);
      await new Promise((resolve) => setImmediate(resolve));
      return fakeResult(o);
    },
    onRunDone: (done, total) => progress.push([done, total]),
  });
  assert.deepEqual(
    asked.map((o) => [o.subjectSeed, o.negativePoint, o.outDir, o.steps, o.maskDense]),
    [10, 11, 12].flatMap((s) => [
      [s, true, `/work/subject-${s}/selective`, TOY_RECIPE.steps, 4],
      [s, false, `/work/subject-${s}/baseline`, TOY_RECIPE.steps, 4],
    ]),
  );
  assert.ok(
    asked.every(
      (o) =>
        o.modelFolder === '/models' &&
        o.learningRate === TOY_RECIPE.learningRate &&
        o.train?.injectionMode === TOY_RECIPE.injectionMode,
    ),
  );
  assert.deepEqual(progress.at(-1), [6, 6]);
  const perSubject = (n: typeof q.withNegative, key: 'fidelity' | 'seed' | 'subject') =>
    n.perSubject.map((p) => p[key]);
  assert.deepEqual(perSubject(q.withNegative, 'fidelity'), [1 / 8, 2 / 8, 3 / 8]);
  assert.deepEqual(perSubject(q.withNegative, 'seed'), [10, 11, 12]);
  assert.deepEqual(perSubject(q.withNegative, 'subject'), [
    'red striped star',
    'red star',
    'red star',
  ]);
  assert.equal(q.withNegative.fidelity, 2 / 8);
  assert.deepEqual(perSubject(q.positiveOnly, 'fidelity'), [0, 0, 0]);
  assert.equal(q.withNegative.contextAccuracy, 0.75);
  assert.equal(q.positiveOnly.contextAccuracy, 0.25);
  assert.deepEqual(q.subjectSeeds, [10, 11, 12]);
  assert.equal(q.subjects, 3);
  assert.equal(q.positiveOnly.lookalikeRate, 0.5);
  assert.equal(q.withNegative.colourFidelity, 0.25);
  assert.ok(Math.abs(q.withNegative.maskIoU - 0.7) < 1e-12);
  assert.ok(Math.abs(q.positiveOnly.maskIoU - 0.3) < 1e-12);
  assert.equal(q.imagesPerSubject, 16);
  assert.equal(q.steps, TOY_RECIPE.steps);
  assert.deepEqual(q.recipe, TOY_RECIPE);
});
