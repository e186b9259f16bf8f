import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, tidy, memory, noGrad, ones, manualSeed, ops } from '../../../src/index.js';
import { SafetensorsFile, saveSafetensors } from '../../../src/io/safetensors.js';
import {
  CLIPTextModel,
  CLIPTextModelWithProjection,
  clipTextConfig,
} from '../../../src/models/clip/index.js';
import { fixturePath } from '../../helpers/paths.js';
import { assertClose, maxAbsDiff } from '../../helpers/tensors.js';

const FOLDER = fixturePath('tiny-sd', 'text_encoder');
const REFERENCE = SafetensorsFile.open(fixturePath('tiny-sd', 'reference.safetensors'));
const TOL = { atol: 1e-4, rtol: 1e-4 };

/** A reference tensor's shape and values (the tensor itself is freed). */
function ref(name: string): { shape: number[]; data: number[] } {
  return tidy(() => {
    const t = REFERENCE.tensor(name);
    return { shape: [...t.shape], data: t.toArray() };
  });
}

/** The reference's [index] along dim 0. */
function refAt(r: { shape: number[]; data: number[] }, index: number) {
  const size = r.shape.slice(1).reduce((a, b) => a * b, 1);
  return { shape: r.shape.slice(1), data: r.data.slice(index * size, (index + 1) * size) };
}

function check(actual: Tensor, expected: { shape: number[]; data: number[] }, label: string) {
  const err = maxAbsDiff(actual.toArray(), expected.data);
  console.log(`${label}: max abs error ${err.toExponential(2)}`);
  assertClose(actual, expected, { ...TOL, label });
}

const model = CLIPTextModel.fromPretrained(FOLDER);
const ids = REFERENCE.tensor('text_input_ids'); // (3, 77) int64

test('matches transformers 4.26 on the tiny SD text encoder (3 prompts)', () => {
  assert.equal(ids.dtype, 'int64');
  const hidden = ref('text_hidden_states'); // (layers + 1, B, 77, C)
  noGrad(() =>
    tidy(() => {
      const out = model.forward(ids, { outputHiddenStates: true });
      check(out.lastHiddenState, ref('text_last_hidden_state'), 'last_hidden_state');
      check(out.pooledOutput, ref('text_pooler_output'), 'pooler_output');
      assert.equal(out.hiddenStates!.length, 3);
      out.hiddenStates!.forEach((h, i) => check(h, refAt(hidden, i), `hidden_states[${i}]`));
      // Without outputHiddenStates the same numbers come out.
      const plain = model.forward(ids);
      assert.equal(plain.hiddenStates, undefined);
      assert.deepEqual(plain.lastHiddenState.toArray(), out.lastHiddenState.toArray());
    }),
  );
});

test('clip skip: a chosen layer with or without final_layer_norm', () => {
  const hidden = ref('text_hidden_states');
  noGrad(() =>
    tidy(() => {
      // clipSkip 1 (A1111's "clip skip 2"): the penultimate layer = hidden_states[-2].
      const raw = model.forward(ids, { clipSkip: 1, finalLayerNorm: false });
      check(raw.lastHiddenState, refAt(hidden, 1), 'clipSkip 1 raw');
      const normed = model.forward(ids, { clipSkip: 1 });
      const expected = model.text_model.final_layer_norm.forward(
        REFERENCE.tensor('text_hidden_states').select(0, 1),
      );
      assertClose(
        normed.lastHiddenState,
        { shape: [...expected.shape], data: expected.toArray() },
        {
          ...TOL,
          label: 'clipSkip 1 normed',
        },
      );
      const last = ref('text_last_hidden_state');
      assert.ok(
        maxAbsDiff(normed.lastHiddenState.toArray(), last.data) > 1e-2,
        'clip skip changes the output',
      );
      // Pooled output follows the returned hidden state.
      const argmax = ids.argmax(-1).toArray();
      const c = normed.lastHiddenState.shape[2]!;
      const pooled = normed.pooledOutput.toArray();
      argmax.forEach((pos, b) => {
        const row = normed.lastHiddenState.select(0, b).select(0, pos).toArray();
        assert.deepEqual(pooled.slice(b * c, (b + 1) * c), row);
      });
      // With every hidden state asked for, clipSkip still picks the same layer.
      const all = model.forward(ids, { clipSkip: 1, outputHiddenStates: true });
      assert.equal(all.hiddenStates!.length, 3);
      assert.deepEqual(all.lastHiddenState.toArray(), normed.lastHiddenState.toArray());
      assert.throws(() => model.forward(ids, { clipSkip: 2 }), /clipSkip in \[0, 1\]/);
    }),
  );
});

test('an all-ones attention mask changes nothing; a padding mask changes padded positions only', () => {
  noGrad(() =>
    tidy(() => {
      const base = model.forward(ids).lastHiddenState;
      const same = model.forward(ids, { attentionMask: ones([3, 77], { dtype: 'int64' }) });
      assert.deepEqual(same.lastHiddenState.toArray(), base.toArray());
      // Causal attention: masking the keys after position 9 leaves positions 0..9 unchanged.
      const mask = ones([3, 77], { dtype: 'int64' });
      ops.zero_(mask.slice(1, 10));
      const masked = model.forward(ids, { attentionMask: mask }).lastHiddenState;
      const head = (t: Tensor) => t.slice(1, 0, 10).contiguous().toArray();
      assert.ok(maxAbsDiff(head(masked), head(base)) < 1e-6);
      const tail = (t: Tensor) => t.slice(1, 10).contiguous().toArray();
      assert.ok(maxAbsDiff(tail(masked), tail(base)) > 1e-3);
      assert.ok(masked.toArray().every(Number.isFinite));
    }),
  );
});

test('forward is deterministic and frees every intermediate', () => {
  const run = () =>
    noGrad(() =>
      tidy(() => model.forward(ids, { outputHiddenStates: true }).lastHiddenState.toArray()),
    );
  const first = run();
  const before = memory().liveTensors;
  const second = run();
  tidy(() => {
    model.forward(ids, { clipSkip: 1 });
    model.forward(ids, { attentionMask: ones([3, 77]) });
  });
  assert.equal(memory().liveTensors, before);
  assert.deepEqual(second, first);
  // An output kept outside tidy is exactly its own tensors.
  const out = noGrad(() => tidy(() => model.forward(ids)));
  assert.equal(memory().liveTensors, before + 2);
  out.lastHiddenState.dispose();
  out.pooledOutput.dispose();
  assert.equal(memory().liveTensors, before);
});

function tempFolder(config: Record<string, unknown>, tensors: Map<string, Tensor>): string {
  const dir = mkdtempSync(join(tmpdir(), 'p3s-clip-'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  saveSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  return dir;
}

test('loading is strict: a missing key is named with the file; position_ids may be absent', () => {
  const file = SafetensorsFile.open(join(FOLDER, 'model.safetensors'));
  const config = JSON.parse(JSON.stringify(model.config)) as Record<string, unknown>;
  tidy(() => {
    const state = file.loadAll();
    state.delete('text_model.encoder.layers.1.mlp.fc2.bias');
    const broken = tempFolder(config, state);
    assert.throws(
      () => CLIPTextModel.fromPretrained(broken),
      (err: Error) =>
        /model\.safetensors/.test(err.message) &&
        err.message.includes(broken) &&
        /missing keys: text_model\.encoder\.layers\.1\.mlp\.fc2\.bias/.test(err.message),
    );
    // A file saved by transformers >= 4.31 has no position_ids buffer: it loads the same.
    const newer = file.loadAll((k) => !k.endsWith('position_ids'));
    const m = CLIPTextModel.fromPretrained(tempFolder(config, newer));
    const a = noGrad(() => m.forward(ids).lastHiddenState.toArray());
    const b = noGrad(() => model.forward(ids).lastHiddenState.toArray());
    assert.deepEqual(a, b);
    m.dispose();
  });
  // A pickle is refused with the conversion recipe.
  const pickle = mkdtempSync(join(tmpdir(), 'p3s-clip-'));
  writeFileSync(join(pickle, 'config.json'), '{}');
  writeFileSync(join(pickle, 'pytorch_model.bin'), 'x');
  assert.throws(() => CLIPTextModel.fromPretrained(pickle), /pickle/);
});

test('a combined CLIPConfig folder loads the text tower and the projection', () => {
  const te = JSON.parse(JSON.stringify(model.config)) as Record<string, unknown>;
  tidy(() => {
    manualSeed(3);
    const src = new CLIPTextModelWithProjection(te);
    const state = new Map(src.stateDict());
    const file = SafetensorsFile.open(join(FOLDER, 'model.safetensors'));
    state.set(
      'text_model.embeddings.position_ids',
      file.tensor('text_model.embeddings.position_ids'),
    );
    state.set('logit_scale', ones([]));
    state.set('vision_model.post_layernorm.weight', ones([8]));
    state.set('visual_projection.weight', ones([16, 8]));
    const dir = tempFolder(
      {
        model_type: 'clip',
        projection_dim: 16,
        text_config: { ...te, projection_dim: undefined },
        vision_config: {},
      },
      state,
    );
    const withProj = CLIPTextModelWithProjection.fromPretrained(dir);
    assert.equal(withProj.config.projection_dim, 16);
    const plain = CLIPTextModel.fromPretrained(dir);
    noGrad(() => {
      const o = withProj.forward(ids);
      assert.deepEqual([...o.textEmbeds.shape], [3, 16]);
      const expected = src.forward(ids).textEmbeds.toArray();
      assert.deepEqual(o.textEmbeds.toArray(), expected);
      assert.deepEqual(plain.forward(ids).pooledOutput.toArray(), o.pooledOutput.toArray());
    });
    withProj.dispose();
    plain.dispose();
    src.dispose();
  });
});

test('config: defaults, verbatim keys and unsupported values', () => {
  const c = clipTextConfig({ hidden_size: 64, num_attention_heads: 4 });
  assert.equal(c.vocab_size, 49408);
  assert.equal(c.max_position_embeddings, 77);
  assert.equal(c.hidden_act, 'quick_gelu');
  assert.throws(() => clipTextConfig({ hidden_act: 'relu' }), /"hidden_act".*quick_gelu/);
  assert.throws(() => clipTextConfig({ hidden_size: 30, num_attention_heads: 4 }), /hidden_size/);
  assert.throws(() => clipTextConfig({ model_type: 'bert' }), /"model_type"/);
  assert.throws(() => noGrad(() => model.forward(ones([1, 78], { dtype: 'int64' }))), /at most 77/);
  assert.throws(() => noGrad(() => model.forward(ones([1, 77]))), /integer input ids/);
});

test('gelu variants run (OpenCLIP ViT-H / SD 2 uses hidden_act "gelu")', () => {
  manualSeed(0);
  const small = {
    hidden_size: 8,
    intermediate_size: 16,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    vocab_size: 10,
    max_position_embeddings: 5,
  };
  const outs = ['quick_gelu', 'gelu', 'gelu_new'].map((act) => {
    manualSeed(0);
    const m = new CLIPTextModel({ ...small, hidden_act: act });
    const out = noGrad(() =>
      tidy(() => m.forward(ones([1, 5], { dtype: 'int64' })).lastHiddenState.toArray()),
    );
    m.dispose();
    return out;
  });
  assert.ok(maxAbsDiff(outs[0]!, outs[1]!) > 1e-6, 'quick_gelu differs from gelu');
  assert.ok(maxAbsDiff(outs[1]!, outs[2]!) < 1e-2, 'tanh gelu is close to erf gelu');
});

test('a bfloat16 text encoder stays close (the causal mask uses the dtype minimum)', () => {
  const half = CLIPTextModel.fromPretrained(FOLDER, { dtype: 'bfloat16' });
  noGrad(() =>
    tidy(() => {
      const out = half.forward(ids);
      assert.equal(out.lastHiddenState.dtype, 'bfloat16');
      const e = maxAbsDiff(out.lastHiddenState.toArray(), ref('text_last_hidden_state').data);
      console.log(`bfloat16 last_hidden_state: max abs error ${e.toExponential(2)}`);
      assert.ok(e < 0.1, `bfloat16 within 0.1 (got ${e})`);
    }),
  );
  half.dispose();
});

test('pooling with a non-legacy eos_token_id takes its first occurrence', () => {
  const firstId = ids.select(0, 0).select(0, 1).item(); // the token after <|startoftext|>
  const other = new CLIPTextModel({ ...model.config, eos_token_id: firstId });
  other.loadStateDict(model.stateDict());
  noGrad(() =>
    tidy(() => {
      const out = other.forward(ids.slice(0, 0, 1));
      const expected = out.lastHiddenState.select(0, 0).select(0, 1).toArray();
      assert.deepEqual(out.pooledOutput.toArray(), expected);
      const eos = new CLIPTextModel({ ...model.config, eos_token_id: 49407 });
      eos.loadStateDict(model.stateDict());
      check(eos.forward(ids).pooledOutput, ref('text_pooler_output'), 'pooler_output (eos 49407)');
      eos.dispose();
    }),
  );
  other.dispose();
});
