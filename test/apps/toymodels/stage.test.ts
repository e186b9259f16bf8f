// The toy models' resumable stage runner: the learning-rate schedule, bit-identical resume after
// a kill, refusal of a checkpoint written with other settings or for another model shape, and a
// NaN loss stopping the stage.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randn } from '../../../src/engine/creation.js';
import { Generator, manualSeed } from '../../../src/engine/random.js';
import { setNumThreads } from '../../../src/engine/index.js';
import { tidy } from '../../../src/engine/scope.js';
import { Linear } from '../../../src/nn/layers.js';
import { mseLoss } from '../../../src/nn/functional.js';
import { AdamW } from '../../../src/optim/adam.js';
import { CheckpointError } from '../../../src/training/checkpoint.js';
import {
  learningRate,
  readLossLog,
  runStage,
  TrainingDivergedError,
} from '../../../apps/toymodels/stage.js';

setNumThreads(1);

test('learning rate: linear warm-up, cosine decay from the peak to 10 %', () => {
  assert.equal(learningRate(0, 100, 1, 10), 0.1);
  assert.equal(learningRate(9, 100, 1, 10), 1);
  assert.ok(Math.abs(learningRate(10, 100, 1, 10) - 1) < 1e-12);
  assert.ok(Math.abs(learningRate(55, 100, 1, 10) - 0.55) < 1e-12);
  assert.ok(Math.abs(learningRate(100, 100, 1, 10) - 0.1) < 1e-12);
});

/** A regression stage whose data and noise come from the step and the generator. */
async function regression(
  dir: string,
  steps: number,
  killAt = -1,
  settings = {},
  features = 4,
  settingDefaults: Record<string, unknown> = {},
) {
  manualSeed(5);
  const model = new Linear(features, 2);
  const optimizer = new AdamW(model.parameters(), { lr: 0.05 });
  const generator = new Generator(9);
  try {
    await runStage({
      name: 'test',
      dir,
      steps,
      checkpointEvery: 3,
      settings: { steps, ...settings },
      settingDefaults,
      model,
      optimizer,
      generator,
      lr: 0.05,
      warmup: 2,
      progress: false,
      step(step) {
        if (step === killAt) throw new Error('killed');
        optimizer.zeroGrad();
        const loss = tidy(() => {
          const x = randn([8, features], { generator });
          const target = x.slice(1, 0, 2).mul(step + 1);
          const l = mseLoss(model.forward(x), target);
          l.backward();
          return l.item();
        });
        optimizer.step();
        return loss;
      },
    });
    return model.weight.toArray() as number[];
  } finally {
    optimizer.dispose();
    model.dispose();
  }
}

test('a killed stage resumes to the same weights as an uninterrupted one', async () => {
  const root = mkdtempSync(join(tmpdir(), 'p3s-stage-'));
  try {
    const straight = await regression(join(root, 'a'), 10);
    await assert.rejects(regression(join(root, 'b'), 10, 7), /killed/);
    // Steps 6 ran after the checkpoint at 6 and are logged; the rerun must drop and redo them.
    const resumed = await regression(join(root, 'b'), 10);
    assert.deepEqual(resumed, straight);
    const log = readLossLog(join(root, 'b'));
    assert.deepEqual(
      log.map((l) => l.step),
      [...Array(10).keys()],
    );
    assert.deepEqual(
      log.map((l) => l.loss),
      readLossLog(join(root, 'a')).map((l) => l.loss),
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a checkpoint written with other settings is refused', async () => {
  const root = mkdtempSync(join(tmpdir(), 'p3s-stage-'));
  try {
    await regression(root, 4);
    await assert.rejects(regression(root, 4, -1, { lr: 1 }), CheckpointError);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('an option added later resumes older checkpoints at its default value, not at another', async () => {
  const root = mkdtempSync(join(tmpdir(), 'p3s-stage-'));
  const defaults = { extra: 0 };
  try {
    const straight = await regression(join(root, 'a'), 6);
    // written before the option existed, killed after the checkpoint at step 3
    await assert.rejects(regression(join(root, 'b'), 6, 4), /killed/);
    const resumed = await regression(join(root, 'b'), 6, -1, { extra: 0 }, 4, defaults);
    assert.deepEqual(resumed, straight);
    // and the other way round: written with the option at its default, resumed without it
    await assert.rejects(regression(join(root, 'c'), 6, 4, { extra: 0 }, 4, defaults), /killed/);
    assert.deepEqual(await regression(join(root, 'c'), 6, -1, {}, 4, defaults), straight);
    await assert.rejects(regression(join(root, 'b'), 6, -1, { extra: 2 }, 4, defaults), (err) => {
      return err instanceof CheckpointError && /other settings/.test(err.message);
    });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a checkpoint of a model of another shape says how to start the stage afresh', async () => {
  const root = mkdtempSync(join(tmpdir(), 'p3s-stage-'));
  try {
    await regression(root, 4);
    await assert.rejects(
      regression(root, 4, -1, {}, 5),
      (err: unknown) =>
        err instanceof CheckpointError &&
        /mis-shaped keys: weight/.test(err.message) &&
        err.message.includes(`delete ${root} to start the test stage afresh`),
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a NaN loss stops the stage with the step and the checkpoint folder', async () => {
  const root = mkdtempSync(join(tmpdir(), 'p3s-stage-'));
  manualSeed(1);
  const model = new Linear(2, 1);
  const optimizer = new AdamW(model.parameters());
  try {
    await assert.rejects(
      runStage({
        name: 'nan',
        dir: root,
        steps: 5,
        checkpointEvery: 1,
        settings: {},
        model,
        optimizer,
        generator: new Generator(0),
        lr: 1e-3,
        warmup: 1,
        progress: false,
        step: (step) => (step === 2 ? NaN : 1),
      }),
      (err: unknown) =>
        err instanceof TrainingDivergedError &&
        /NaN at step 3/.test(err.message) &&
        err.message.includes(root),
    );
    assert.equal(readLossLog(root).length, 2);
  } finally {
    optimizer.dispose();
    model.dispose();
    rmSync(root, { recursive: true, force: true });
  }
});
