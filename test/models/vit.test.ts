import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, tidy, memory, noGrad, randn } from '../../src/index.js';
import { SafetensorsFile, saveSafetensors } from '../../src/io/safetensors.js';
import { readImage, type RgbImage } from '../../src/io/image.js';
import { ViTImageProcessor, ViTModel, vitConfig } from '../../src/models/vit/index.js';
import { fixturePath, dreambenchPath } from '../helpers/paths.js';
import { assertClose, maxAbsDiff } from '../helpers/tensors.js';

const FOLDER = fixturePath('tiny-vit');
const REFERENCE = SafetensorsFile.open(join(FOLDER, 'reference.safetensors'));
const reference = JSON.parse(readFileSync(join(FOLDER, 'reference.json'), 'utf8')) as {
  images: string[];
  processor224: Record<string, unknown>;
};
// test/fixtures/README.md: float32 against float64 reruns differ by ≤ 1.1e-6; as for CLIP.
const TOL = { atol: 1e-4, rtol: 1e-4 };

type Ref = { shape: number[]; data: number[] };

function ref(name: string): Ref {
  return tidy(() => {
    const t = REFERENCE.tensor(name);
    return { shape: [...t.shape], data: t.toArray() };
  });
}

/** r[index] of a stacked reference. */
function refAt(r: Ref, index: number): Ref {
  const size = r.shape.slice(1).reduce((a, b) => a * b, 1);
  return { shape: r.shape.slice(1), data: r.data.slice(index * size, (index + 1) * size) };
}

function check(actual: Tensor, expected: Ref, label: string, tol = TOL) {
  const err = maxAbsDiff(actual.toArray(), expected.data);
  console.log(`${label}: max abs error ${err.toExponential(2)}`);
  assertClose(actual, expected, { ...tol, label });
}

const model = ViTModel.fromPretrained(FOLDER);
const pixels = REFERENCE.tensor('pixel_values'); // (2, 3, 32, 32)
const photos: RgbImage[] = await Promise.all(
  reference.images.map((p) => readImage(dreambenchPath(p))),
);

test('matches transformers 4.26 ViTModel: every hidden state, attention, output', () => {
  const hidden = ref('hidden_states'); // (layers + 1, B, 17, C)
  const attentions = ref('attentions'); // (layers, B, heads, 17, 17)
  noGrad(() =>
    tidy(() => {
      const out = model.forward(pixels, { outputHiddenStates: true, outputAttentions: true });
      check(out.lastHiddenState, ref('last_hidden_state'), 'last_hidden_state');
      check(out.poolerOutput!, ref('pooler_output'), 'pooler_output');
      assert.equal(out.hiddenStates!.length, 3);
      out.hiddenStates!.forEach((h, i) => check(h, refAt(hidden, i), `hidden_states[${i}]`));
      assert.equal(out.attentions!.length, 2);
      out.attentions!.forEach((a, i) => check(a, refAt(attentions, i), `attentions[${i}]`));
    }),
  );
});

test('the fused attention path (no probabilities asked) gives the same outputs', () => {
  noGrad(() =>
    tidy(() => {
      const out = model.forward(pixels);
      assert.equal(out.hiddenStates, undefined);
      assert.equal(out.attentions, undefined);
      check(out.lastHiddenState, ref('last_hidden_state'), 'last_hidden_state (fused)');
      check(out.poolerOutput!, ref('pooler_output'), 'pooler_output (fused)');
    }),
  );
});

test('pixel values equal ViTImageProcessor at 224 px (DINO settings) and at the folder size', () => {
  const before = memory().liveTensors;
  tidy(() => {
    const p224 = new ViTImageProcessor(reference.processor224);
    assert.deepEqual([p224.height, p224.width, p224.resample], [224, 224, 2]);
    check(p224.preprocess(photos), ref('proc224_pixel_values'), 'proc224', { atol: 0, rtol: 0 });
    const p32 = ViTImageProcessor.fromPretrained(FOLDER);
    check(p32.preprocess(photos), ref('proc32_pixel_values'), 'proc32', { atol: 0, rtol: 0 });
  });
  assert.equal(memory().liveTensors, before);
});

test('the preprocessed DreamBench photos through the model, and their CLS tokens', () => {
  const proc = ViTImageProcessor.fromPretrained(FOLDER);
  noGrad(() =>
    tidy(() => {
      const pv = proc.preprocess(photos);
      const expected = ref('proc32_last_hidden_state'); // (3, 17, C)
      check(model.forward(pv).lastHiddenState, expected, 'proc32 last_hidden_state');
      const c = expected.shape[2]!;
      const cls = expected.data.flatMap((_, i) => (i % (17 * c) < c ? [expected.data[i]!] : []));
      check(model.clsEmbeddings(pv), { shape: [3, c], data: cls }, 'proc32 CLS tokens');
    }),
  );
});

test('forward frees every intermediate and is deterministic', () => {
  const all = { outputHiddenStates: true, outputAttentions: true };
  const run = () => noGrad(() => tidy(() => model.forward(pixels, all).lastHiddenState.toArray()));
  const first = run();
  const before = memory().liveTensors;
  const second = run();
  tidy(() => {
    model.forward(pixels);
    model.clsEmbeddings(pixels);
  });
  assert.equal(memory().liveTensors, before);
  assert.deepEqual(second, first);
  // Without tidy only the outputs live: last, pooler, 3 hidden states, 2 attention maps.
  const out = noGrad(() => model.forward(pixels, all));
  assert.equal(memory().liveTensors, before + 7);
  [out.lastHiddenState, out.poolerOutput!, ...out.hiddenStates!, ...out.attentions!].forEach((t) =>
    t.dispose(),
  );
  const cls = noGrad(() => model.clsEmbeddings(pixels));
  assert.equal(memory().liveTensors, before + 1);
  cls.dispose();
  assert.equal(memory().liveTensors, before);
});

function tempFolder(config: Record<string, unknown>, tensors: Map<string, Tensor>): string {
  const dir = mkdtempSync(join(tmpdir(), 'p3s-vit-'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  saveSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  return dir;
}

test('a folder without pooler weights (as facebook/dino-vits16) loads without a pooler', () => {
  const file = SafetensorsFile.open(join(FOLDER, 'model.safetensors'));
  const config = JSON.parse(readFileSync(join(FOLDER, 'config.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  tidy(() => {
    const dir = tempFolder(config, file.loadAll((k) => !k.startsWith('pooler.')));
    const bare = ViTModel.fromPretrained(dir);
    assert.equal(bare.pooler, null);
    noGrad(() => {
      const out = bare.forward(pixels);
      assert.equal(out.poolerOutput, undefined);
      assert.deepEqual(out.lastHiddenState.toArray(), model.forward(pixels).lastHiddenState.toArray());
    });
    bare.dispose();
    assert.throws(
      () => ViTModel.fromPretrained(dir, { addPoolingLayer: true }),
      /missing keys: pooler\.dense\.bias, pooler\.dense\.weight|missing keys: pooler\.dense\.weight/,
    );
    const skipped = ViTModel.fromPretrained(FOLDER, { addPoolingLayer: false });
    assert.equal(skipped.pooler, null);
    skipped.dispose();
  });
});

test('bad input and config are named', () => {
  assert.throws(
    () => noGrad(() => model.forward(randn([1, 3, 64, 64]))),
    /\(B, 3, 32, 32\).*\[1, 3, 64, 64\]/,
  );
  assert.throws(() => vitConfig({ hidden_act: 'swish' }), /"hidden_act"/);
  assert.throws(() => vitConfig({ model_type: 'clip_vision_model' }), /"model_type"/);
  assert.throws(() => vitConfig({ image_size: 30, patch_size: 8 }), /"image_size"/);
  assert.throws(() => vitConfig({ hidden_size: 384, num_attention_heads: 5 }), /"hidden_size"/);
  // DINO ViT-S/16's config.json sets these; the rest are ViTConfig defaults.
  const s16 = vitConfig({ hidden_size: 384, num_attention_heads: 6, intermediate_size: 1536 });
  assert.deepEqual([s16.image_size, s16.patch_size, s16.layer_norm_eps], [224, 16, 1e-12]);
  assert.throws(() => new ViTImageProcessor({ size: { shortest_edge: 224 } as never }), /size=/);
  assert.throws(() => new ViTImageProcessor({ resample: 0 }), /resample=0/);
  assert.throws(() => new ViTImageProcessor().preprocess([]), /at least one image/);
  const square = new ViTImageProcessor({ size: 224 }); // old ViTFeatureExtractor form
  assert.deepEqual([square.height, square.width], [224, 224]);
  assert.deepEqual(new ViTImageProcessor().imageMean, [0.5, 0.5, 0.5]); // transformers' default
});
