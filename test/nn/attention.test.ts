// The chunked attention (native ChunkedAttention) against the plain softmax(q kᵀ/√d) v on random
// tensors: outputs and gradients w.r.t. q, k and v, with masks, cross-attention shapes,
// broadcast keys, half precision and without gradients; and which path a call takes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, Tensor, memory, noGrad, ops, randn, tensor, tidy } from '../../src/index.js';
import * as F from '../../src/nn/functional.js';
import { hasOp } from '../../src/engine/ops.js';
import { assertClose } from '../helpers/tensors.js';

const TOL = { atol: 1e-5, rtol: 1e-4 };
const data = (t: Tensor) => ({ shape: t.shape, data: t.toArray() });

/** The plain computation, as attentionProbs() then the product with v. */
function plain(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | null = null): Tensor {
  return ops.matmul(F.attentionProbs(q, k, 1 / Math.sqrt(q.shape[q.ndim - 1]!), mask), v);
}

type Attend = (q: Tensor, k: Tensor, v: Tensor) => Tensor;

/** Output and d(sum(out · probe))/d{q, k, v} of one attention function on fresh leaves. */
function run(attend: Attend, shapes: number[][], seed: number) {
  const g = new Generator(seed);
  const [q, k, v] = shapes.map((s) => randn(s, { generator: g }).requiresGrad_()) as Tensor[];
  const out = attend(q!, k!, v!);
  out
    .mul(randn([...out.shape], { generator: g }))
    .sum()
    .backward();
  return { out: out.detach(), dq: q!.grad!, dk: k!.grad!, dv: v!.grad! };
}

function assertSameAttention(shapes: number[][], chunkRows: number, mask: Tensor | null = null) {
  tidy(() => {
    const want = run((q, k, v) => plain(q, k, v, mask), shapes, 3);
    const got = run((q, k, v) => F.chunkedAttention(q, k, v, { mask, chunkRows }), shapes, 3);
    for (const key of ['out', 'dq', 'dk', 'dv'] as const) {
      assertClose(got[key], data(want[key]), { ...TOL, label: key });
    }
  });
}

/** q, k, v shapes (B, heads, L, d); keys and values may have their own batch and width. */
function qkv(o: { b: number; nq: number; nk: number; d: number; dv?: number; kb?: number }) {
  const kb = o.kb ?? o.b;
  return [
    [o.b, 2, o.nq, o.d],
    [kb, 2, o.nk, o.d],
    [kb, 2, o.nk, o.dv ?? o.d],
  ];
}

test('chunked self-attention matches the plain path, blocks dividing Nq or not', () => {
  assertSameAttention(qkv({ b: 2, nq: 96, nk: 96, d: 16 }), 32);
  assertSameAttention(qkv({ b: 1, nq: 50, nk: 50, d: 8 }), 16);
  assertSameAttention(qkv({ b: 1, nq: 10, nk: 10, d: 8 }), 64); // one block
});

test('chunked cross-attention to 77 tokens and values of another width', () => {
  assertSameAttention(qkv({ b: 2, nq: 64, nk: 77, d: 8, dv: 12 }), 24);
});

test('chunked attention with a per-row mask and a broadcast key mask', () => {
  const g = new Generator(5);
  const shapes = qkv({ b: 1, nq: 40, nk: 30, d: 8 });
  tidy(() => {
    assertSameAttention(shapes, 16, randn([40, 30], { generator: g }));
    const blocked = Array.from({ length: 30 }, (_, j) => (j % 7 === 0 ? -Infinity : 0));
    assertSameAttention(shapes, 16, tensor(blocked, [1, 1, 1, 30]));
  });
});

test('keys broadcast over the batch get their gradient summed back', () => {
  assertSameAttention(qkv({ b: 3, kb: 1, nq: 40, nk: 20, d: 8 }), 16);
});

/** Three random tensors of one shape. */
function randomQKV(seed: number, shape: number[]): [Tensor, Tensor, Tensor] {
  const g = new Generator(seed);
  const r = () => randn(shape, { generator: g });
  return [r(), r(), r()];
}

test('chunked attention in bfloat16 stays close to float32, gradients included', () => {
  tidy(() => {
    const inputs = randomQKV(8, [1, 2, 64, 16]);
    const leaves = (dtype: 'float32' | 'bfloat16') =>
      inputs.map((t) => t.detach().to(dtype).requiresGrad_()) as [Tensor, Tensor, Tensor];
    const full = leaves('float32');
    const half = leaves('bfloat16');
    const want = plain(...full);
    const got = F.chunkedAttention(...half, { chunkRows: 16 });
    assert.equal(got.dtype, 'bfloat16');
    assertClose(got.float(), data(want), { atol: 3e-2, rtol: 3e-2 });
    want.square().sum().backward();
    got.float().square().sum().backward();
    half.forEach((h, i) => {
      assert.equal(h.grad!.dtype, 'bfloat16');
      assertClose(h.grad!.float(), data(full[i]!.grad!), { atol: 0.1, rtol: 0.05, label: `${i}` });
    });
  });
});

test('chunked attention without gradients keeps no graph and leaks no tensors', () => {
  const before = memory().liveTensors;
  tidy(() => {
    const [q, k, v] = randomQKV(9, [1, 2, 48, 8]);
    const out = noGrad(() => F.chunkedAttention(q, k, v, { chunkRows: 16 }));
    assert.equal(out.requiresGrad, false);
    assertClose(out, data(plain(q, k, v)), TOL);
  });
  assert.equal(memory().liveTensors, before);
});

test('large score matrices take the fused or chunked path, small ones the plain or fused', () => {
  tidy(() => {
    const fused = hasOp('aten::scaled_dot_product_attention');
    const big = randn([1, 8, 4096, 40]); // SD 1.5's 64×64 self-attention: 512 MiB of scores
    const ctx = randn([1, 8, 77, 40]); // cross-attention to the text: 10 MiB
    assert.equal(F.attentionPath(big, big), fused ? 'fused' : 'chunked');
    assert.equal(F.attentionPath(big, ctx), fused ? 'fused' : 'plain');
    assert.equal(F.attentionPath(big, big, { dropout: 0.1 }), 'plain');
  });
});
