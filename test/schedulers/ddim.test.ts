// DDIM beyond the fixtures: timestep spacings derived by hand from diffusers' documented
// formulas, eta > 0 (seeded noise), the three prediction types, clipping, set_alpha_to_one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, ones, randn, tidy, zeros, type Tensor } from '../../src/index.js';
import {
  DDIMScheduler,
  DDPMScheduler,
  PNDMScheduler,
  getVelocity,
} from '../../src/schedulers/index.js';
import { assertClose, maxAbsDiff } from '../helpers/tensors.js';

const SD15 = {
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  set_alpha_to_one: false,
  steps_offset: 1,
  clip_sample: false,
} as const;
const PNDM_SD15 = {
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  set_alpha_to_one: false,
  steps_offset: 1,
  skip_prk_steps: true,
} as const;

function timestepsFor(spacing: 'leading' | 'trailing' | 'linspace', n: number, offset = 0) {
  const ddim = new DDIMScheduler({ ...SD15, timestep_spacing: spacing, steps_offset: offset });
  ddim.setTimesteps(n);
  return ddim.timesteps;
}

test("'leading' spacing: k·⌊T/n⌋ + steps_offset, descending", () => {
  // ⌊1000/7⌋ = 142: 0, 142, ..., 852, plus the offset 1
  assert.deepEqual(timestepsFor('leading', 7, 1), [853, 711, 569, 427, 285, 143, 1]);
  // ⌊1000/3⌋ = 333
  assert.deepEqual(timestepsFor('leading', 3, 1), [667, 334, 1]);
  assert.deepEqual(timestepsFor('leading', 4, 0), [750, 500, 250, 0]);
});

test("'trailing' spacing: round(T − k·T/n) − 1, steps_offset unused", () => {
  // T/n = 100: 1000, 900, ..., 100, minus 1
  assert.deepEqual(
    timestepsFor('trailing', 10, 1),
    [999, 899, 799, 699, 599, 499, 399, 299, 199, 99],
  );
  // T/n = 333.33…: 1000, 666.67, 333.33 round to 1000, 667, 333
  assert.deepEqual(timestepsFor('trailing', 3), [999, 666, 332]);
  // T/n = 142.857…: 1000, 857.14, 714.29, 571.43, 428.57, 285.71, 142.86
  assert.deepEqual(timestepsFor('trailing', 7), [999, 856, 713, 570, 428, 285, 142]);
});

test("'linspace' spacing: round(k·(T − 1)/(n − 1)), halves to even as numpy rounds", () => {
  // (T − 1)/(n − 1) = 111 exactly
  assert.deepEqual(timestepsFor('linspace', 10), [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]);
  // 999/6 = 166.5: 166.5 → 166, 499.5 → 500, 832.5 → 832 (half to even)
  assert.deepEqual(timestepsFor('linspace', 7), [999, 832, 666, 500, 333, 166, 0]);
  assert.deepEqual(timestepsFor('linspace', 1), [0]);
});

test('PNDM repeats the second timestep for every spacing', () => {
  const pndm = new PNDMScheduler({ ...PNDM_SD15, timestep_spacing: 'trailing' });
  pndm.setTimesteps(4);
  // trailing for 4: 999, 749, 499, 249
  assert.deepEqual(pndm.timesteps, [999, 749, 749, 499, 249]);
  pndm.setTimesteps(1);
  assert.deepEqual(pndm.timesteps, [999]);
});

/** σ_t(η) = η √((1 − ᾱ_prev)/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_prev) (DDIM Eq. 16), in float64. */
function sigma(ddim: DDIMScheduler, t: number, prevT: number, eta: number): number {
  const a = ddim.alphasCumprod[t]!;
  const ap = prevT >= 0 ? ddim.alphasCumprod[prevT]! : ddim.finalAlphaCumprod;
  return eta * Math.sqrt((1 - ap) / (1 - a)) * Math.sqrt(1 - a / ap);
}

test('eta > 0: x_{t-1} = √ᾱ_prev x̂_0 + √(1 − ᾱ_prev − σ²) ε + σ z, z from the seeded generator', () => {
  tidy(() => {
    const ddim = new DDIMScheduler(SD15);
    ddim.setTimesteps(10);
    const g = new Generator(7);
    const x = randn([2, 4, 8, 8], { generator: g });
    const eps = randn([2, 4, 8, 8], { generator: g });
    const t = 501;
    const prevT = 401;
    const eta = 0.7;

    const a = ddim.alphasCumprod[t]!;
    const ap = ddim.alphasCumprod[prevT]!;
    const s = sigma(ddim, t, prevT, eta);
    assert.ok(s > 0.01, `σ = ${s}`);
    const z = randn([2, 4, 8, 8], { generator: new Generator(123) });
    const x0 = x.sub(eps.mul(Math.sqrt(1 - a))).div(Math.sqrt(a));
    const want = x0
      .mul(Math.sqrt(ap))
      .add(eps.mul(Math.sqrt(1 - ap - s * s)))
      .add(z.mul(s));

    const out = ddim.step(eps, t, x, { eta, generator: new Generator(123) });
    assertClose(
      out.prevSample,
      { shape: want.shape, data: want.toArray() },
      {
        atol: 1e-5,
        rtol: 1e-5,
        label: 'eta 0.7',
      },
    );

    // same seed, same result bit for bit; another seed differs
    const again = ddim.step(eps, t, x, { eta, generator: new Generator(123) });
    assert.deepEqual(again.prevSample.toArray(), out.prevSample.toArray());
    const other = ddim.step(eps, t, x, { eta, generator: new Generator(124) });
    assert.ok(maxAbsDiff(other.prevSample.toArray(), out.prevSample.toArray()) > 1e-3);
    // passing the noise itself is the same as drawing it
    const given = ddim.step(eps, t, x, { eta, varianceNoise: z });
    assert.deepEqual(given.prevSample.toArray(), out.prevSample.toArray());
    // η = 0 ignores the generator entirely
    const det = ddim.step(eps, t, x, { generator: new Generator(5) });
    const det2 = ddim.step(eps, t, x);
    assert.deepEqual(det.prevSample.toArray(), det2.prevSample.toArray());
  });
});

test("eta = 1: the noise scale σ_t equals DDPM's posterior std between the same timesteps", () => {
  tidy(() => {
    const ddim = new DDIMScheduler(SD15);
    const ddpm = DDPMScheduler.fromConfig(SD15);
    ddim.setTimesteps(10);
    ddpm.setTimesteps(10);
    const g = new Generator(8);
    const x = randn([1, 4, 4, 4], { generator: g });
    const eps = randn([1, 4, 4, 4], { generator: g });
    const [one, zero] = [ones([1, 4, 4, 4]), zeros([1, 4, 4, 4])];
    const t = 501; // previous timestep 401 for both
    const ddimSigma = ddim
      .step(eps, t, x, { eta: 1, varianceNoise: one })
      .prevSample.sub(ddim.step(eps, t, x, { eta: 1, varianceNoise: zero }).prevSample);
    const ddpmStd = ddpm
      .step(eps, t, x, { varianceNoise: one })
      .prevSample.sub(ddpm.step(eps, t, x, { varianceNoise: zero }).prevSample);
    const [a, ap] = [ddim.alphasCumprod[t]!, ddim.alphasCumprod[401]!];
    const want = Math.sqrt(((1 - ap) / (1 - a)) * (1 - a / ap)); // √β̃ (DDPM Eq. 7)
    for (const diff of [ddimSigma.toArray(), ddpmStd.toArray()]) {
      for (const d of diff) assert.ok(Math.abs(d - want) < 1e-6, `${d} vs ${want}`);
    }
  });
});

test('v_prediction: x_0 recovered from v, and the step equals the epsilon step', () => {
  tidy(() => {
    const eps = new DDIMScheduler(SD15);
    const vpred = new DDIMScheduler({ ...SD15, prediction_type: 'v_prediction' });
    const sample = new DDIMScheduler({ ...SD15, prediction_type: 'sample' });
    for (const s of [eps, vpred, sample]) s.setTimesteps(20);
    const g = new Generator(3);
    const x0 = randn([1, 4, 8, 8], { generator: g });
    const noise = randn([1, 4, 8, 8], { generator: g });
    const near = { atol: 2e-5, rtol: 1e-5 };
    for (const t of [951, 501, 51, 1]) {
      const xt = eps.addNoise(x0, noise, t);
      const v = vpred.getVelocity(x0, noise, t);
      assertClose(vpred.trainingTarget(x0, noise, t), { shape: v.shape, data: v.toArray() });
      const fromV = vpred.step(v, t, xt);
      assertClose(fromV.predOriginalSample, data(x0), { ...near, label: `x0 from v, t=${t}` });
      const fromEps = eps.step(noise, t, xt);
      const fromX0 = sample.step(x0, t, xt);
      assertClose(fromV.prevSample, data(fromEps.prevSample), { ...near, label: `v step t=${t}` });
      assertClose(fromX0.prevSample, data(fromEps.prevSample), {
        ...near,
        label: `x0 step t=${t}`,
      });
    }
  });
});

test('PNDM v_prediction matches PNDM epsilon given the true noise', () => {
  tidy(() => {
    const eps = new PNDMScheduler(PNDM_SD15);
    const vpred = new PNDMScheduler({ ...PNDM_SD15, prediction_type: 'v_prediction' });
    eps.setTimesteps(10);
    vpred.setTimesteps(10);
    const g = new Generator(4);
    const x0 = randn([1, 4, 8, 8], { generator: g });
    const noise = randn([1, 4, 8, 8], { generator: g });
    const t = eps.timesteps[0]!;
    const xt = eps.addNoise(x0, noise, t);
    const a = eps.step(noise, t, xt).prevSample;
    const b = vpred.step(getVelocity(vpred.alphasCumprod, x0, noise, t), t, xt).prevSample;
    assertClose(b, data(a), { atol: 2e-5, rtol: 1e-5 });
    eps.reset();
    vpred.reset();
  });
});

test('clip_sample clamps the predicted x_0; set_alpha_to_one sets the last ᾱ_prev to 1', () => {
  tidy(() => {
    const clipped = new DDIMScheduler({ ...SD15, clip_sample: true, clip_sample_range: 0.5 });
    clipped.setTimesteps(10);
    const g = new Generator(5);
    const x = randn([1, 4, 8, 8], { generator: g }).mul(3);
    const eps = randn([1, 4, 8, 8], { generator: g });
    const out = clipped.step(eps, 901, x);
    const x0 = out.predOriginalSample.toArray();
    assert.ok(Math.max(...x0.map(Math.abs)) <= 0.5);
    assert.ok(x0.some((v) => v === 0.5) && x0.some((v) => v === -0.5));

    // at the last step (t = 1, prev = −99) the final ᾱ is used: 1 gives x_{t−1} = x̂_0
    const toOne = new DDIMScheduler({ ...SD15, set_alpha_to_one: true });
    toOne.setTimesteps(10);
    assert.equal(toOne.finalAlphaCumprod, 1);
    const last = toOne.step(eps, 1, x);
    assert.deepEqual(last.prevSample.toArray(), last.predOriginalSample.toArray());
    // SD 1.5 (false) uses ᾱ_0 instead, so the result is not x̂_0
    const sd = new DDIMScheduler(SD15);
    sd.setTimesteps(10);
    const lastSd = sd.step(eps, 1, x);
    assert.ok(maxAbsDiff(lastSd.prevSample.toArray(), lastSd.predOriginalSample.toArray()) > 1e-3);
  });
});

test('step needs setTimesteps and an integer timestep in range', () => {
  tidy(() => {
    const ddim = new DDIMScheduler(SD15);
    const x = randn([1, 4, 2, 2]);
    assert.throws(() => ddim.step(x, 901, x), /setTimesteps/);
    ddim.setTimesteps(10);
    assert.throws(() => ddim.step(x, 1000, x), /\[0, 999\] for timestep but received 1000/);
    assert.throws(() => ddim.step(x, 1.5, x), /timestep/);
    assert.throws(() => ddim.step(x, 901, x, { eta: -1 }), /eta/);
    assert.throws(() => ddim.setTimesteps(0), /numInferenceSteps but received 0/);
    assert.throws(() => ddim.setTimesteps(1001), /\[1, 1000\]/);
  });
});

function data(t: Tensor): { shape: readonly number[]; data: number[] } {
  return { shape: t.shape, data: t.toArray() };
}
