// The shared training loop on a one-layer model: resume after a stop ends bit-identical, a
// checkpoint of another run is refused (older checkpoints resume at a setting's older default),
// the loss log keeps each step once, a non-finite loss stops the run before any update, and an
// abort writes a checkpoint first. Nothing unfit is saved; a damaged or unfit newest checkpoint
// gives way to the one before it; a branch continues a checkpoint with other settings as a new
// run; a failed write names its file.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randn } from '../../src/engine/creation.js';
import { Generator, manualSeed } from '../../src/engine/random.js';
import { setNumThreads } from '../../src/engine/index.js';
import { Linear } from '../../src/nn/layers.js';
import { Adam } from '../../src/optim/adam.js';
import { tidy } from '../../src/engine/scope.js';
import { noGrad } from '../../src/engine/autograd.js';
import * as ops from '../../src/engine/ops.generated.js';
import { SafetensorsFile, saveSafetensors } from '../../src/io/safetensors.js';
import {
  listCheckpoints,
  latestCheckpoint,
  readCheckpointInfo,
} from '../../src/training/checkpoint.js';
import {
  RunFolderError,
  TrainingDivergedError,
  TrainingInterruptedError,
} from '../../src/training/errors.js';
import { firstNonFinite } from '../../src/engine/finite.js';
import { identityDigest } from '../../src/training/identity.js';
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

/** The run's checkpoints: their steps, and whether every tensor of each is finite. */
function savedCheckpoints(dir: string): { steps: number[]; finite: boolean } {
  const all = listCheckpoints(join(dir, 'checkpoints'));
  const finite = all.every(({ path }) => {
    const file = SafetensorsFile.open(path);
    return firstNonFinite(file.loadAll((k) => k !== 'generator/state')) === null;
  });
  return { steps: all.map((c) => c.step), finite };
}

test('weights a step left unfit are never saved: the run stops and keeps the last good checkpoint', async () => {
  // after step 3's update, before its checkpoint: a weight, a moment, or only the probe goes bad
  const spoilers: Record<string, (run: ReturnType<typeof regression>) => void> = {
    'weight.*holds a NaN or an infinity': (run) =>
      void noGrad(() => ops.fill_(run.model.weight, NaN)),
    "the optimizer's 0\\.exp_avg_sq holds a NaN or an infinity": (run) =>
      void noGrad(() =>
        ops.fill_(run.loop.state.optimizer.stateDict().tensors.get('0.exp_avg_sq')!, Infinity),
      ),
    'the weights give a loss of NaN on the probe batch': () => void (probeBroken = true),
  };
  let probeBroken = false;
  for (const [problem, spoil] of Object.entries(spoilers)) {
    probeBroken = false;
    const dir = join(root, `unfit-${Object.keys(spoilers).indexOf(problem)}`);
    const run = regression(dir, {
      checkpointEvery: 1,
      probeLoss: () => (probeBroken ? NaN : 0.5),
      divergenceAdvice: (last) => `Branch from ${last}.`,
    });
    run.loop.observers = [{ onStep: (r) => void (r.step === 3 && spoil(run)) }];
    await assert.rejects(runTraining(run.loop), (e: unknown) => {
      assert.ok(e instanceof TrainingDivergedError);
      assert.equal(e.step, 3);
      assert.match(
        e.message,
        new RegExp(
          `Regression diverged by step 3: ${problem}\\. These weights were not saved; the last good checkpoint is .*checkpoint-000002\\.safetensors \\(step 2\\)\\. Branch from .*checkpoint-000002\\.safetensors\\.`,
        ),
      );
      assert.ok(e.lastCheckpoint!.endsWith('checkpoint-000002.safetensors'));
      return true;
    });
    assert.deepEqual(savedCheckpoints(dir), { steps: [1, 2], finite: true }, problem);
  }
});

/** Cuts a file to half its size, as a full disk or an interrupted copy leaves it. */
function truncateHalf(path: string): void {
  truncateSync(path, Math.floor(statSync(path).size / 2));
}

/** The process id of a process that has exited. */
const deadPid = (): number => spawnSync(process.execPath, ['-e', '']).pid!;

test('a damaged newest checkpoint gives way to the one before it, with a warning naming it', async () => {
  const whole = regression(join(root, 'fallback-whole'));
  await runTraining(whole.loop);

  const dir = join(root, 'fallback');
  await assert.rejects(
    runTraining(
      regression(dir, {
        checkpointEvery: 1,
        keepCheckpoints: 3,
        observers: [{ onStep: (r) => void (r.step === 4 && assert.fail('killed')) }],
      }).loop,
    ),
    /killed/,
  );
  const checkpoints = join(dir, 'checkpoints');
  const newest = latestCheckpoint(checkpoints)!;
  assert.match(newest, /checkpoint-000003/);
  truncateHalf(newest);
  // the step-4 line was logged before the kill, and a fifth line was torn by it
  appendFileSync(join(dir, 'loss.jsonl'), '{"step":5,"lo');
  // without the fallback (a checkpoint named by the user) the damage is an error naming it
  await assert.rejects(
    runTraining(regression(dir).loop),
    /checkpoint-000003\.safetensors: tensor .* \(truncated file\?\)/,
  );
  // temporary files of writes killed midway: gone when the run starts, if their process is
  const stale = join(checkpoints, `checkpoint-000004.safetensors.tmp-${deadPid()}`);
  const live = join(checkpoints, `checkpoint-000009.safetensors.tmp-${process.pid}`);
  for (const f of [stale, live]) writeFileSync(f, 'partial');
  const notes: string[] = [];
  const resumed = regression(dir, {
    resumeFallback: true,
    observers: [{ onLog: (m) => notes.push(m) }],
  });
  const outcome = await runTraining(resumed.loop);
  assert.equal(outcome.startStep, 2);
  assert.match(outcome.resumedFrom!, /checkpoint-000002/);
  assert.ok(
    notes.some((n) =>
      /Warning: cannot resume from .*checkpoint-000003\.safetensors \(checkpoint-000003\.safetensors: .*truncated/.test(
        n,
      ),
    ),
    notes.join('\n'),
  );
  assert.ok(
    notes.some((n) => n.includes(`Removed ${stale}`)),
    notes.join('\n'),
  );
  assert.equal(existsSync(stale), false);
  assert.equal(existsSync(live), true);
  assert.equal(existsSync(`${newest}.abandoned`), true, 'the damaged checkpoint is set aside');
  assert.deepEqual(weights(resumed.model), weights(whole.model));
  assert.deepEqual(
    readLossLog(join(dir, 'loss.jsonl')).map((l) => l.step),
    [1, 2, 3, 4, 5, 6],
  );
});

test('a checkpoint whose weights are not finite (written before the check) is skipped on resume', async () => {
  const dir = join(root, 'nan-checkpoint');
  const first = regression(dir, { totalSteps: 4, checkpointEvery: 2 });
  await runTraining(first.loop);
  // as an older p3s wrote it: checkpoint 4 with NaN weights
  const path = latestCheckpoint(join(dir, 'checkpoints'))!;
  const file = SafetensorsFile.open(path);
  const tensors = file.loadAll();
  noGrad(() => ops.fill_(tensors.get('adapter/weight')!, NaN));
  saveSafetensors(path, tensors, { ...file.metadata });
  const notes: string[] = [];
  const outcome = await runTraining(
    regression(dir, { resumeFallback: true, observers: [{ onLog: (m) => notes.push(m) }] }).loop,
  );
  assert.equal(outcome.startStep, 2);
  assert.ok(
    notes.some((n) =>
      /checkpoint-000004\.safetensors holds unfit weights: weight holds a NaN/.test(n),
    ),
    notes.join('\n'),
  );
});

test('a branch continues a checkpoint with other settings as a new run that records where it started', async () => {
  const dir = join(root, 'branch');
  const identity = (lr: number) => ({ values: { lr, data: 'd1' }, fixed: ['data'] });
  await runTraining(regression(dir, { totalSteps: 4, identity: identity(1e-2) }).loop);
  const checkpoints = join(dir, 'checkpoints');
  const [two, four] = listCheckpoints(checkpoints).map((c) => c.path);
  const parent = readCheckpointInfo(two!).config;
  const branchFrom = (over: Partial<TrainingLoop>) =>
    runTraining(regression(dir, { branch: true, resumeFrom: four!, ...over }).loop);

  await assert.rejects(
    branchFrom({ identity: identity(1e-2) }),
    /Nothing to branch: this run's settings are those of checkpoint-000004\.safetensors/,
  );
  await assert.rejects(
    branchFrom({ identity: { values: { lr: 1e-3, data: 'd2' }, fixed: ['data'] } }),
    /Cannot branch from checkpoint-000004\.safetensors: a branch keeps the models and the data, but the run differs in data \(checkpoint "d1", now "d2"\)/,
  );
  // branched from the older checkpoint: the newer one is set aside, never mixed with the branch's
  const branched = await branchFrom({ identity: identity(1e-3), resumeFrom: two!, totalSteps: 6 });
  const lineage = {
    checkpoint: two!,
    step: 2,
    run: identityDigest(parent),
    changed: ['lr (checkpoint 0.01, now 0.001)'],
  };
  assert.deepEqual(parent, { lr: 1e-2, data: 'd1' });
  assert.equal(branched.startStep, 2);
  assert.deepEqual(branched.lineage, lineage);
  assert.ok(existsSync(`${four!}.abandoned`));
  assert.deepEqual(readCheckpointInfo(latestCheckpoint(checkpoints)!).config, {
    lr: 1e-3,
    data: 'd1',
    branched_from: lineage,
  });
  // resumed plainly, the branch keeps its lineage; its parent's settings are refused
  const resumed = await runTraining(
    regression(dir, { identity: identity(1e-3), totalSteps: 8 }).loop,
  );
  assert.equal(resumed.startStep, 6);
  assert.deepEqual(resumed.lineage, lineage);
  await assert.rejects(
    runTraining(regression(dir, { identity: identity(1e-2), totalSteps: 10 }).loop),
    /differs in lr \(checkpoint 0\.001, now 0\.01\)/,
  );
});

test('a write that fails names its file and what to do', async () => {
  const dir = join(root, 'in-the-way');
  mkdirSync(join(dir, 'checkpoints', 'checkpoint-000002.safetensors'), { recursive: true });
  await assert.rejects(runTraining(regression(dir, { resumeFrom: null }).loop), (e: unknown) => {
    assert.ok(e instanceof RunFolderError);
    assert.match(
      e.message,
      /^Cannot write the checkpoint .*checkpoints\/checkpoint-000002\.safetensors: a folder is in the way of the file: move it away or give another output folder \(EISDIR\)$/,
    );
    return true;
  });
});
