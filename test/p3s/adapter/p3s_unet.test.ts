// P3S on the tiny SD-structured U-Net of the fixtures: zero initialisation, gradient flow,
// training lowers the loss, and each equation against values worked out by hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Generator,
  randn,
  tidy,
  manualSeed,
  noGrad,
  memory,
  tensor,
  zeros,
  ones,
  disposeAll,
} from '../../../src/index.js';
import { UNet2DConditionModel } from '../../../src/models/unet/unet_2d_condition.js';
import { P3SAdapter, P3SUNet, DEFAULT_SETTINGS } from '../../../src/p3s/adapter/p3s_unet.js';
import { P3S_FEATURES, P3SInjectionProcessor } from '../../../src/p3s/adapter/injection.js';
import { Attention, type AttentionCall } from '../../../src/models/attention_processor.js';
import * as ops from '../../../src/engine/ops.generated.js';
import { SubjectEncoder } from '../../../src/p3s/adapter/subject_encoder.js';
import {
  attentionConsistencyLoss,
  ldmLoss,
  totalLoss,
  weightedLdmLoss,
} from '../../../src/p3s/adapter/losses.js';
import {
  formatWeightCurve,
  injectionWeight,
  parseWeightCurve,
  PAPER_CURVE,
} from '../../../src/p3s/adapter/weight_schedule.js';
import { Adam } from '../../../src/optim/index.js';
import { fixturePath } from '../../helpers/paths.js';

const unet = UNet2DConditionModel.fromPretrained(fixturePath('tiny-sd', 'unet'));
unet.freeze();
const CLIP_DIM = 24;

function inputs(
  seed: number,
  b = 2,
): {
  xt: ReturnType<typeof randn>;
  ctx: ReturnType<typeof randn>;
  cond: { latent: ReturnType<typeof randn>; clipStates: ReturnType<typeof randn> };
} {
  const g = new Generator(seed);
  return {
    xt: randn([b, 4, 8, 8], { generator: g }),
    ctx: randn([b, 77, 32], { generator: g }),
    cond: {
      latent: randn([1, 4, 8, 8], { generator: g }),
      clipStates: randn([1, 5, CLIP_DIM], { generator: g }),
    },
  };
}

for (const mode of ['decoupled', 'aligned'] as const) {
  test(`an untrained adapter reproduces the frozen U-Net exactly (${mode} injection)`, () => {
    manualSeed(0);
    const adapter = new P3SAdapter(unet, CLIP_DIM);
    tidy(() => {
      const { xt, ctx, cond } = inputs(1);
      const plain = noGrad(() => unet.forward(xt, tensor([999, 10], [2], { dtype: 'int64' }), ctx));
      const p3s = new P3SUNet(unet, adapter, { ...DEFAULT_SETTINGS, injectionMode: mode });
      try {
        const injected = noGrad(() => p3s.forward(xt, [999, 10], ctx, cond).noisePred);
        assert.deepEqual(injected.toArray(), plain.toArray());
      } finally {
        p3s.detach();
      }
    });
    adapter.dispose();
  });
}

/** An adapter like a trained one: its zero convolutions no longer zero (every weight perturbed). */
function trainedLikeAdapter(seed: number): P3SAdapter {
  manualSeed(0);
  const adapter = new P3SAdapter(unet, CLIP_DIM);
  noGrad(() => {
    const g = new Generator(seed);
    for (const p of adapter.parameters()) {
      const noise = randn(p.shape, { generator: g });
      ops.add_(p, noise, 0.05);
      noise.dispose(); // freed now, not by a finalizer during a later test's leak count
    }
  });
  return adapter;
}

test('an injection scale of 0 leaves that sample to the frozen U-Net (subject guidance), 1 changes nothing', () => {
  const adapter = trainedLikeAdapter(7);
  tidy(() => {
    const { xt, ctx, cond } = inputs(2);
    const t = [500, 500];
    const plain = noGrad(() => unet.forward(xt, tensor(t, [2], { dtype: 'int64' }), ctx));
    const p3s = new P3SUNet(unet, adapter, {
      ...DEFAULT_SETTINGS,
      weightCurve: parseWeightCurve('fixed:1'),
    });
    try {
      const both = noGrad(() => p3s.forward(xt, t, ctx, cond).noisePred);
      const half = noGrad(
        () => p3s.forward(xt, t, ctx, cond, { injectionScale: [0, 1] }).noisePred,
      );
      const gap = (a: typeof plain, b: typeof plain, i: number) =>
        a.select(0, i).sub(b.select(0, i)).abs().max().item();
      assert.ok(gap(both, plain, 0) > 1e-3, 'the perturbed adapter must change sample 0');
      assert.ok(
        gap(half, plain, 0) < 1e-5,
        `scale 0: ${gap(half, plain, 0)} from the frozen U-Net`,
      );
      assert.ok(gap(half, both, 1) < 1e-5, `scale 1: ${gap(half, both, 1)} from full injection`);
      assert.throws(
        () => p3s.forward(xt, t, ctx, cond, { injectionScale: [1] }),
        /2 injection scales/,
      );
    } finally {
      p3s.detach();
    }
  });
  adapter.dispose();
});

for (const mode of ['decoupled', 'aligned', 'joint'] as const) {
  test(`the copy runs only on samples whose injection scale is not 0, with the same result (${mode})`, () => {
    const adapter = trainedLikeAdapter(8);
    const copyBatches: number[] = [];
    const copyForward = adapter.copy.forward.bind(adapter.copy);
    adapter.copy.forward = (x, t, c) => {
      copyBatches.push(x.shape[0]!);
      return copyForward(x, t, c);
    };
    tidy(() => {
      const { xt, ctx, cond } = inputs(4, 3);
      const t = [700, 700, 700];
      const p3s = new P3SUNet(unet, adapter, {
        ...DEFAULT_SETTINGS,
        injectionMode: mode,
        weightCurve: parseWeightCurve('fixed:1'),
      });
      try {
        const injectionScale = [0, 1, 0];
        const skipped = noGrad(() => p3s.forward(xt, t, ctx, cond, { injectionScale }).noisePred);
        // captureAttention needs the copy's attention for every sample: the full-batch path
        const full = noGrad(() => {
          const o = p3s.forward(xt, t, ctx, cond, { injectionScale, captureAttention: true });
          disposeAll([o.copyAttention, o.frozenAttention]); // kept out of scopes for the caller
          return o.noisePred;
        });
        assert.deepEqual(copyBatches, [1, 3]);
        const gap = skipped.sub(full).abs().max().item();
        assert.ok(gap < 1e-5, `${gap} between the skipping and the full-batch copy`);
        const plain = noGrad(() => unet.forward(xt, tensor(t, [3], { dtype: 'int64' }), ctx));
        const injected = skipped.select(0, 1).sub(plain.select(0, 1)).abs().max().item();
        assert.ok(injected > 1e-3, `sample 1 must carry the copy's features (${injected})`);
      } finally {
        p3s.detach();
      }
    });
    adapter.dispose();
  });
}

test('the injected features reach only the call that carries them', () => {
  const adapter = trainedLikeAdapter(9);
  tidy(() => {
    const { xt, ctx, cond } = inputs(3);
    const t = [400, 400];
    const frozen = (): number[] =>
      noGrad(() => unet.forward(xt, tensor(t, [2], { dtype: 'int64' }), ctx).toArray());
    const p3s = new P3SUNet(unet, adapter, {
      ...DEFAULT_SETTINGS,
      weightCurve: parseWeightCurve('fixed:1'),
    });
    try {
      const before = frozen();
      const withoutCondition = noGrad(() => p3s.forward(xt, t, ctx, null).noisePred.toArray());
      const injected = noGrad(() => p3s.forward(xt, t, ctx, cond).noisePred.toArray());
      assert.ok(maxGap(injected, before) > 1e-3, 'the perturbed adapter must change the output');
      // the same processors stay attached, yet the calls after carry no features
      assert.deepEqual(frozen(), before);
      assert.deepEqual(
        noGrad(() => p3s.forward(xt, t, ctx, null).noisePred.toArray()),
        withoutCondition,
      );
    } finally {
      p3s.detach();
    }
  });
  adapter.dispose();
});

function maxGap(a: readonly number[], b: readonly number[]): number {
  return a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);
}

test("'aligned' injection adds the copy's feature at its own position before the output projection", () => {
  manualSeed(3);
  const attn = new Attention({ queryDim: 8, heads: 2, dimHead: 4 });
  tidy(() => {
    const g = new Generator(5);
    const x = randn([2, 6, 8], { generator: g });
    const f = randn([2, 6, 8], { generator: g });
    const call: AttentionCall = {
      encoderHiddenStates: null,
      context: P3S_FEATURES.entry(new Map([['b', f]])),
    };
    const run = (mode: 'decoupled' | 'aligned') =>
      noGrad(() => new P3SInjectionProcessor('b', 0.2, mode).process(attn, x, call));
    const diff = run('aligned').sub(run('decoupled'));
    // to_out is affine, so the difference is W_out f (its bias cancels)
    const expected = noGrad(() => ops.matmul(f, attn.toOut.at(0).weight.transpose(0, 1)));
    assert.ok(diff.sub(expected).abs().max().item() < 1e-5);
    assert.ok(expected.abs().max().item() > 0.1, 'the feature must change the output');
  });
  attn.dispose();
});

test("Eq. (8)'s joint softmax dilutes attention at initialisation (why decoupled is the default)", () => {
  manualSeed(0);
  const adapter = new P3SAdapter(unet, CLIP_DIM);
  tidy(() => {
    const { xt, ctx, cond } = inputs(1);
    const plain = noGrad(() => unet.forward(xt, tensor([999, 10], [2], { dtype: 'int64' }), ctx));
    const p3s = new P3SUNet(unet, adapter, { ...DEFAULT_SETTINGS, injectionMode: 'joint' });
    try {
      const joint = noGrad(() => p3s.forward(xt, [999, 10], ctx, cond).noisePred);
      const diff = joint.sub(plain).abs().max().item();
      assert.ok(diff > 1e-4, `joint injection changed the output by only ${diff}`);
    } finally {
      p3s.detach();
    }
  });
  adapter.dispose();
});

test('training steps lower the loss, and gradients reach only the adapter', async () => {
  manualSeed(3);
  const adapter = new P3SAdapter(unet, CLIP_DIM);
  const p3s = new P3SUNet(unet, adapter);
  const opt = new Adam(adapter.parameters(), { lr: 2e-3 });
  const { xt, ctx, cond } = inputs(5);
  const target = randn([2, 4, 8, 8], { generator: new Generator(9) });
  const losses: number[] = [];
  const live0 = memory().liveTensors;
  try {
    for (let step = 0; step < 25; step++) {
      losses.push(
        tidy(() => {
          const out = p3s.forward(xt, [500, 300], ctx, cond, { captureAttention: true });
          const ac = attentionConsistencyLoss(out.copyAttention!, out.frozenAttention!);
          const loss = totalLoss(ldmLoss(out.noisePred, target), ac, 0.1);
          opt.zeroGrad();
          loss.backward();
          if (step === 0) {
            assert.ok(
              unet.parameters().every((p) => p.grad === null),
              'the frozen U-Net keeps no gradients',
            );
            // at step 0 only the zero projections see a gradient (as in ControlNet's zero convolutions)
            const zeroProj = adapter.copy.zeroProjections.parameters();
            assert.ok(
              zeroProj.some((p) => p.grad !== null && p.grad.abs().sum().item() > 0),
              'zero projections get gradients',
            );
          }
          opt.step();
          out.copyAttention!.dispose();
          out.frozenAttention!.dispose();
          return loss.item();
        }),
      );
      await new Promise((r) => setImmediate(r));
    }
    const withGrad = tidy(() =>
      adapter
        .namedParameters()
        .filter(([, p]) => p.grad !== null && p.grad.abs().sum().item() > 0)
        .map(([n]) => n.split('.')[0]),
    );
    assert.ok(
      new Set(withGrad).has('subject_encoder') && new Set(withGrad).has('copy'),
      `gradients reached ${[...new Set(withGrad)].join(', ')}`,
    );
    assert.ok(
      unet.parameters().every((p) => p.grad === null),
      'the frozen U-Net still keeps no gradients',
    );
    // Adam's moments are the only new tensors
    assert.equal(
      memory().liveTensors,
      live0 + opt.stateDict().tensors.size,
      'no tensors leak across steps',
    );
    assert.ok(
      losses[losses.length - 1]! < losses[0]! * 0.9,
      `loss went from ${losses[0]} to ${losses[losses.length - 1]}`,
    );
  } finally {
    p3s.detach();
    adapter.dispose();
  }
});

test('Eq. (10): the timestep weight curve', () => {
  // ε_t = 1 − 0.5 (t/T)² + 0.2
  assert.equal(injectionWeight(PAPER_CURVE, 0, 1000), 1.2);
  assert.equal(injectionWeight(PAPER_CURVE, 1000, 1000), 0.7);
  assert.ok(Math.abs(injectionWeight(PAPER_CURVE, 500, 1000) - (1 - 0.5 * 0.25 + 0.2)) < 1e-15);
  assert.equal(injectionWeight(parseWeightCurve('fixed:0.7'), 123, 1000), 0.7);
  assert.equal(injectionWeight(parseWeightCurve('quadratic-increasing'), 500, 1000), 0.25);
  assert.equal(injectionWeight(parseWeightCurve('quadratic-decreasing'), 500, 1000), 0.75);
  assert.equal(injectionWeight(parseWeightCurve('paper:1,0,1'), 250, 1000), 0.75);
  assert.throws(() => parseWeightCurve('cubic'), /Unknown weight curve "cubic"/);
});

test('the cutoff curve: its weight down to share·T, then 0; its text form round-trips', () => {
  const curve = parseWeightCurve('cutoff:1,0.2');
  assert.equal(injectionWeight(curve, 999, 1000), 1);
  assert.equal(injectionWeight(curve, 200, 1000), 1);
  assert.equal(injectionWeight(curve, 199, 1000), 0);
  assert.equal(injectionWeight(curve, 0, 1000), 0);
  assert.equal(formatWeightCurve(curve), 'cutoff:1,0.2');
  assert.equal(injectionWeight(parseWeightCurve('cutoff:0.7,0'), 0, 1000), 0.7);
  for (const bad of ['cutoff:1', 'cutoff:1,1.5', 'cutoff:1,-0.1', 'cutoff:1,0.2,3'])
    assert.throws(() => parseWeightCurve(bad), /Expected cutoff:<weight>,<share/, bad);
});

test('Eq. (11)–(12): attention consistency by hand', () => {
  tidy(() => {
    const mc = tensor([0.5, 0.5, 1, 0], [2, 2]);
    const mo = tensor([1, 0, 0.5, 0.5], [2, 2]);
    // MSE = (0.25 + 0.25 + 0.25 + 0.25) / 4 = 0.25; avg = (2 + 2) / 2 = 2 -> 0.125
    assert.ok(Math.abs(attentionConsistencyLoss(mc, mo).item() - 0.125) < 1e-7);
    // Eq. (15) with γ = 0.1
    assert.ok(
      Math.abs(totalLoss(tensor([1]).sum(), tensor([0.5]).sum(), 0.1).item() - 1.05) < 1e-7,
    );
    assert.throws(() => attentionConsistencyLoss(mc, zeros([3])), /differ in shape/);
  });
});

test('Eq. (14) weighted per latent position, by hand', () => {
  tidy(() => {
    // B = 1, C = 2, 1 × 2 positions: errors (1, 2) in channel 0 and (3, 4) in channel 1
    const target = zeros([1, 2, 1, 2]);
    const prediction = tensor([1, 2, 3, 4], [1, 2, 1, 2]);
    const uniform = tensor([1, 1], [1, 1, 1, 2]);
    const plain = ldmLoss(prediction, target).item(); // (1 + 4 + 9 + 16) / 4 = 7.5
    assert.ok(Math.abs(weightedLdmLoss(prediction, target, uniform).item() - plain) < 1e-6);
    // weight 1 on position 0 only: (1 + 9) / (2 · 1) = 5
    const first = tensor([1, 0], [1, 1, 1, 2]);
    assert.ok(Math.abs(weightedLdmLoss(prediction, target, first).item() - 5) < 1e-6);
    // weights (1, 0.5): (1 + 9 + 0.5 · (4 + 16)) / (2 · 1.5) = 20 / 3
    const half = tensor([1, 0.5], [1, 1, 1, 2]);
    assert.ok(Math.abs(weightedLdmLoss(prediction, target, half).item() - 20 / 3) < 1e-5);
    assert.equal(weightedLdmLoss(prediction, target, zeros([1, 1, 1, 2])).item(), 0);
    assert.throws(
      () => weightedLdmLoss(prediction, target, zeros([1, 2, 1, 2])),
      /loss weights of shape \[1, 1, 1, 2\]/,
    );
  });
});

test("Eq. (4)–(5): with the zero convolution, queries vanish and I'' = I' + mean(V)", () => {
  manualSeed(0);
  const enc = new SubjectEncoder({ latentChannels: 4, clipHiddenSize: 6, attentionDim: 8 });
  tidy(() => {
    const latent = randn([1, 4, 3, 3]);
    const clip = randn([1, 5, 6]);
    const out = noGrad(() => enc.forward(latent, clip));
    const v = noGrad(() => enc.toV.forward(clip)).mean([1]); // (1, 4): uniform attention averages V
    const expected = latent.add(v.view(1, 4, 1, 1));
    assert.ok(out.sub(expected).abs().max().item() < 1e-6);
    assert.deepEqual([...out.shape], [1, 4, 3, 3]);
    void ones;
  });
});
