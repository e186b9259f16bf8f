// p3s dreambench's driver on the shipped toy models and one DreamBench subject: every method's
// row is the mean of its subjects' eval.json, P3S trains on a centre click, a second run does no
// work and gives the same table, a training with a checkpoint but no finished record resumes, and
// bad methods and subjects are refused by name.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setNumThreads } from '../../src/engine/index.js';
import { DreamBenchError } from '../../src/eval/dreambench.js';
import {
  runDreamBench,
  type DreamBenchResult,
  type DreamBenchStage,
} from '../../src/eval/dreambench_run.js';
import type { DreamBenchConfig } from '../../src/eval/dreambench_settings.js';
import { repoRoot } from '../helpers/paths.js';

setNumThreads(1);

const TOY = join(repoRoot(), 'models', 'toy');
const root = mkdtempSync(join(tmpdir(), 'p3s-dreambench-'));
const config: DreamBenchConfig = {
  baseModel: TOY,
  clipModel: join(TOY, 'image_encoder'),
  outDir: root,
  subjects: ['can'],
  methods: ['p3s', 'textual-inversion'],
  promptsPerSubject: 2,
  imagesPerPrompt: 1,
  sampleSteps: 3,
  maxSteps: 3,
};
let first: DreamBenchResult;

before(async () => {
  first = await runDreamBench(config);
});

after(() => rmSync(root, { recursive: true, force: true }));

const evalOf = (method: string) =>
  JSON.parse(readFileSync(join(root, 'can', method, 'eval.json'), 'utf8')) as {
    scores: Record<string, number | null>;
    counts: { images: number; prompts: number };
  };

test("each method's row is the mean of its subjects' scores, written to dreambench.json", () => {
  assert.deepEqual(
    first.methods.map((m) => m.method),
    ['p3s', 'textual-inversion'],
  );
  for (const m of first.methods) {
    const saved = evalOf(m.method);
    assert.deepEqual(m.perSubject.can, saved.scores);
    assert.deepEqual(m.mean, saved.scores, 'one subject: the mean is its scores');
    assert.equal(m.images, 2, '2 prompts × 1 image');
    assert.equal(saved.counts.prompts, 2);
    assert.ok(Math.abs(m.mean.clipI) <= 1 && Math.abs(m.mean.clipT) <= 1);
    assert.equal(m.mean.dino, null, 'no DINO model given: not measured, never 0');
  }
  const file = JSON.parse(readFileSync(join(root, 'dreambench.json'), 'utf8')) as {
    methods: unknown;
    missing: string[];
  };
  assert.deepEqual(file.methods, JSON.parse(JSON.stringify(first.methods)));
  assert.ok(!file.missing.includes('can'));
});

test('P3S trains on a positive click at the centre of the first photo; baselines on the photos', () => {
  const a = JSON.parse(readFileSync(join(root, 'can', 'p3s', 'annotation.json'), 'utf8')) as {
    classWord: string;
    images: { positive?: number[][] }[];
  };
  assert.equal(a.classWord, 'can');
  assert.deepEqual(a.images[0]!.positive, [[256, 256]], "the 512-px photo's centre");
  assert.ok(
    a.images.slice(1).every((im) => im.positive === undefined),
    'the rest propagate',
  );
  assert.ok(!existsSync(join(root, 'can', 'textual-inversion', 'annotation.json')));
});

test('a second run does no work and gives the same table', async () => {
  const stages: DreamBenchStage[] = [];
  const again = await runDreamBench(config, { onStage: (s) => stages.push(s) });
  assert.equal(stages.length, 6, '2 methods × train, generate, score');
  assert.ok(stages.every((s) => s.skipped));
  assert.deepEqual(again, first);
});

test('a training with a checkpoint but no finished record resumes from it, same scores', async () => {
  const run = join(root, 'can', 'textual-inversion');
  const checkpoints = join(run, 'train', 'checkpoints');
  const written = () =>
    readdirSync(checkpoints).map((f) => [f, statSync(join(checkpoints, f)).mtimeMs]);
  const before = written();
  rmSync(join(run, 'run.json'));
  rmSync(join(run, 'eval.json'));
  const stages: DreamBenchStage[] = [];
  const again = await runDreamBench(config, { onStage: (s) => stages.push(s) });
  const ti = stages.filter((s) => s.method === 'textual-inversion');
  assert.deepEqual(
    ti.map((s) => [s.stage, s.skipped]),
    [
      ['train', false],
      ['generate', false],
      ['score', false],
    ],
  );
  assert.ok(before.length > 0);
  assert.deepEqual(written(), before, 'resumed at its last step: no checkpoint rewritten');
  assert.deepEqual(again.methods[1], first.methods[1]);
});

test('an unknown method or subject, or a subject without photos, is refused by name', async () => {
  await assert.rejects(runDreamBench({ ...config, methods: ['lora'] }), (e: unknown) => {
    assert.ok(e instanceof DreamBenchError);
    assert.match(e.message, /Unknown method "lora"; known: p3s, dreambooth/);
    return true;
  });
  await assert.rejects(
    runDreamBench({ ...config, subjects: ['dogg'] }),
    /Unknown DreamBench subject "dogg"; known: backpack/,
  );
  await assert.rejects(
    runDreamBench({ ...config, subjects: ['teapot'] }),
    /No photos of teapot: .*teapot does not exist/,
  );
});
