import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, tidy, memory, noGrad, inferenceMode, randn, zeros } from '../../../src/index.js';
import { SafetensorsFile, saveSafetensors } from '../../../src/io/safetensors.js';
import {
  CLIPVisionModel,
  CLIPVisionModelWithProjection,
  clipVisionConfig,
  patchTokensOf,
} from '../../../src/models/clip/index.js';
import { fixturePath } from '../../helpers/paths.js';
import { assertClose, maxAbsDiff } from '../../helpers/tensors.js';

const FOLDER = fixturePath('tiny-clip-vision');
const REFERENCE = SafetensorsFile.open(join(FOLDER, 'reference.safetensors'));
const TOL = { atol: 1e-4, rtol: 1e-4 };

function ref(name: string): { shape: number[]; data: number[] } {
  return tidy(() => {
    const t = REFERENCE.tensor(name);
    return { shape: [...t.shape], data: t.toArray() };
  });
}

function refAt(r: { shape: number[]; data: number[] }, index: number) {
  const size = r.shape.slice(1).reduce((a, b) => a * b, 1);
  return { shape: r.shape.slice(1), data: r.data.slice(index * size, (index + 1) * size) };
}

function check(actual: Tensor, expected: { shape: number[]; data: number[] }, label: string) {
  const err = maxAbsDiff(actual.toArray(), expected.data);
  console.log(`${label}: max abs error ${err.toExponential(2)}`);
  assertClose(actual, expected, { ...TOL, label });
}

const model = CLIPVisionModelWithProjection.fromPretrained(FOLDER);
const pixels = REFERENCE.tensor('pixel_values'); // (2, 3, 32, 32)

test('matches transformers 4.26 on the tiny CLIPVisionModelWithProjection', () => {
  const hidden = ref('hidden_states'); // (layers + 1, B, 17, C)
  noGrad(() =>
    tidy(() => {
      const out = model.forward(pixels, { outputHiddenStates: true });
      check(out.lastHiddenState, ref('last_hidden_state'), 'last_hidden_state');
      check(out.pooledOutput, ref('pooler_output'), 'pooler_output');
      check(out.imageEmbeds, ref('image_embeds'), 'image_embeds');
      assert.equal(out.hiddenStates!.length, 3);
      out.hiddenStates!.forEach((h, i) => check(h, refAt(hidden, i), `hidden_states[${i}]`));
      assert.deepEqual(out.gridSize, [4, 4]);
    }),
  );
});

test('matches on the preprocessed DreamBench photos (32 px)', () => {
  inferenceMode(() =>
    tidy(() => {
      const out = model.forward(REFERENCE.tensor('proc32_pixel_values'));
      check(out.lastHiddenState, ref('proc32_last_hidden_state'), 'proc32 last_hidden_state');
      check(out.imageEmbeds, ref('proc32_image_embeds'), 'proc32 image_embeds');
    }),
  );
});

test('patch tokens of any layer: (B, gridH·gridW, C) without CLS, plus the grid', () => {
  const hidden = ref('hidden_states');
  noGrad(() =>
    tidy(() => {
      for (const layer of [0, 1, 2, -1, -2, -3]) {
        const l = layer < 0 ? 3 + layer : layer;
        const { tokens, gridSize } = model.patchTokens(pixels, layer);
        assert.deepEqual(gridSize, [4, 4]);
        assert.deepEqual([...tokens.shape], [2, 16, 32]);
        // hidden_states[l][:, 1:] of the reference.
        const h = refAt(hidden, l);
        const data: number[] = [];
        for (let b = 0; b < 2; b++)
          data.push(...h.data.slice((b * 17 + 1) * 32, (b + 1) * 17 * 32));
        assertClose(
          tokens,
          { shape: [2, 16, 32], data },
          { ...TOL, label: `patch tokens ${layer}` },
        );
      }
      const out = model.forward(pixels, { outputHiddenStates: true });
      const a = patchTokensOf(out, -2).tokens.toArray();
      assert.deepEqual(a, model.patchTokens(pixels, -2).tokens.toArray());
      const last = model.forward(pixels);
      assert.deepEqual(
        patchTokensOf(last).tokens.toArray(),
        model.patchTokens(pixels).tokens.toArray(),
      );
      assert.throws(() => patchTokensOf(last, 1), /outputHiddenStates/);
      assert.throws(() => model.patchTokens(pixels, 3), /layer in \[-3, 2\]/);
      // post_layernorm on every token: the CLS row of the last layer is the pooled output.
      const normed = model.patchTokens(pixels, -1, { postLayernorm: true }).tokens;
      const direct = model.vision_model.post_layernorm.forward(last.lastHiddenState.slice(1, 1));
      assert.deepEqual(normed.toArray(), direct.toArray());
    }),
  );
});

test('forward is deterministic and frees every intermediate', () => {
  const run = () =>
    noGrad(() =>
      tidy(() => model.forward(pixels, { outputHiddenStates: true }).imageEmbeds.toArray()),
    );
  const first = run();
  const before = memory().liveTensors;
  const second = run();
  tidy(() => {
    model.forward(pixels);
    model.patchTokens(pixels, 1);
  });
  assert.equal(memory().liveTensors, before);
  assert.deepEqual(second, first);
  const { tokens } = noGrad(() => model.patchTokens(pixels, -2)); // no tidy: only the result lives
  assert.equal(memory().liveTensors, before + 1);
  tokens.dispose();
  assert.equal(memory().liveTensors, before);
});

function tempFolder(config: Record<string, unknown>, tensors: Map<string, Tensor>): string {
  const dir = mkdtempSync(join(tmpdir(), 'p3s-clipv-'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  saveSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  return dir;
}

test('loading: strict for the projection, a plain tower skips it, combined CLIPConfig works', () => {
  const file = SafetensorsFile.open(join(FOLDER, 'model.safetensors'));
  const config = JSON.parse(JSON.stringify(model.config)) as Record<string, unknown>;
  tidy(() => {
    const state = file.loadAll((k) => k !== 'visual_projection.weight');
    const noProj = tempFolder(config, state);
    assert.throws(
      () => CLIPVisionModelWithProjection.fromPretrained(noProj),
      (err: Error) =>
        err.message.includes('model.safetensors') &&
        err.message.includes(noProj) &&
        /missing keys: visual_projection\.weight/.test(err.message),
    );
    // The plain tower loads from the projection model's folder, and agrees with it.
    const plain = CLIPVisionModel.fromPretrained(FOLDER);
    assert.ok(!(plain instanceof CLIPVisionModelWithProjection));
    noGrad(() =>
      assert.deepEqual(
        plain.forward(pixels).pooledOutput.toArray(),
        model.forward(pixels).pooledOutput.toArray(),
      ),
    );
    plain.dispose();
    // A combined CLIPModel folder (as openai/clip-vit-large-patch14): vision_config inside,
    // text tower and logit_scale in the same file.
    const all = file.loadAll();
    all.set('text_model.final_layer_norm.weight', zeros([8]));
    all.set('text_projection.weight', zeros([16, 8]));
    all.set('logit_scale', zeros([]));
    const { projection_dim, ...vision } = config;
    const combined = tempFolder(
      { model_type: 'clip', projection_dim, text_config: {}, vision_config: vision },
      all,
    );
    const fromCombined = CLIPVisionModelWithProjection.fromPretrained(combined);
    assert.equal(fromCombined.config.projection_dim, 16);
    noGrad(() =>
      assert.deepEqual(
        fromCombined.forward(pixels).imageEmbeds.toArray(),
        model.forward(pixels).imageEmbeds.toArray(),
      ),
    );
    fromCombined.dispose();
  });
});

test('bad input and config are named', () => {
  assert.throws(
    () => noGrad(() => model.forward(randn([1, 3, 64, 64]))),
    /\(B, 3, 32, 32\).*\[1, 3, 64, 64\]/,
  );
  assert.throws(() => clipVisionConfig({ hidden_act: 'swish' }), /"hidden_act"/);
  assert.throws(() => clipVisionConfig({ image_size: 30, patch_size: 8 }), /"image_size"/);
  const l14 = clipVisionConfig({ hidden_size: 1024, num_attention_heads: 16, patch_size: 14 });
  assert.equal(l14.image_size, 224);
  assert.equal(l14.num_channels, 3);
});

test('a bfloat16 model takes float32 pixels (fp16 convolution has no CPU kernel in torch 1.13)', () => {
  const half = CLIPVisionModelWithProjection.fromPretrained(FOLDER, { dtype: 'bfloat16' });
  noGrad(() =>
    tidy(() => {
      const out = half.forward(pixels);
      assert.equal(out.imageEmbeds.dtype, 'bfloat16');
      const e = maxAbsDiff(out.imageEmbeds.toArray(), ref('image_embeds').data);
      console.log(`bfloat16 image_embeds: max abs error ${e.toExponential(2)}`);
      assert.ok(e < 0.1, `bfloat16 image embeds within 0.1 (got ${e})`);
    }),
  );
  half.dispose();
});
