import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { inferenceMode, memory, randn, tidy, Generator } from '../../../src/index.js';
import { SafetensorsFile } from '../../../src/io/safetensors.js';
import { CLIPVisionModelWithProjection } from '../../../src/models/clip/index.js';
import { writeTinyClipVision, writeTinyPipeline } from '../../../apps/testing/tiny_models.js';
import { StableDiffusionPipeline } from '../../../src/pipelines/index.js';
import { fixturePath } from '../../helpers/paths.js';

const fixtures = fixturePath();
const tokenizerFolder = join(fixtures, 'clip-tokenizer');
const tmp = mkdtempSync(join(tmpdir(), 'p3s-tiny-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

writeTinyPipeline(join(tmp, 'a'), { seed: 0, tokenizerFolder });

/** Every file under a folder, relative, sorted. */
function files(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

const json = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;

/** {key: shape} of a safetensors file, and its metadata. */
function layout(path: string): { shapes: Record<string, string>; metadata: object } {
  const f = SafetensorsFile.open(path);
  const shapes: Record<string, string> = {};
  for (const k of f.keys()) shapes[k] = `${f.info(k).dtype}[${f.info(k).shape.join(',')}]`;
  return { shapes, metadata: f.metadata };
}

test('the pipeline folder has the fixture layout: files, config keys in order, weight keys and shapes', () => {
  const ours = join(tmp, 'a');
  const theirs = join(fixtures, 'tiny-sd');
  const ref = files(theirs).filter((f) => !f.startsWith('reference.'));
  assert.deepEqual(files(ours), ref);
  // tokenizer/ holds copies of the source tokenizer's files
  for (const f of ['vocab.json', 'merges.txt', 'tokenizer_config.json']) {
    const copy = readFileSync(join(ours, 'tokenizer', f));
    assert.ok(copy.equals(readFileSync(join(tokenizerFolder, f))), f);
  }
  for (const f of ref.filter((f) => f.endsWith('.json') && !f.startsWith('tokenizer/'))) {
    // same keys in the same (sorted) order, and the same values except version stamps
    const a = json(join(ours, f));
    const b = json(join(theirs, f));
    assert.deepEqual(Object.keys(a), Object.keys(b), f);
    if (!f.startsWith('text_encoder')) assert.deepEqual(a, b, f);
  }
  for (const f of ref.filter((f) => f.endsWith('.safetensors'))) {
    assert.deepEqual(layout(join(ours, f)), layout(join(theirs, f)), f);
  }
});

test('the written pipeline loads with the p3s loaders and generates', async () => {
  const pipe = StableDiffusionPipeline.fromPretrained(join(tmp, 'a'));
  try {
    const before = memory().liveTensors;
    const out = await pipe.generate({
      prompt: 'a red cube',
      steps: 2,
      seed: 0,
      height: 16,
      width: 16,
    });
    assert.equal(out.images.length, 1);
    assert.deepEqual([out.images[0]!.width, out.images[0]!.height], [16, 16]);
    assert.ok(out.latents.toArray().every(Number.isFinite));
    // random weights still give an image with some contrast, not a constant
    assert.ok(new Set(out.images[0]!.data).size > 10);
    out.latents.dispose();
    assert.equal(memory().liveTensors, before);
  } finally {
    pipe.dispose();
  }
});

test('a seed writes byte-identical weights; another seed other weights', () => {
  writeTinyPipeline(join(tmp, 'b'), { seed: 0, tokenizerFolder });
  writeTinyPipeline(join(tmp, 'c'), { seed: 1, tokenizerFolder });
  for (const f of files(join(tmp, 'a'))) {
    const a = readFileSync(join(tmp, 'a', f));
    assert.ok(a.equals(readFileSync(join(tmp, 'b', f))), `${f} differs for the same seed`);
    if (f.endsWith('.safetensors')) {
      assert.ok(!a.equals(readFileSync(join(tmp, 'c', f))), `${f} is the same for another seed`);
    }
  }
});

test('weights are perturbed like the fixtures: norms and biases off their initial values', () => {
  const f = SafetensorsFile.open(join(tmp, 'a', 'unet', 'diffusion_pytorch_model.safetensors'));
  tidy(() => {
    const gamma = f.tensor('conv_norm_out.weight').toArray();
    const beta = f.tensor('conv_norm_out.bias').toArray();
    assert.ok(gamma.some((v) => Math.abs(v - 1) > 0.01) && gamma.every((v) => Math.abs(v - 1) < 1));
    assert.ok(beta.some((v) => Math.abs(v) > 0.01));
  });
});

test('writeTinyClipVision writes a CLIPVisionModelWithProjection folder that loads and runs', () => {
  const dir = join(tmp, 'vision');
  writeTinyClipVision(dir, { seed: 3 });
  const theirs = join(fixtures, 'tiny-clip-vision');
  assert.deepEqual(files(dir), ['config.json', 'model.safetensors', 'preprocessor_config.json']);
  assert.deepEqual(
    Object.keys(json(join(dir, 'config.json'))),
    Object.keys(json(join(theirs, 'config.json'))),
  );
  assert.deepEqual(
    json(join(dir, 'preprocessor_config.json')),
    json(join(theirs, 'preprocessor_config.json')),
  );
  assert.deepEqual(
    layout(join(dir, 'model.safetensors')),
    layout(join(theirs, 'model.safetensors')),
  );
  const model = CLIPVisionModelWithProjection.fromPretrained(dir);
  try {
    inferenceMode(() =>
      tidy(() => {
        const out = model.forward(randn([2, 3, 32, 32], { generator: new Generator(0) }));
        assert.deepEqual([...out.imageEmbeds.shape], [2, 16]);
        assert.ok(out.imageEmbeds.toArray().every(Number.isFinite));
      }),
    );
  } finally {
    model.dispose();
  }
});
