// `p3s train --method`: a baseline runs on the shared trainer (checkpoints, the run's identity,
// its output file), a resume with another method is refused, the P3S-only settings are refused
// with another method, and the flag's values are checked.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setNumThreads } from '../../src/engine/index.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { trainP3S, type TrainP3SConfig } from '../../src/p3s/train.js';
import { resolveTrainSettings } from '../../src/p3s/train_settings.js';
import { writeToySubject } from '../helpers/toy_subject.js';
import { fixturePath } from '../helpers/paths.js';
import { StableDiffusionPipeline } from '../../src/pipelines/stable_diffusion.js';
import { AddedToken } from '../../src/baselines/added_token.js';
import { disposeAll } from '../../src/engine/scope.js';

setNumThreads(1);

let root = '';
let refDir = '';

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'p3s-train-method-'));
  ({ refDir } = await writeToySubject(root, 11, 2));
});

after(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

function config(outDir: string, over: Partial<TrainP3SConfig> = {}): TrainP3SConfig {
  return {
    baseModel: fixturePath('tiny-sd'),
    clipModel: fixturePath('tiny-clip-vision'),
    outDir,
    references: [refDir],
    classWord: 'toy',
    learningRate: 1e-2,
    checkpointEvery: 1,
    evaluate: false,
    ...over,
  };
}

test('--method textual-inversion trains on the shared trainer and writes learned_embeds', async () => {
  const out = join(root, 'ti');
  const logs: string[] = [];
  const result = await trainP3S(config(out, { method: 'textual-inversion', maxSteps: 2 }), {
    observers: [{ onLog: (m) => logs.push(m) }],
  });
  assert.equal(result.adapterPath, join(out, 'learned_embeds.safetensors'));
  assert.deepEqual(SafetensorsFile.open(result.adapterPath).keys(), ['<sks>']);
  assert.ok(logs.includes('Training prompt: "a <sks> toy"'), logs.join('\n'));
  assert.equal(
    readdirSync(join(out, 'checkpoints')).filter((f) => f.endsWith('.safetensors')).length,
    2,
  );
  assert.ok(!existsSync(join(out, 'adapter.safetensors')));
});

test('textual inversion steps whose every prompt was dropped reach no weight and are skipped, not fatal', async () => {
  // batch 1 with every prompt dropped: the empty prompt holds no token, so no loss reaches it
  const out = join(root, 'ti-dropped');
  const result = await trainP3S(
    config(out, { method: 'textual-inversion', maxSteps: 2, batchSize: 1, conditionDropout: 1 }),
  );
  assert.equal(result.steps, 2);
  assert.ok(result.losses.every((l) => Number.isFinite(l)));
  // unchanged: still the class word's embedding it started from
  const pipeline = StableDiffusionPipeline.fromPretrained(fixturePath('tiny-sd'));
  const init = AddedToken.fromClassWord(pipeline, '<sks>', 'toy');
  const saved = SafetensorsFile.open(result.adapterPath).tensor('<sks>');
  try {
    assert.deepEqual(saved.toArray(), init.embedding.toArray());
  } finally {
    disposeAll([saved, init.embedding]);
    pipeline.dispose();
  }
});

test('a resume with another method is refused, naming the method, before any class image', async () => {
  const out = join(root, 'switch');
  await trainP3S(config(out, { method: 'textual-inversion', maxSteps: 1 }));
  await assert.rejects(
    trainP3S(
      config(out, { method: 'custom-diffusion', maxSteps: 2, resume: true, classImages: 1 }),
    ),
    /method \(checkpoint "textual-inversion", now "custom-diffusion"\)/,
  );
  assert.equal(existsSync(join(out, 'class-images')), false, 'no class image was drawn');
});

test('P3S-only and DreamBooth-only settings and unknown methods are refused before any model is loaded', async () => {
  const out = join(root, 'bad');
  await assert.rejects(
    trainP3S(config(out, { method: 'dreambooth', sampleEvery: 1 })),
    /--sample-every is for --method p3s only/,
  );
  await assert.rejects(trainP3S(config(out, { method: 'lora' as never })), /method/);
  for (const method of ['p3s', 'textual-inversion'] as const)
    await assert.rejects(
      trainP3S(config(out, { method, trainTextEncoder: true })),
      new RegExp(`--train-text-encoder is for --method dreambooth only \\(now ${method}\\)`),
    );
});

test('a Custom Diffusion run resumes bit-identically and reuses its class images', async () => {
  const base = { method: 'custom-diffusion', classImages: 2, learningRate: 1e-3 } as const;
  const whole = await trainP3S(config(join(root, 'cd-whole'), { ...base, maxSteps: 3 }));
  const out = join(root, 'cd-resumed');
  await trainP3S(config(out, { ...base, maxSteps: 2 }));
  const logs: string[] = [];
  const resumed = await trainP3S(config(out, { ...base, maxSteps: 3, resume: true }), {
    observers: [{ onLog: (m) => logs.push(m) }],
  });
  assert.equal(resumed.resumedFrom, 2);
  assert.ok(
    logs.some((m) => /Class images: 2 .*\(0 drawn now\)/.test(m)),
    logs.join('\n'),
  );
  assert.deepEqual(tensorBytes(resumed.adapterPath), tensorBytes(whole.adapterPath));
});

/** Every tensor of a safetensors file, as bytes. */
function tensorBytes(path: string): Map<string, Buffer> {
  const file = SafetensorsFile.open(path);
  return new Map(
    file.keys().map((key) => {
      const a = file.tensor(key).toTypedArray();
      return [key, Buffer.from(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength))];
    }),
  );
}

test("each method's learning rate and steps unless given; --epochs given keeps the epochs", () => {
  const given = { baseModel: '-', clipModel: '-', outDir: '-' };
  const resolved = (over: Partial<TrainP3SConfig>) => {
    const s = resolveTrainSettings({ ...given, ...over });
    return [s.learningRate, s.maxSteps];
  };
  assert.deepEqual(resolved({}), [1e-5, null]);
  assert.deepEqual(resolved({ method: 'dreambooth' }), [5e-6, 800]);
  assert.deepEqual(resolved({ method: 'textual-inversion' }), [5e-4, 3000]);
  assert.deepEqual(
    resolved({ method: 'custom-diffusion', learningRate: 0.1, maxSteps: 7 }),
    [0.1, 7],
  );
  assert.deepEqual(resolved({ method: 'dreambooth', epochs: 3 }), [5e-6, null]);
});
