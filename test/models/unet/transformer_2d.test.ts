import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor, manualSeed, noGrad, ops, randn, tidy } from '../../../src/index.js';
import { F } from '../../../src/nn/index.js';
import {
  BasicTransformerBlock,
  Transformer2DModel,
  type TransformerBlockStates,
} from '../../../src/models/unet/index.js';
import { assertClose } from '../../helpers/tensors.js';

const TOL = { atol: 1e-5, rtol: 1e-5 };

function model(options: {
  linear: boolean;
  layers?: number;
  cross?: number | null;
}): Transformer2DModel {
  return new Transformer2DModel({
    numAttentionHeads: 2,
    attentionHeadDim: 4,
    inChannels: 8,
    numLayers: options.layers ?? 1,
    crossAttentionDim: options.cross === undefined ? 6 : options.cross,
    normNumGroups: 4,
    useLinearProjection: options.linear,
  });
}

/** Perturbs every parameter so that norms and biases are not at their initial values. */
function perturb(m: Transformer2DModel): void {
  noGrad(() => {
    for (const p of m.parameters()) ops.add_(p, randn([...p.shape]).mul(0.1), 1);
  });
}

const asData = (t: Tensor): { shape: readonly number[]; data: number[] } => ({
  shape: t.shape,
  data: t.toArray(),
});

/** Attention written out head by head: softmax(q kᵀ/√d) v, heads concatenated. */
function naiveAttention(
  p: Map<string, Tensor>,
  prefix: string,
  x: Tensor,
  ctx: Tensor,
  heads: number,
): Tensor {
  const q = F.linear(x, p.get(`${prefix}.to_q.weight`)!);
  const k = F.linear(ctx, p.get(`${prefix}.to_k.weight`)!);
  const v = F.linear(ctx, p.get(`${prefix}.to_v.weight`)!);
  const d = q.shape[2]! / heads;
  const outs: Tensor[] = [];
  for (let h = 0; h < heads; h++) {
    const qh = q.slice(2, h * d, (h + 1) * d);
    const kh = k.slice(2, h * d, (h + 1) * d);
    const vh = v.slice(2, h * d, (h + 1) * d);
    const scores = qh.matmul(kh.transpose(1, 2)).div(Math.sqrt(d));
    const e = scores.sub(scores.amax(-1, true)).exp();
    outs.push(e.div(e.sum(-1, true)).matmul(vh));
  }
  return F.linear(
    ops.cat(outs, 2),
    p.get(`${prefix}.to_out.0.weight`)!,
    p.get(`${prefix}.to_out.0.bias`)!,
  );
}

/** Transformer2DModel (one block, 1×1-conv projections) from the state dict alone. */
function naiveTransformer(p: Map<string, Tensor>, x: Tensor, ctx: Tensor): Tensor {
  const [b, c, h, w] = x.shape as [number, number, number, number];
  const ln = (t: Tensor, name: string): Tensor =>
    F.layerNorm(t, [t.shape[2]!], p.get(`${name}.weight`)!, p.get(`${name}.bias`)!, 1e-5);
  let s = F.groupNorm(x, 4, p.get('norm.weight')!, p.get('norm.bias')!, 1e-6);
  s = F.conv2d(s, p.get('proj_in.weight')!, p.get('proj_in.bias')!);
  s = s.flatten(2).transpose(1, 2); // (B, HW, C), row-major over (h, w)
  const blk = 'transformer_blocks.0';
  const n1 = ln(s, `${blk}.norm1`);
  s = s.add(naiveAttention(p, `${blk}.attn1`, n1, n1, 2));
  s = s.add(naiveAttention(p, `${blk}.attn2`, ln(s, `${blk}.norm2`), ctx, 2));
  const proj = F.linear(
    ln(s, `${blk}.norm3`),
    p.get(`${blk}.ff.net.0.proj.weight`)!,
    p.get(`${blk}.ff.net.0.proj.bias`)!,
  );
  const half = proj.shape[2]! / 2;
  const geglu = proj.slice(2, 0, half).mul(F.gelu(proj.slice(2, half)));
  s = s.add(F.linear(geglu, p.get(`${blk}.ff.net.2.weight`)!, p.get(`${blk}.ff.net.2.bias`)!));
  s = s.transpose(1, 2).reshape(b, c, h, w);
  return F.conv2d(s, p.get('proj_out.weight')!, p.get('proj_out.bias')!).add(x);
}

test('Transformer2DModel matches a head-by-head reference on a non-square input', () => {
  manualSeed(0);
  const m = model({ linear: false });
  perturb(m);
  noGrad(() =>
    tidy(() => {
      const x = randn([2, 8, 3, 5]);
      const ctx = randn([2, 7, 6]);
      assertClose(m.forward(x, ctx), asData(naiveTransformer(m.stateDict(), x, ctx)), {
        ...TOL,
        label: 'transformer',
      });
    }),
  );
});

test('use_linear_projection computes the same as 1×1-conv projections', () => {
  manualSeed(1);
  const conv = model({ linear: false, layers: 2 });
  perturb(conv);
  const linear = model({ linear: true, layers: 2 });
  const state = new Map(conv.stateDict());
  for (const key of ['proj_in.weight', 'proj_out.weight']) {
    state.set(key, state.get(key)!.flatten(1)); // (out, in, 1, 1) -> (out, in)
  }
  linear.loadStateDict(state);
  assert.deepEqual(linear.stateDict().get('proj_in.weight')!.shape, [8, 8]);
  noGrad(() =>
    tidy(() => {
      const x = randn([1, 8, 4, 3]);
      const ctx = randn([1, 5, 6]);
      assertClose(linear.forward(x, ctx), asData(conv.forward(x, ctx)), {
        ...TOL,
        label: 'linear',
      });
    }),
  );
});

test('key names, and no attn2/norm2 without a cross-attention width', () => {
  const m = model({ linear: false, cross: null });
  const keys = [...m.stateDict().keys()];
  assert.ok(keys.includes('transformer_blocks.0.ff.net.0.proj.weight'));
  assert.ok(keys.includes('transformer_blocks.0.ff.net.2.bias'));
  assert.deepEqual(m.stateDict().get('transformer_blocks.0.ff.net.0.proj.weight')!.shape, [64, 8]);
  assert.ok(!keys.some((k) => k.includes('attn2') || k.includes('norm2')));
  assert.ok(keys.includes('transformer_blocks.0.attn1.to_out.0.bias'));
  assert.ok(!keys.includes('transformer_blocks.0.attn1.to_q.bias')); // attention_bias false
  noGrad(() =>
    tidy(() => assert.deepEqual(m.forward(randn([1, 8, 2, 2]), null).shape, [1, 8, 2, 2])),
  );
});

test('onTransformerBlock reports each block with its path, normed input and output', () => {
  manualSeed(2);
  const m = model({ linear: true, layers: 2 });
  const seen: [string, TransformerBlockStates][] = [];
  noGrad(() =>
    tidy(() => {
      const x = randn([1, 8, 2, 3]);
      m.forward(x, randn([1, 4, 6]), { onTransformerBlock: (path, s) => seen.push([path, s]) });
      assert.deepEqual(
        seen.map(([p]) => p),
        ['transformer_blocks.0', 'transformer_blocks.1'],
      );
      const block: BasicTransformerBlock = m.transformerBlocks.at(1);
      const [, s1] = seen[1]!;
      assert.deepEqual(s1.input.shape, [1, 6, 8]);
      assert.deepEqual(s1.normed.toArray(), block.norm1.forward(s1.input).toArray());
      assert.deepEqual(s1.input.toArray(), seen[0]![1].output.toArray());
    }),
  );
});
