import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, Tensor, manualSeed, noGrad, ops, randn, tidy } from '../../src/index.js';
import {
  Attention,
  AttnCaptureProcessor,
  AttnProcessor,
  AttentionContextKey,
  ExtraKVProcessor,
  type AttentionProcessor,
  type ExtraKV,
} from '../../src/models/attention_processor.js';
import { UNet2DConditionModel } from '../../src/models/unet/unet_2d_condition.js';
import { TINY_UNET_CONFIG } from '../../apps/testing/tiny_models.js';
import { assertClose } from '../helpers/tensors.js';

const TOL = { atol: 1e-5, rtol: 1e-5 };
const asData = (t: Tensor): { shape: readonly number[]; data: number[] } => ({
  shape: t.shape,
  data: t.toArray(),
});

/** Perturbs every parameter so that biases and norms are away from their initial values. */
function perturb(m: Attention): Attention {
  noGrad(() => {
    for (const p of m.parameters()) ops.add_(p, randn([...p.shape]).mul(0.1), 1);
  });
  return m;
}

/** Probabilities written out head by head: (B, heads, Lq, Lk). */
function naiveProbs(attn: Attention, x: Tensor, keyInput: Tensor): Tensor {
  const q = attn.toQ.forward(x);
  const k = attn.toK.forward(keyInput);
  const d = attn.dimHead;
  const heads: Tensor[] = [];
  for (let h = 0; h < attn.heads; h++) {
    const s = q.slice(2, h * d, (h + 1) * d).matmul(k.slice(2, h * d, (h + 1) * d).transpose(1, 2));
    const e = s.div(Math.sqrt(d)).exp();
    heads.push(e.div(e.sum(-1, true)).unsqueeze(1));
  }
  return ops.cat(heads, 1);
}

/** to_out(softmax(Q Kᵀ/√d) V) with Q from x, K from keyInput, V from valueInput, head by head. */
function naive(attn: Attention, x: Tensor, keyInput: Tensor, valueInput: Tensor): Tensor {
  const probs = naiveProbs(attn, x, keyInput); // (B, heads, Lq, Lk)
  const v = attn.toV.forward(valueInput);
  const d = attn.dimHead;
  const outs: Tensor[] = [];
  for (let h = 0; h < attn.heads; h++) {
    outs.push(probs.select(1, h).matmul(v.slice(2, h * d, (h + 1) * d)));
  }
  return attn.toOut.at(0).forward(ops.cat(outs, 2));
}

test('AttnProcessor: self- and cross-attention match a head-by-head computation', () => {
  manualSeed(0);
  const self = perturb(new Attention({ queryDim: 8, heads: 2, dimHead: 4 }));
  const cross = perturb(new Attention({ queryDim: 8, crossAttentionDim: 6, heads: 4, dimHead: 3 }));
  assert.ok(!self.isCrossAttention && cross.isCrossAttention);
  assert.deepEqual(cross.toK.weight.shape, [12, 6]);
  noGrad(() =>
    tidy(() => {
      const x = randn([2, 5, 8]);
      const c = randn([2, 7, 6]);
      assertClose(self.forward(x), asData(naive(self, x, x, x)), { ...TOL, label: 'self' });
      assertClose(cross.forward(x, c), asData(naive(cross, x, c, c)), { ...TOL, label: 'cross' });
    }),
  );
});

test('spatial input with group norm, residual and rescale (the VAE layout)', () => {
  manualSeed(1);
  const attn = perturb(
    new Attention({
      queryDim: 8,
      heads: 1,
      dimHead: 8,
      bias: true,
      normNumGroups: 4,
      residualConnection: true,
      rescaleOutputFactor: 2,
      upcastSoftmax: true,
    }),
  );
  noGrad(() =>
    tidy(() => {
      const x = randn([1, 8, 3, 5]);
      const seq = x.flatten(2).transpose(1, 2); // (B, HW, C)
      const g = attn.groupNorm!;
      const normed = g.forward(seq.transpose(1, 2)).transpose(1, 2);
      const out = naive(attn, normed, normed, normed).transpose(1, 2).reshape(1, 8, 3, 5);
      assertClose(attn.forward(x), asData(out.add(x).div(2)), { ...TOL, label: 'spatial' });
    }),
  );
});

test('AttnCaptureProcessor stores (B, heads, Lq, Lk) probabilities and computes the same', () => {
  manualSeed(2);
  const a = perturb(new Attention({ queryDim: 8, crossAttentionDim: 6, heads: 2, dimHead: 4 }));
  const b = perturb(new Attention({ queryDim: 8, heads: 2, dimHead: 4 }));
  const store = new Map<string, Tensor>();
  const capA = new AttnCaptureProcessor('a', store);
  b.processor = new AttnCaptureProcessor('b', store);
  noGrad(() =>
    tidy(() => {
      const x = randn([2, 5, 8]);
      const c = randn([2, 7, 6]);
      const plain = a.forward(x, c);
      a.processor = capA;
      assertClose(a.forward(x, c), asData(plain), { ...TOL, label: 'output' });
      b.forward(x);
      const probs = store.get('a')!;
      assert.deepEqual(probs.shape, [2, 2, 5, 7]);
      assert.deepEqual(store.get('b')!.shape, [2, 2, 5, 5]);
      assertClose(probs, asData(naiveProbs(a, x, c)), { ...TOL, label: 'probs' });
      assertClose(probs.sum(-1), { shape: [2, 2, 5], data: Array(20).fill(1) }, TOL);
      // a second call replaces (and frees) the first capture
      a.forward(x, c);
      assert.ok(probs.isDisposed);
      assert.ok(!store.get('a')!.isDisposed);
    }),
  );
  // captures outlive tidy(); clear() frees the shared store
  assert.equal(store.size, 2);
  const kept = [...store.values()];
  assert.ok(kept.every((t) => !t.isDisposed));
  capA.clear();
  assert.equal(store.size, 0);
  assert.ok(kept.every((t) => t.isDisposed));
});

test('ExtraKVProcessor without extras is bit-identical to AttnProcessor', () => {
  manualSeed(3);
  const self = perturb(new Attention({ queryDim: 8, heads: 2, dimHead: 4 }));
  const spatial = perturb(
    new Attention({
      queryDim: 8,
      heads: 2,
      dimHead: 4,
      normNumGroups: 2,
      residualConnection: true,
    }),
  );
  const cross = perturb(new Attention({ queryDim: 8, crossAttentionDim: 6, heads: 2, dimHead: 4 }));
  noGrad(() =>
    tidy(() => {
      const x = randn([2, 6, 8]);
      const img = randn([2, 8, 2, 3]);
      const c = randn([2, 7, 6]);
      const cases: [Attention, Tensor, Tensor | null][] = [
        [self, x, null],
        [spatial, img, null],
        [cross, x, c],
      ];
      for (const [attn, input, ctx] of cases) {
        attn.processor = new AttnProcessor();
        const plain = attn.forward(input, ctx).toArray();
        const results: (ExtraKV | null)[] = [null, {}];
        for (const extra of results) {
          attn.processor = new ExtraKVProcessor(() => extra);
          assert.deepEqual(attn.forward(input, ctx).toArray(), plain);
        }
        // passing the layer's own input explicitly is also the plain computation
        if (!ctx) {
          attn.processor = new ExtraKVProcessor((z) => ({ keyInput: z, valueInput: z }));
          assert.deepEqual(attn.forward(input, ctx).toArray(), plain);
        }
      }
    }),
  );
});

test('ExtraKVProcessor: K = W_K[z, f], V = W_V[z + λf, f] (P3S Eq. 7–8)', () => {
  manualSeed(4);
  const attn = perturb(new Attention({ queryDim: 8, heads: 2, dimHead: 4, normNumGroups: 4 }));
  const lambda = 0.2;
  noGrad(() =>
    tidy(() => {
      const img = randn([2, 8, 2, 3]);
      const f = randn([2, 6, 8]); // same token count as z, as in P3S
      const extra = randn([2, 4, 8]); // and a different count works too
      let seen: Tensor | null = null;
      attn.processor = new ExtraKVProcessor((z) => {
        seen = z;
        return { extraKey: f, valueInput: z.add(f.mul(lambda)), extraValue: f };
      });
      const out = attn.forward(img);
      const seq = img.flatten(2).transpose(1, 2);
      const z = attn.groupNorm!.forward(seq.transpose(1, 2)).transpose(1, 2);
      assert.deepEqual(seen!.toArray(), z.toArray()); // the callback gets the normed input
      const k = ops.cat([z, f], 1);
      const v = ops.cat([z.add(f.mul(lambda)), f], 1);
      const expected = naive(attn, z, k, v).transpose(1, 2).reshape(2, 8, 2, 3);
      assertClose(out, asData(expected), { ...TOL, label: 'eq7-8' });

      attn.processor = new ExtraKVProcessor(() => ({ extraKey: extra, extraValue: extra }));
      assertClose(
        attn.forward(img),
        asData(
          naive(attn, z, ops.cat([z, extra], 1), ops.cat([z, extra], 1))
            .transpose(1, 2)
            .reshape(2, 8, 2, 3),
        ),
        { ...TOL, label: 'extra tokens' },
      );

      attn.processor = new ExtraKVProcessor(() => ({ extraKey: f }));
      assert.throws(() => attn.forward(img), /equal token counts.*\[2, 12, 8\].*\[2, 6, 8\]/);
    }),
  );
});

test('an ExtraKVProcessor source reads its features from the call, by a typed key', () => {
  manualSeed(6);
  const attn = perturb(new Attention({ queryDim: 8, heads: 2, dimHead: 4 }));
  const FEATURES = new AttentionContextKey<Tensor>('features');
  const OTHER = new AttentionContextKey<number>('other');
  noGrad(() =>
    tidy(() => {
      const x = randn([2, 6, 8]);
      const f = randn([2, 3, 8]);
      attn.processor = new AttnProcessor();
      const plain = attn.forward(x).toArray();
      attn.processor = new ExtraKVProcessor(() => ({ extraKey: f, extraValue: f }));
      const extended = attn.forward(x).toArray();
      attn.processor = new ExtraKVProcessor((_z, call) => {
        const g = FEATURES.read(call);
        return g ? { extraKey: g, extraValue: g } : null;
      });
      const both = { ...OTHER.entry(1), ...FEATURES.entry(f) };
      assert.deepEqual(attn.forward(x, null, both).toArray(), extended);
      assert.deepEqual(attn.forward(x, null, OTHER.entry(1)).toArray(), plain);
      assert.deepEqual(attn.forward(x).toArray(), plain);
      assert.equal(OTHER.read({ encoderHiddenStates: null, context: both }), 1);
      assert.equal(OTHER.read({ encoderHiddenStates: null, context: null }), undefined);
    }),
  );
  attn.dispose();
});

test('gradients reach the extra features; upcasting keeps bfloat16 close to float32', () => {
  manualSeed(5);
  const attn = perturb(new Attention({ queryDim: 8, heads: 2, dimHead: 4, upcastAttention: true }));
  attn.freeze();
  tidy(() => {
    const f = randn([1, 3, 8]).requiresGrad_();
    attn.processor = new ExtraKVProcessor(() => ({ extraKey: f, extraValue: f }));
    attn
      .forward(randn([1, 5, 8]))
      .sum()
      .backward();
    assert.ok(f.grad !== null && f.grad.abs().sum().item() > 0);
    assert.equal(attn.toQ.weight.grad, null);
  });
  attn.processor = new AttnProcessor();
  noGrad(() =>
    tidy(() => {
      const x = randn([1, 5, 8]);
      const full = attn.forward(x);
      const q = randn([1, 2, 5, 4]).to('bfloat16');
      attn.to('bfloat16');
      assert.equal(attn.attentionProbs(q, q).dtype, 'bfloat16');
      const half = attn.forward(x.to('bfloat16'));
      assert.equal(half.dtype, 'bfloat16');
      assertClose(half.float(), asData(full), { atol: 2e-2, rtol: 2e-2, label: 'bf16' });
    }),
  );
});

test("a forward call's attention context reaches every processor through the call, and only that call", () => {
  manualSeed(2);
  const unet = new UNet2DConditionModel({
    ...TINY_UNET_CONFIG,
    _class_name: 'UNet2DConditionModel',
  }).eval();
  const seen = new Map<string, unknown[]>();
  const recording = (path: string): AttentionProcessor => ({
    process(attn, hidden, call) {
      seen.set(path, [...(seen.get(path) ?? []), call.context?.marker ?? null]);
      return new AttnProcessor().process(attn, hidden, call);
    },
  });
  const processors = new Map(
    [...unet.attnProcessors().keys()].map((k) => [k, recording(k)] as const),
  );
  unet.setAttnProcessor(processors);
  tidy(() => {
    const g = new Generator(1);
    const x = randn([1, 4, 8, 8], { generator: g });
    const c = randn([1, 77, TINY_UNET_CONFIG.cross_attention_dim as number], { generator: g });
    noGrad(() => unet.forward(x, 10, c, { attentionContext: { marker: 'first' } }));
    noGrad(() => unet.forward(x, 10, c));
  });
  assert.equal(seen.size, processors.size);
  for (const [path, markers] of seen) assert.deepEqual(markers, ['first', null], path);
  unet.dispose();
});
