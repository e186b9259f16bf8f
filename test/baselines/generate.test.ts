// Generation with a baseline's output: each artifact is recognised by its content and put onto
// the base model as saved, prompts name the subject by the method's token, and a garbage or
// mismatched artifact fails with a clear message.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { noGrad } from '../../src/engine/autograd.js';
import { randn } from '../../src/engine/creation.js';
import { copy_ } from '../../src/engine/ops.generated.js';
import { setNumThreads } from '../../src/engine/index.js';
import { tidy } from '../../src/engine/scope.js';
import { readPngText } from '../../src/io/image.js';
import { loadSafetensors, saveSafetensors } from '../../src/io/safetensors.js';
import { StableDiffusionPipeline } from '../../src/pipelines/stable_diffusion.js';
import type { DDPMScheduler } from '../../src/schedulers/scheduling_ddpm.js';
import { createBaseline } from '../../src/baselines/index.js';
import { applyArtifact, baselineArtifact } from '../../src/baselines/artifact.js';
import { generateBaseline } from '../../src/baselines/generate.js';
import type { TrainingMethodName } from '../../src/p3s/train_settings.js';
import { fixturePath } from '../helpers/paths.js';

setNumThreads(1);

const BASE = fixturePath('tiny-sd');
let root = '';
const saved: Partial<Record<TrainingMethodName, string>> = {};

/** Builds the method, moves every trainable weight a little and saves what it writes. */
async function artifactOf(method: Exclude<TrainingMethodName, 'p3s'>): Promise<string> {
  const outDir = join(root, method);
  mkdirSync(outDir, { recursive: true });
  const pipeline = StableDiffusionPipeline.fromPretrained(BASE, { scheduler: 'ddpm' });
  const prompt = method === 'dreambooth' ? 'a sks toy' : 'a <sks> toy';
  const settings = { baseModel: BASE, outDir, seed: 0, backgroundLossWeight: 1 };
  const m = await createBaseline({
    ...{ method, pipeline, prompt, identifier: 'sks', classWord: 'toy', resolution: 64 },
    scheduler: pipeline.scheduler as DDPMScheduler,
    settings: { ...settings, classImages: 1, priorLossWeight: 0, trainTextEncoder: false },
    baseFingerprint: 'test',
    log: () => {},
  });
  noGrad(() => m.trainable.parameters().forEach((p) => tidy(() => copy_(p, p.add(0.05)))));
  const path = m.save(outDir, 1);
  m.dispose();
  pipeline.dispose();
  return path;
}

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'p3s-baseline-gen-'));
  for (const method of ['dreambooth', 'textual-inversion', 'custom-diffusion'] as const)
    saved[method] = await artifactOf(method);
});

after(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

/** Whether every tensor of the file equals the U-Net's under the renamed key. */
function unetHolds(pipeline: StableDiffusionPipeline, file: string, rename = (k: string) => k) {
  const own = pipeline.unet.stateDict();
  return [...loadSafetensors(file)].every(([k, t]) =>
    tidy(() => own.get(rename(k))!.sub(t).abs().max().item() === 0),
  );
}

test('each artifact is recognised by content and put onto the base model as saved', () => {
  const kinds = Object.entries(saved).map(([m, p]) => [m, baselineArtifact(p)?.method]);
  assert.deepEqual(kinds, [
    ['dreambooth', 'dreambooth'],
    ['textual-inversion', 'textual-inversion'],
    ['custom-diffusion', 'custom-diffusion'],
  ]);
  const pipeline = StableDiffusionPipeline.fromPretrained(BASE);
  try {
    const undo = applyArtifact(pipeline, baselineArtifact(saved.dreambooth!)!);
    assert.ok(unetHolds(pipeline, join(saved.dreambooth!, 'diffusion_pytorch_model.safetensors')));
    undo();
    const cd = applyArtifact(pipeline, baselineArtifact(saved['custom-diffusion']!)!);
    const toUnet = (k: string) => k.replace(/\.processor\.to_([kv])_custom_diffusion/, '.to_$1');
    assert.ok(unetHolds(pipeline, saved['custom-diffusion']!, toUnet));
    assert.equal(pipeline.tokenizer.encode('a <sks> toy').length, 3, '<sks> is one token');
    cd();
    assert.ok(pipeline.tokenizer.encode('a <sks> toy').length > 3, 'and gone again');
  } finally {
    pipeline.dispose();
  }
});

test('generating with a Textual Inversion file: {} is the token and the class word', async () => {
  const out = join(root, 'images');
  const result = await generateBaseline({
    baseModel: BASE,
    adapter: saved['textual-inversion']!,
    outDir: out,
    prompts: ['a photo of {}'],
    seeds: [3],
    steps: 2,
    latentBias: 0.1,
  });
  assert.equal(result.method, 'textual-inversion');
  assert.deepEqual(result.warnings, [
    "latentBias steers P3S's injection; it does nothing with a textual-inversion artifact",
  ]);
  assert.equal(result.images.length, 1);
  const text = await readPngText(result.images[0]!.path);
  assert.equal(text.prompt, 'a photo of <sks> toy');
  assert.equal(text.method, 'textual-inversion');
  // what p3s eval reads for CLIP-T: the prompt with the token replaced by the class word
  assert.equal(text.identifier, '<sks>');
  assert.equal(text.class_word, 'toy');
});

test('an artifact holding NaN (a diverged run) is refused by name before any image', () => {
  const nan = join(root, 'nan.safetensors');
  tidy(() => saveSafetensors(nan, { '<sks>': randn([1, 32]).mul(Number.NaN) }));
  const cd = join(root, 'custom-diffusion', 'pytorch_custom_diffusion_weights.safetensors');
  const nanCd = join(root, 'custom-diffusion', 'nan-weights.safetensors');
  tidy(() => {
    const state = loadSafetensors(cd);
    saveSafetensors(nanCd, Object.fromEntries([...state].map(([k, t]) => [k, t.mul(Number.NaN)])));
  });
  const pipeline = StableDiffusionPipeline.fromPretrained(BASE);
  try {
    assert.throws(
      () => applyArtifact(pipeline, baselineArtifact(nan)!),
      /<sks> in .*nan\.safetensors holds NaN or infinite values: .*diverged/,
    );
    assert.throws(
      () => applyArtifact(pipeline, baselineArtifact(nanCd)!),
      /nan-weights\.safetensors holds NaN or infinite values/,
    );
    assert.ok(pipeline.tokenizer.encode('a <sks> toy').length > 3, 'no token left behind');
  } finally {
    pipeline.dispose();
  }
});

test('a garbage or mismatched artifact fails with a clear message', () => {
  const text = join(root, 'notes.txt');
  writeFileSync(text, 'not weights');
  assert.throws(() => baselineArtifact(text), /not a safetensors file.*expected a p3s adapter/);
  const two = join(root, 'two.safetensors');
  tidy(() => saveSafetensors(two, { a: randn([2]), b: randn([3]) }));
  assert.throws(() => baselineArtifact(two), /holds 2 tensors \(a, b\)/);
  const empty = join(root, 'empty-folder');
  mkdirSync(empty);
  assert.throws(() => baselineArtifact(empty), /folder without config\.json/);
  const wide = join(root, 'wide.safetensors');
  tidy(() => saveSafetensors(wide, { '<x>': randn([1, 48]) }));
  const pipeline = StableDiffusionPipeline.fromPretrained(BASE);
  try {
    assert.throws(() => applyArtifact(pipeline, baselineArtifact(wide)!), /another base model/);
    const cd = join(root, 'custom-diffusion', 'pytorch_custom_diffusion_weights.safetensors');
    const bad = join(root, 'custom-diffusion', 'bad.safetensors'); // beside its token file
    const state = loadSafetensors(cd);
    const [key] = [...state.keys()];
    tidy(() => saveSafetensors(bad, { [key!]: randn([5, 5]) }));
    assert.throws(
      () => applyArtifact(pipeline, baselineArtifact(bad)!),
      /does not fit this base model's U-Net/,
    );
  } finally {
    pipeline.dispose();
  }
});

test('a baseline refuses a size the VAE cannot make and names an overflow, writing no image', async () => {
  const run = (name: string, extra: Record<string, unknown>) =>
    generateBaseline({
      baseModel: BASE,
      adapter: saved['custom-diffusion']!,
      outDir: join(root, name),
      prompts: ['a {}'],
      seeds: [1],
      steps: 2,
      ...extra,
    });
  // --size 63 used to reach the U-Net and fail inside it
  await assert.rejects(
    run('odd-size', { size: 63 }),
    /Expected height and width to be positive multiples of 8 but received 63×63/,
  );
  await assert.rejects(
    run('overflow', { guidanceScale: 1e38 }),
    /Sampling "a <sks> toy" \(seeds 1\) gave NaN or infinite latents, so no image was written for it: every weight is finite, so the settings overflow \(guidance 1e\+38\)/,
  );
  const pngs = (name: string) =>
    existsSync(join(root, name))
      ? readdirSync(join(root, name)).filter((f) => f.endsWith('.png'))
      : [];
  assert.deepEqual([...pngs('odd-size'), ...pngs('overflow')], []);
});
