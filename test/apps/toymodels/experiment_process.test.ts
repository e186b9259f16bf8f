// An experiment run in a child process (how `p3s demo` runs its two experiments side by side)
// gives what the same experiment gives in this process, and a failing child rejects with its
// own error instead of hanging, and a child whose parent dies stops instead of running on.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setNumThreads } from '../../../src/engine/index.js';
import { AttributeProbe } from '../../../apps/toymodels/probe.js';
import { EXPERIMENT_CONTEXTS, runSubjectExperiment } from '../../../apps/toymodels/experiment.js';
import {
  runExperimentInChild,
  type ChildExperimentOptions,
} from '../../../apps/toymodels/experiment_process.js';
import { repoRoot } from '../../helpers/paths.js';

// Same thread count on both sides, so the two runs are bit-identical on CPU.
setNumThreads(1);
const MODELS = join(repoRoot(), 'models', 'toy');
let root = '';

before(() => {
  root = mkdtempSync(join(tmpdir(), 'p3s-child-'));
});
after(() => rmSync(root, { recursive: true, force: true }));

const tiny = (outDir: string): ChildExperimentOptions => ({
  modelFolder: MODELS,
  outDir,
  subjectSeed: 6,
  steps: 3,
  imagesPerPrompt: 1,
  sampleSteps: 3,
  maskLayer: 0,
  maskDense: 4,
});

test('an experiment in a child process matches the same experiment in this process', async () => {
  const trainSteps: number[] = [];
  const generated: number[] = [];
  const child = await runExperimentInChild(tiny(join(root, 'child')), {
    threads: 1,
    onTrainProgress: (p) => trainSteps.push(p.step),
    onGenerateProgress: (p) => {
      if (p.step === p.steps) generated.push(p.done);
    },
  });
  const probe = AttributeProbe.load(join(MODELS, 'probe'));
  try {
    const here = await runSubjectExperiment({ ...tiny(join(root, 'here')), probe });
    assert.deepEqual(child.losses, here.losses);
    assert.deepEqual(
      child.generated.map((g) => g.seen),
      here.generated.map((g) => g.seen),
    );
    assert.deepEqual(
      child.masks.map((m) => m.subjectIoU),
      here.masks.map((m) => m.subjectIoU),
    );
  } finally {
    probe.dispose();
  }
  assert.deepEqual(trainSteps, [1, 2, 3]);
  assert.equal(generated.at(-1), EXPERIMENT_CONTEXTS.length);
  assert.equal(child.generated.length, EXPERIMENT_CONTEXTS.length);
});

test('a child that fails rejects with its own error message', async () => {
  const missing = join(root, 'no-such-models');
  await assert.rejects(
    runExperimentInChild({ ...tiny(join(root, 'fails')), modelFolder: missing }, { threads: 1 }),
    (err: Error) => err.message.includes('no-such-models'),
  );
});

test('a child killed from outside rejects and names how it stopped', async () => {
  const controller = new AbortController();
  const run = runExperimentInChild(tiny(join(root, 'killed')), {
    threads: 1,
    signal: controller.signal,
    onTrainProgress: () => controller.abort(),
  });
  await assert.rejects(run, /abort/i);
});

test('a child whose parent dies stops quietly instead of running on', async () => {
  const outDir = join(root, 'orphan');
  // the parent kills itself at the first training step; the child's stderr is the parent's
  // (a CommonJS script: the child inherits the parent's flags, and --input-type would break it)
  const parent = `import(${JSON.stringify(CHILD_RUNNER)}).then(({ runExperimentInChild }) =>
  runExperimentInChild(${JSON.stringify({ ...tiny(outDir), steps: 200 })}, {
    threads: 1,
    onTrainProgress: () => process.kill(process.pid, 'SIGKILL'),
  }));`;
  const p = spawn(process.execPath, ['-e', parent], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  // 'close' comes once every holder of the pipe, the orphaned child included, has exited
  const signal = await new Promise<NodeJS.Signals | null>((resolve) =>
    p.on('close', (_code, sig) => resolve(sig)),
  );
  assert.equal(signal, 'SIGKILL');
  assert.doesNotMatch(stderr, /EPIPE|Unhandled/, stderr);
  assert.ok(!existsSync(join(outDir, 'generated')), 'the orphan went on to generate');
});

// The module under test as compiled beside this test.
const CHILD_RUNNER = new URL('../../../apps/toymodels/experiment_process.js', import.meta.url).href;
