// A toy-model stage on the shared training loop: the learning-rate schedule it runs with,
// bit-identical resume after a kill (the loss log cut back to the checkpoint), a finished stage
// running nothing, refusal of a checkpoint written with other settings or for another model
// shape, older checkpoints resuming at a later setting's default, and a NaN loss stopping it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { full, randn } from '../../../src/engine/creation.js';
import { Generator, manualSeed } from '../../../src/engine/random.js';
import { setNumThreads } from '../../../src/engine/index.js';
import { Linear } from '../../../src/nn/layers.js';
import { mseLoss } from '../../../src/nn/functional.js';
import { AdamW } from '../../../src/optim/adam.js';
import { CheckpointError, listCheckpoints } from '../../../src/training/checkpoint.js';
import { TrainingDivergedError } from '../../../src/training/errors.js';
import { warmupCosine } from '../../../src/training/lr_schedule.js';
import {
  stageLossLog,
  trainStage,
  type StageResult,
  type StageSettings,
} from '../../../apps/toymodels/stage.js';

setNumThreads(1);

// A stage checkpoints every 100 steps: runs long enough to pass checkpoints.
const STEPS = 230;
const KILL_AT = 150;

test('learning rate: linear warm-up, cosine decay from the peak to 10 %', () => {
  const lr = warmupCosine(1, 10, 100);
  assert.equal(lr(0), 0.1);
  assert.equal(lr(9), 1);
  assert.ok(Math.abs(lr(10) - 1) < 1e-12);
  assert.ok(Math.abs(lr(55) - 0.55) < 1e-12);
  assert.ok(Math.abs(lr(100) - 0.1) < 1e-12);
});

interface Regression {
  killAt?: number;
  /** Settings besides the common ones (identity). */
  extra?: Record<string, unknown>;
  features?: number;
  olderDefaults?: Record<string, unknown>;
}

/** A regression stage whose data and noise come from the step and the generator. */
async function regression(
  dir: string,
  run: Regression = {},
): Promise<{ weights: number[]; result: StageResult }> {
  const { killAt = -1, extra = {}, features = 4 } = run;
  manualSeed(5);
  const model = new Linear(features, 2);
  const optimizer = new AdamW(model.parameters(), { lr: 0.05 });
  const generator = new Generator(9);
  const settings: StageSettings = {
    dir,
    seed: 5,
    steps: STEPS,
    batchSize: 8,
    lr: 0.05,
    progress: false,
    ...extra,
  };
  const { model: trained, result } = await trainStage({
    name: 'test',
    settings,
    olderDefaults: run.olderDefaults,
    warmup: 20,
    model,
    optimizer,
    generator,
    loss(step) {
      if (step === killAt) throw new Error('killed');
      const x = randn([8, features], { generator });
      const target = x.slice(1, 0, 2).mul(Math.sin(step / 10) + 1);
      return mseLoss(model.forward(x), target);
    },
  });
  try {
    return { weights: trained.weight.toArray() as number[], result };
  } finally {
    trained.dispose();
  }
}

const steps = (dir: string) => stageLossLog(dir).map((l) => l.step);
const losses = (dir: string) => stageLossLog(dir).map((l) => l.loss);

test('a killed stage resumes to the same weights as an uninterrupted one', async () => {
  const root = mkdtempSync(join(tmpdir(), 'p3s-stage-'));
  const [a, b] = [join(root, 'a'), join(root, 'b')];
  try {
    const straight = await regression(a);
    assert.equal(straight.result.ran, STEPS);
    await assert.rejects(regression(b, { killAt: KILL_AT }), /killed/);
    // Steps 101–150 ran after the checkpoint at 100 and are logged; the rerun drops and redoes them.
    assert.equal(stageLossLog(b).length, KILL_AT);
    const resumed = await regression(b);
    assert.deepEqual(resumed.weights, straight.weights);
    assert.equal(resumed.result.ran, STEPS - 100);
    assert.deepEqual(
      steps(b),
      [...Array(STEPS).keys()].map((i) => i + 1),
    );
    assert.deepEqual(losses(b), losses(a));
    // the whole stage's numbers, from the log: the last 50 losses, every step's seconds
    const last = losses(b).slice(-50);
    assert.equal(resumed.result.finalLoss, last.reduce((s, l) => s + l, 0) / last.length);
    const seconds = stageLossLog(b).reduce((s, l) => s + l.seconds, 0);
    assert.equal(resumed.result.totalSeconds, seconds);
    assert.deepEqual(
      listCheckpoints(b).map((c) => c.step),
      [200, STEPS],
      'the newest two checkpoints are kept',
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a finished stage runs no step and returns the same weights', async () => {
  const root = mkdtempSync(join(tmpdir(), 'p3s-stage-'));
  try {
    const first = await regression(root);
    const again = await regression(root);
    assert.equal(again.result.ran, 0);
    assert.deepEqual(again.weights, first.weights);
    assert.equal(again.result.finalLoss, first.result.finalLoss);
    assert.equal(stageLossLog(root).length, STEPS);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a checkpoint written with other settings is refused, saying how to start afresh', async () => {
  const root = mkdtempSync(join(tmpdir(), 'p3s-stage-'));
  try {
    await assert.rejects(regression(root, { killAt: KILL_AT }), /killed/);
    await assert.rejects(
      regression(root, { extra: { lr: 1 } }),
      (err: unknown) =>
        err instanceof CheckpointError &&
        /differs in lr \(checkpoint 0\.05, now 1\)/.test(err.message) &&
        err.message.includes(`delete ${root} to start the test stage afresh`),
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a setting added later resumes older checkpoints at its default value, not at another', async () => {
  const root = mkdtempSync(join(tmpdir(), 'p3s-stage-'));
  const [a, b, c] = ['a', 'b', 'c'].map((d) => join(root, d)) as [string, string, string];
  const olderDefaults = { extra: 0 };
  try {
    const straight = await regression(a);
    // written before the setting existed, killed after the checkpoint at step 100
    await assert.rejects(regression(b, { killAt: KILL_AT }), /killed/);
    const resumed = await regression(b, { extra: { extra: 0 }, olderDefaults });
    assert.equal(resumed.result.ran, STEPS - 100);
    assert.deepEqual(resumed.weights, straight.weights);
    // and the other way round: written with the setting at its default, resumed without it
    const killed = { killAt: KILL_AT, extra: { extra: 0 }, olderDefaults };
    await assert.rejects(regression(c, killed), /killed/);
    assert.deepEqual((await regression(c, { olderDefaults })).weights, straight.weights);
    // at another value, it is another run
    await assert.rejects(
      regression(b, { extra: { extra: 2 }, olderDefaults }),
      (err: unknown) => err instanceof CheckpointError && /differs in extra/.test(err.message),
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a checkpoint of a model of another shape says how to start the stage afresh', async () => {
  const root = mkdtempSync(join(tmpdir(), 'p3s-stage-'));
  try {
    await assert.rejects(regression(root, { killAt: KILL_AT }), /killed/);
    await assert.rejects(
      regression(root, { features: 5 }),
      (err: unknown) =>
        err instanceof CheckpointError &&
        /mis-shaped keys: weight/.test(err.message) &&
        err.message.includes(`delete ${root} to start the test stage afresh`),
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a NaN loss stops the stage with the step and its loss log', async () => {
  const root = mkdtempSync(join(tmpdir(), 'p3s-stage-'));
  manualSeed(1);
  const model = new Linear(2, 1);
  const optimizer = new AdamW(model.parameters());
  try {
    await assert.rejects(
      trainStage({
        name: 'nan',
        settings: { dir: root, seed: 0, steps: 5, batchSize: 1, lr: 1e-3, progress: false },
        warmup: 1,
        model,
        optimizer,
        generator: new Generator(0),
        loss: (step) => mseLoss(model.forward(full([1, 2], 1)), full([1, 1], step === 2 ? NaN : 0)),
      }),
      (err: unknown) =>
        err instanceof TrainingDivergedError &&
        err.step === 3 &&
        /the nan stage diverged at step 3: the loss is NaN/.test(err.message) &&
        err.message.includes(join(root, 'loss.jsonl')),
    );
    assert.deepEqual(steps(root), [1, 2]);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
