// DDPM: the beta schedules against their formulas, training targets per prediction_type, and
// one ancestral step against Ho et al.'s posterior (Eq. 6–7) written out by hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, randn, tidy, memory, type Tensor } from '../../src/index.js';
import { DDPMScheduler } from '../../src/schedulers/index.js';
import { assertClose } from '../helpers/tensors.js';

function data(t: Tensor): { shape: readonly number[]; data: number[] } {
  return { shape: t.shape, data: t.toArray() };
}

function assertNear(actual: number, expected: number, tol: number, label: string): void {
  assert.ok(Math.abs(actual - expected) <= tol, `${label}: ${actual} vs ${expected}`);
}

test("'linear' and 'scaled_linear' betas follow their formulas; ᾱ is the running product", () => {
  const linear = new DDPMScheduler();
  assert.equal(linear.betas[0], Math.fround(0.0001));
  assert.equal(linear.betas[999], Math.fround(0.02));
  for (const i of [1, 250, 499, 500, 998]) {
    const want = 0.0001 + (i * (0.02 - 0.0001)) / 999;
    assertNear(linear.betas[i]!, want, 2e-7 * want, `linear β_${i}`); // a few float32 ulps
  }
  const scaled = new DDPMScheduler({
    beta_schedule: 'scaled_linear',
    beta_start: 0.00085,
    beta_end: 0.012,
  });
  const [s, e] = [Math.sqrt(0.00085), Math.sqrt(0.012)];
  for (const i of [0, 1, 333, 999]) {
    const want = (s + (i * (e - s)) / 999) ** 2;
    assertNear(scaled.betas[i]!, want, 3e-7 * want, `scaled β_${i}`);
  }
  let prod = 1;
  for (let i = 0; i < 1000; i++) {
    assert.equal(scaled.alphas[i], Math.fround(1 - scaled.betas[i]!));
    prod *= scaled.alphas[i]!;
    assertNear(scaled.alphasCumprod[i]!, prod, 6e-8, `ᾱ_${i}`);
  }
});

test("'squaredcos_cap_v2' (cosine) and 'sigmoid' betas", () => {
  const cos = new DDPMScheduler({ beta_schedule: 'squaredcos_cap_v2' });
  const alphaBar = (u: number) => Math.cos(((u + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
  for (const i of [0, 1, 500, 990]) {
    const want = 1 - alphaBar((i + 1) / 1000) / alphaBar(i / 1000);
    assertNear(cos.betas[i]!, want, 1e-8 + 1e-6 * want, `cosine β_${i}`);
  }
  // ᾱ(1) = cos²(π/2) = 0, so the last β is capped at 0.999
  assert.equal(cos.betas[999], Math.fround(0.999));

  const sig = new DDPMScheduler({ beta_schedule: 'sigmoid', beta_start: 0.0001, beta_end: 0.02 });
  const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
  for (const i of [0, 500, 999]) {
    const want = sigmoid(-6 + (12 * i) / 999) * (0.02 - 0.0001) + 0.0001;
    assertNear(sig.betas[i]!, want, 1e-8, `sigmoid β_${i}`);
  }
});

test('rescale_betas_zero_snr: ᾱ_T = 0 and √ᾱ is an affine map of the original √ᾱ', () => {
  const cfg = { beta_schedule: 'scaled_linear', beta_start: 0.00085, beta_end: 0.012 } as const;
  const plain = new DDPMScheduler(cfg);
  const zero = new DDPMScheduler({ ...cfg, rescale_betas_zero_snr: true });
  assert.equal(zero.alphasCumprod[999], 0);
  const a0 = Math.sqrt(plain.alphasCumprod[0]!);
  const aT = Math.sqrt(plain.alphasCumprod[999]!);
  for (const i of [0, 10, 500, 900]) {
    const want = ((Math.sqrt(plain.alphasCumprod[i]!) - aT) * a0) / (a0 - aT);
    assertNear(Math.sqrt(zero.alphasCumprod[i]!), want, 1e-6, `√ᾱ_${i}`);
  }
});

test('training targets: ε, v, x_0; v and x_t determine x_0 and ε', () => {
  tidy(() => {
    const g = new Generator(11);
    const x0 = randn([3, 4, 8, 8], { generator: g });
    const noise = randn([3, 4, 8, 8], { generator: g });
    const t = [10, 500, 990];
    const cfg = { beta_schedule: 'scaled_linear', beta_start: 0.00085, beta_end: 0.012 } as const;
    const eps = new DDPMScheduler(cfg);
    const v = new DDPMScheduler({ ...cfg, prediction_type: 'v_prediction' });
    const x = new DDPMScheduler({ ...cfg, prediction_type: 'sample' });
    assert.deepEqual(eps.trainingTarget(x0, noise, t).toArray(), noise.toArray());
    assert.deepEqual(x.trainingTarget(x0, noise, t).toArray(), x0.toArray());
    const target = v.trainingTarget(x0, noise, t);
    assert.deepEqual(target.toArray(), v.getVelocity(x0, noise, t).toArray());

    // per element: v = √ᾱ ε − √(1−ᾱ) x_0, and x_0 = √ᾱ x_t − √(1−ᾱ) v
    const xt = eps.addNoise(x0, noise, t);
    const [tv, xtv, x0v, nv] = [target, xt, x0, noise].map((a) => a.toArray());
    const per = 4 * 8 * 8;
    for (let i = 0; i < 3 * per; i += 37) {
      const a = eps.alphasCumprod[t[Math.floor(i / per)]!]!;
      assertNear(tv[i]!, Math.sqrt(a) * nv[i]! - Math.sqrt(1 - a) * x0v[i]!, 1e-5, `v[${i}]`);
      assertNear(xtv[i]!, Math.sqrt(a) * x0v[i]! + Math.sqrt(1 - a) * nv[i]!, 1e-5, `x_t[${i}]`);
      assertNear(Math.sqrt(a) * xtv[i]! - Math.sqrt(1 - a) * tv[i]!, x0v[i]!, 1e-5, `x0[${i}]`);
    }
    // one timestep for the whole batch
    const shared = eps.addNoise(x0, noise, 500);
    assertClose(shared.select(0, 1), data(xt.select(0, 1)), { atol: 0, rtol: 0 });
    assert.throws(() => eps.addNoise(x0, noise, [0, 1000, 3]), /\[0, 999\] for timesteps/);
  });
});

test('one ancestral step equals the posterior mean plus √β̃ z (Eq. 6–7)', () => {
  tidy(() => {
    const cfg = {
      beta_schedule: 'scaled_linear',
      beta_start: 0.00085,
      beta_end: 0.012,
      clip_sample: false,
    } as const;
    const g = new Generator(2);
    const xt = randn([1, 4, 8, 8], { generator: g });
    const eps = randn([1, 4, 8, 8], { generator: g });
    const z = randn([1, 4, 8, 8], { generator: g });
    for (const varianceType of ['fixed_small', 'fixed_small_log', 'fixed_large'] as const) {
      const ddpm = new DDPMScheduler({ ...cfg, variance_type: varianceType });
      ddpm.setTimesteps(50); // step 20: t = 500 -> t' = 480
      const t = 500;
      const a = ddpm.alphasCumprod[t]!;
      const ap = ddpm.alphasCumprod[480]!;
      const beta = 1 - a / ap;
      const x0 = xt.sub(eps.mul(Math.sqrt(1 - a))).div(Math.sqrt(a));
      const mean = x0
        .mul((Math.sqrt(ap) * beta) / (1 - a))
        .add(xt.mul((Math.sqrt(a / ap) * (1 - ap)) / (1 - a)));
      const variance = varianceType === 'fixed_large' ? beta : ((1 - ap) / (1 - a)) * beta;
      const want = mean.add(z.mul(Math.sqrt(variance)));
      const out = ddpm.step(eps, t, xt, { varianceNoise: z });
      assertClose(out.prevSample, data(want), { atol: 1e-5, rtol: 1e-5, label: varianceType });
      assertClose(out.predOriginalSample, data(x0), { atol: 1e-5, rtol: 1e-5 });
      // seeded: the same generator seed gives the same sample
      const s1 = ddpm.step(eps, t, xt, { generator: new Generator(9) }).prevSample.toArray();
      const s2 = ddpm.step(eps, t, xt, { generator: new Generator(9) }).prevSample.toArray();
      assert.deepEqual(s1, s2);
    }
    // at t = 0 no noise is added: x_{-1} is the posterior mean with ᾱ_prev = 1, i.e. x̂_0
    const ddpm = new DDPMScheduler(cfg);
    const last = ddpm.step(eps, 0, xt, { generator: new Generator(1) });
    assertClose(last.prevSample, data(last.predOriginalSample), { atol: 1e-6, rtol: 1e-6 });
  });
});

test('addNoise and step free their intermediates', () => {
  const ddpm = new DDPMScheduler();
  const g = new Generator(0);
  const x = randn([2, 4, 4, 4], { generator: g });
  const before = memory().liveTensors;
  for (let i = 0; i < 5; i++) {
    ddpm.addNoise(x, x, [1, 2]).dispose();
    const out = ddpm.step(x, 500, x, { generator: g });
    out.prevSample.dispose();
    out.predOriginalSample.dispose();
  }
  assert.equal(memory().liveTensors, before);
  x.dispose();
});
