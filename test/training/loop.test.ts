// The shared training loop on a one-layer model: resume after a stop ends bit-identical, a
// checkpoint of another run is refused (older checkpoints resume at a setting's older default),
// the loss log keeps each step once, a non-finite loss stops the run before any update, and an
// abort writes a checkpoint first.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randn } from '../../src/engine/creation.js';
import { Generator, manualSeed } from '../../src/engine/random.js';
import { setNumThreads } from '../../src/engine/index.js';
import { Linear } from '../../src/nn/layers.js';
import { Adam } from '../../src/optim/adam.js';
import { tidy } from '../../src/engine/scope.js';
import { listCheckpoints, latestCheckpoint } from '../../src/training/checkpoint.js';
import { TrainingDivergedError, TrainingInterruptedError } from '../../src/training/errors.js';
import { readLossLog } from '../../src/training/loss_log.js';
import { runTraining, type TrainingLoop } from '../../src/training/loop.js';

setNumThreads(1);
let root = '';
before(() => (root = mkdtempSync(join(tmpdir(), 'p3s-loop-'))));
after(() => rmSync(root, { recursive: true, force: true }));

/** A regression run: y = x·w for a fixed w, noise drawn from the run's generator. */
function regression(
  dir: string,
  over: Partial<TrainingLoop> & { lossAt?: (step: number) => number | null } = {},
) {
  manualSeed(1);
  const model = new Linear(4, 1);
  const optimizer = new Adam(model.parameters(), { lr: 1e-2 });
  const generator = new Generator(3);
  const loop: TrainingLoop = {
    name: 'Regression',
    checkpointDir: join(dir, 'checkpoints'),
    logPath: join(dir, 'loss.jsonl'),
    totalSteps: 6,
    checkpointEvery: 2,
    keepCheckpoints: 2,
    identity: { values: { lr: 1e-2 } },
    state: { model, optimizer, generator },
    resumeFrom: latestCheckpoint(join(dir, 'checkpoints')),
    maxGradNorm: 1,
    computeGradients: (step) =>
      tidy(() => {
        const forced = over.lossAt?.(step);
        if (forced !== undefined && forced !== null) return { loss: forced };
        const x = randn([8, 4], { generator });
        const loss = model.forward(x).sub(x.sum(1, true)).square().mean();
        loss.backward();
        return { loss: loss.item() };
      }),
    ...over,
  };
  return { loop, model };
}

const weights = (m: Linear): number[] => [...(m.weight.toTypedArray() as Float32Array)];

test('stopped and resumed, a run ends with the weights of one that never stopped', async () => {
  const whole = regression(join(root, 'whole'));
  const a = await runTraining(whole.loop);
  assert.equal(a.step, 6);

  const dir = join(root, 'stopped');
  const controller = new AbortController();
  const first = regression(dir, {
    signal: controller.signal,
    observers: [{ onStep: (r) => void (r.step === 3 && controller.abort()) }],
  });
  await assert.rejects(runTraining(first.loop), (e: unknown) => {
    assert.ok(e instanceof TrainingInterruptedError);
    assert.match(e.message, /stopped at step 3 of 6; resume from .*checkpoint-000003/);
    return true;
  });
  const resumed = regression(dir);
  const b = await runTraining(resumed.loop);
  assert.equal(b.startStep, 3);
  assert.deepEqual(weights(resumed.model), weights(whole.model));
  assert.deepEqual(b.losses, a.losses.slice(3));
  // the log holds each step once, 1-based
  assert.deepEqual(
    readLossLog(join(dir, 'loss.jsonl')).map((l) => l.step),
    [1, 2, 3, 4, 5, 6],
  );
  assert.deepEqual(
    listCheckpoints(join(dir, 'checkpoints')).map((c) => c.step),
    [4, 6],
  );
});

test('a checkpoint of another run is refused; a setting it predates resumes at its older default', async () => {
  const dir = join(root, 'identity');
  await runTraining(regression(dir, { totalSteps: 2 }).loop);
  const other = regression(dir, {
    identity: { values: { lr: 1e-3 } },
    resumeAdvice: 'start afresh',
  });
  await assert.rejects(
    runTraining(other.loop),
    /differs in lr \(checkpoint 0\.01, now 0\.001\); start afresh/,
  );
  const newer = regression(dir, {
    identity: { values: { lr: 1e-2, beta: 0 }, olderDefaults: { beta: 0 } },
    totalSteps: 4,
  });
  assert.equal((await runTraining(newer.loop)).startStep, 2);
  const changed = regression(dir, {
    identity: { values: { lr: 1e-2, beta: 1 }, olderDefaults: { beta: 0 } },
    totalSteps: 6,
  });
  await assert.rejects(runTraining(changed.loop), /differs in beta \(checkpoint 0, now 1\)/);
});

test('a non-finite loss stops the run before any update, naming the last good checkpoint', async () => {
  const dir = join(root, 'nan');
  const run = regression(dir, {
    lossAt: (step) => (step === 2 ? NaN : null),
    divergenceAdvice: 'Lower the learning rate.',
  });
  let before: number[] = [];
  run.loop.observers = [{ onStep: (r) => void (r.step === 2 && (before = weights(run.model))) }];
  await assert.rejects(runTraining(run.loop), (e: unknown) => {
    assert.ok(e instanceof TrainingDivergedError);
    assert.equal(e.step, 3);
    assert.match(
      e.message,
      /Regression diverged at step 3: the loss is NaN\. Nothing of this step was applied; the last good checkpoint is .*checkpoint-000002\.safetensors \(step 2\)\. Lower the learning rate\./,
    );
    return true;
  });
  assert.deepEqual(weights(run.model), before);
});
