// An experiment run in a child process (how `p3s demo` runs its two experiments side by side)
// gives what the same experiment gives in this process, and a failing child rejects with its
// own error instead of hanging.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
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
