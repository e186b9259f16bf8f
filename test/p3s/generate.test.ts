// P3S generation on the tiny fixtures: deterministic for a seed, PNGs that carry their
// parameters, plain Stable Diffusion when the injection weight is zero, prompt files and
// warnings, and clear errors for a wrong base model or adapter.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readImage, readPngText, writePng } from '../../src/io/image.js';
import { setNumThreads } from '../../src/engine/index.js';
import { makeSubjectReferenceSet } from '../../src/toyworld/index.js';
import { writeTinyUNet } from '../../apps/testing/tiny_models.js';
import { StableDiffusionPipeline } from '../../src/pipelines/stable_diffusion.js';
import { trainP3S } from '../../src/p3s/train.js';
import { generateP3S, type GenerateP3SConfig } from '../../src/p3s/generate.js';
import { readAdapter } from '../../src/p3s/adapter/adapter_io.js';
import { randn } from '../../src/engine/creation.js';
import { Generator } from '../../src/engine/random.js';
import { fillPrompt, mentionsIdentifier } from '../../src/p3s/prompts.js';
import { fixturePath } from '../helpers/paths.js';

setNumThreads(1); // see train.test.ts

const BASE = fixturePath('tiny-sd');
const CLIP = fixturePath('tiny-clip-vision');
let root = '';
let adapterPath = '';

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'p3s-generate-'));
  const refDir = join(root, 'refs');
  mkdirSync(refDir);
  const set = makeSubjectReferenceSet(4, { count: 2, size: 64 });
  for (let i = 0; i < set.images.length; i++) {
    const { scene } = set.images[i]!;
    await writePng(join(refDir, `ref-${i}.png`), {
      width: scene.size,
      height: scene.size,
      data: scene.rgb,
    });
  }
  const trained = await trainP3S({
    baseModel: BASE,
    clipModel: CLIP,
    outDir: join(root, 'train'),
    references: [refDir],
    classWord: 'toy',
    maxSteps: 3,
    learningRate: 1e-2,
    checkpointEvery: 0,
    evaluate: false,
  });
  adapterPath = trained.adapterPath;
});

after(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

function config(outDir: string, over: Partial<GenerateP3SConfig> = {}): GenerateP3SConfig {
  return {
    baseModel: BASE,
    adapter: adapterPath,
    outDir: join(root, outDir),
    prompts: ['a {} on the beach'],
    seeds: [3, 4],
    steps: 4,
    ...over,
  };
}

function maxPixelDiff(a: Uint8Array, b: Uint8Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

test('generation is deterministic for a seed and writes PNGs that carry their parameters', async () => {
  const first = await generateP3S(config('run1'));
  const again = await generateP3S(config('run2'));
  assert.equal(first.images.length, 2);
  for (let i = 0; i < 2; i++) {
    assert.ok(
      Buffer.from(first.images[i]!.image.data).equals(Buffer.from(again.images[i]!.image.data)),
      `image ${i} differs between two runs with the same seed`,
    );
  }
  assert.ok(
    maxPixelDiff(first.images[0]!.image.data, first.images[1]!.image.data) > 0,
    'seeds 3 and 4 gave the same image',
  );
  const img = first.images[0]!;
  assert.equal(img.prompt, 'a sks toy on the beach');
  assert.equal(img.image.width, 64);
  const text = await readPngText(img.path);
  assert.equal(text.prompt, 'a sks toy on the beach');
  assert.equal(text.seed, '3');
  assert.equal(text.steps, '4');
  assert.equal(text.guidance_scale, '7.5');
  assert.equal(text.scheduler, 'DDIM');
  assert.equal(text.negative_prompt, '');
  assert.equal(text.lambda, '0.2');
  assert.equal(text.weight_curve, 'paper:0.5,0.2,2');
  assert.equal(text.injection_mode, 'decoupled');
  assert.equal(text.base_model, 'tiny-sd');
  assert.equal(text.base_fingerprint, first.metadata.baseFingerprint);
  assert.equal(text.adapter_training_steps, '3');
  assert.match(text.reference!, /^0 \(ref-0\.png\)$/);
  // the file on disk is the image returned
  const back = await readImage(img.path);
  assert.ok(Buffer.from(back.data).equals(Buffer.from(img.image.data)));
  const sheet = await readImage(first.contactSheetPath!);
  assert.deepEqual([sheet.width, sheet.height], [64 * 2 + 2, 64]);
  assert.deepEqual(first.warnings, []);
});

test('with ε_t = 0 the copy injects nothing: the images are plain Stable Diffusion (CFG on both halves)', async () => {
  const seeds = [7];
  const off = await generateP3S(
    config('off', { seeds, weightCurve: 'fixed:0', negativePrompt: 'blurry' }),
  );
  const on = await generateP3S(config('on', { seeds, negativePrompt: 'blurry' }));
  const pipe = StableDiffusionPipeline.fromPretrained(BASE, { scheduler: 'ddim' });
  try {
    const plain = await pipe.generate({
      prompt: 'a sks toy on the beach',
      negativePrompt: 'blurry',
      steps: 4,
      guidanceScale: 7.5,
      seed: 7,
    });
    plain.latents.dispose();
    const same = maxPixelDiff(off.images[0]!.image.data, plain.images[0]!.data);
    // the frozen U-Net's last cross-attention runs as an explicit softmax (to capture M_o)
    // instead of the fused kernel: float rounding, at most one 8-bit level
    assert.ok(same <= 1, `ε_t = 0 differs from plain SD by ${same} levels`);
    const changed = maxPixelDiff(on.images[0]!.image.data, plain.images[0]!.data);
    assert.ok(changed > 2, `the trained adapter changed the image by only ${changed} levels`);
  } finally {
    pipe.dispose();
  }
});

test('--latent-bias adds s × the reference latent to the starting noise (Sec. III), and refuses s < 0', async () => {
  const seeds = [7];
  const s = 0.5;
  // ε_t = 0 leaves the base model, so the image is plain SD from x_T = ε + s·I'_0
  const biased = await generateP3S(
    config('bias', { seeds, weightCurve: 'fixed:0', latentBias: s, reference: 0 }),
  );
  const unbiased = await generateP3S(config('nobias', { seeds, weightCurve: 'fixed:0' }));
  assert.equal((await readPngText(biased.images[0]!.path)).latent_bias, '0.5');
  const { condition } = readAdapter(adapterPath);
  const pipe = StableDiffusionPipeline.fromPretrained(BASE, { scheduler: 'ddim' });
  const start = randn([1, 4, 8, 8], { generator: new Generator(7) }).add(
    condition.latent.slice(0, 0, 1).mul(s),
  );
  try {
    const plain = await pipe.generate({
      prompt: 'a sks toy on the beach',
      steps: 4,
      guidanceScale: 7.5,
      latents: start,
    });
    plain.latents.dispose();
    const same = maxPixelDiff(biased.images[0]!.image.data, plain.images[0]!.data);
    assert.ok(same <= 1, `latent bias differs from SD started at ε + s·I' by ${same} levels`);
    const moved = maxPixelDiff(biased.images[0]!.image.data, unbiased.images[0]!.image.data);
    assert.ok(moved > 2, `a latent bias of ${s} changed the image by only ${moved} levels`);
  } finally {
    pipe.dispose();
    start.dispose();
    condition.latent.dispose();
    condition.clipStates.dispose();
  }
  await assert.rejects(
    generateP3S(config('negative-bias', { seeds, latentBias: -1 })),
    /non-negative latent bias/,
  );
});

test('--subject-guidance leaves the unconditional half to the base model and is recorded', async () => {
  const seeds = [7];
  const both = await generateP3S(config('guided-both', { seeds, weightCurve: 'fixed:1' }));
  const subject = await generateP3S(
    config('guided-subject', { seeds, weightCurve: 'fixed:1', subjectGuidance: true }),
  );
  assert.equal((await readPngText(both.images[0]!.path)).subject_guidance, 'false');
  assert.equal((await readPngText(subject.images[0]!.path)).subject_guidance, 'true');
  const moved = maxPixelDiff(both.images[0]!.image.data, subject.images[0]!.image.data);
  assert.ok(moved > 2, `subject guidance changed the image by only ${moved} levels`);
  // without injection both halves are the base model: the option changes nothing
  const offBoth = await generateP3S(config('off-both', { seeds, weightCurve: 'fixed:0' }));
  const offSubject = await generateP3S(
    config('off-subject', { seeds, weightCurve: 'fixed:0', subjectGuidance: true }),
  );
  assert.ok(
    Buffer.from(offBoth.images[0]!.image.data).equals(
      Buffer.from(offSubject.images[0]!.image.data),
    ),
  );
});

test('prompt files fill {} and [V]; a prompt without the identifier warns but still generates', async () => {
  const file = join(root, 'prompts.txt');
  writeFileSync(
    file,
    '# DreamBench-style prompts\n{} in the snow\n\na [V] toy on a table\na red cube\n',
  );
  const warnings: string[] = [];
  const result = await generateP3S(
    config('file', {
      prompts: undefined,
      promptFile: file,
      seeds: [1],
      steps: 2,
      onWarning: (w) => warnings.push(w),
    }),
  );
  assert.deepEqual(
    result.images.map((i) => i.prompt),
    ['sks toy in the snow', 'a sks toy on a table', 'a red cube'],
  );
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /"a red cube" does not contain the identifier "sks"/);
  assert.deepEqual(result.warnings, warnings);
  assert.equal(readdirSync(join(root, 'file')).filter((f) => f.endsWith('.png')).length, 4);
});

test('an adapter for another base model, a missing or foreign file and no prompts fail clearly', async () => {
  // a base model that differs only in its U-Net weights
  const other = join(root, 'other-base');
  mkdirSync(other);
  for (const name of readdirSync(BASE)) {
    if (name !== 'unet') symlinkSync(join(BASE, name), join(other, name));
  }
  writeTinyUNet(join(other, 'unet'), { seed: 99 });
  await assert.rejects(
    generateP3S(config('x', { baseModel: other })),
    /adapter\.safetensors was trained on base model "tiny-sd" \(fingerprint [0-9a-f]{16}\), but other-base has fingerprint [0-9a-f]{16}/,
  );
  await assert.rejects(
    generateP3S(config('x', { adapter: join(root, 'nope.safetensors') })),
    /Adapter file not found: .*nope\.safetensors/,
  );
  await assert.rejects(
    generateP3S(
      config('x', { adapter: join(BASE, 'unet', 'diffusion_pytorch_model.safetensors') }),
    ),
    /is not a p3s adapter/,
  );
  await assert.rejects(
    generateP3S(config('x', { baseModel: join(root, 'no-such-base') })),
    /Base model folder not found/,
  );
  await assert.rejects(generateP3S(config('x', { prompts: [] })), /Expected at least one prompt/);
  await assert.rejects(generateP3S(config('x', { reference: 5 })), /reference index in \[0, 2\)/);
});

test('prompt templates and the identifier check', () => {
  assert.equal(fillPrompt('a {} on the beach', 'sks', 'dog'), 'a sks dog on the beach');
  assert.equal(fillPrompt('a [V] dog swimming', 'sks', 'dog'), 'a sks dog swimming');
  assert.equal(fillPrompt('[V] and {}', 'sks', 'dog'), 'sks dog and sks dog');
  assert.equal(fillPrompt('a photo of a dog', 'sks', 'dog'), 'a photo of a dog');
  assert.ok(mentionsIdentifier('a sks dog', 'sks'));
  assert.ok(mentionsIdentifier('sks, running', 'sks'));
  assert.ok(!mentionsIdentifier('a sksdog', 'sks'));
  assert.ok(!mentionsIdentifier('a dog', 'sks'));
});
