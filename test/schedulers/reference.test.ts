// The schedulers against diffusers 0.27.2 (fixtures/tiny-sd/reference.*): SD 1.5's scheduler
// config, DDIM for 10 steps, PNDM (PLMS) for 10 steps, DDPM add_noise and velocity.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { memory, tidy, type Tensor } from '../../src/index.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import {
  DDIMScheduler,
  DDPMScheduler,
  PNDMScheduler,
  schedulerFromConfig,
  schedulerFromPretrained,
} from '../../src/schedulers/index.js';
import { fixturePath } from '../helpers/paths.js';
import { assertClose, maxAbsDiff } from '../helpers/tensors.js';

const folder = fixturePath('tiny-sd');
const meta = JSON.parse(readFileSync(fixturePath('tiny-sd', 'reference.json'), 'utf8')) as {
  scheduler_config: Record<string, unknown>;
  ddim_config: Record<string, unknown>;
};
const ref = SafetensorsFile.open(fixturePath('tiny-sd', 'reference.safetensors'));

// Fixture tolerance (README) is atol = rtol = 1e-4; these computations reproduce diffusers'
// float32 operations in order, so a much tighter bound holds (measured: 0, bit-identical).
const TOL = { atol: 1e-6, rtol: 1e-6 };

function expected(t: Tensor): { shape: readonly number[]; data: number[] } {
  return { shape: t.shape, data: t.toArray() };
}

test("alphas_cumprod of SD 1.5's scaled_linear schedule", (t) => {
  const ddim = DDIMScheduler.fromConfig(meta.scheduler_config);
  const want = ref.tensor('alphas_cumprod').toArray();
  assert.equal(ddim.alphasCumprod.length, 1000);
  const err = maxAbsDiff(ddim.alphasCumprod, want);
  t.diagnostic(`alphas_cumprod max abs error ${err}`);
  assert.ok(err <= 1e-7, `max abs error ${err}`);
  // the final ᾱ is ᾱ_0 because SD 1.5 sets set_alpha_to_one: false
  assert.equal(ddim.finalAlphaCumprod, want[0]);
});

test("SD 1.5's PNDM config loads into DDIM as diffusers' from_config does", () => {
  const ddim = DDIMScheduler.fromConfig(meta.scheduler_config);
  // the PNDM-only key is ignored but kept; DDIM's other keys take DDIM's defaults
  assert.deepEqual(ddim.ignoredConfig, { skip_prk_steps: true });
  assert.deepEqual({ ...ddim.config, ...ddim.ignoredConfig }, meta.ddim_config);
  assert.equal(ddim.config.clip_sample, false);
  // the factory, overriding _class_name, gives the same scheduler
  const viaFactory = schedulerFromPretrained(folder, { className: 'DDIMScheduler' });
  assert.ok(viaFactory instanceof DDIMScheduler);
  assert.deepEqual(viaFactory.config, ddim.config);
  // and without an override it builds what _class_name names
  assert.ok(schedulerFromPretrained(folder) instanceof PNDMScheduler);
  assert.ok(
    schedulerFromConfig({ ...meta.scheduler_config, _class_name: 'DDPMScheduler' }) instanceof
      DDPMScheduler,
  );
});

test('DDIM, 10 steps, eta 0: timesteps, x_{t-1} and predicted x_0 of every step', (t) => {
  const ddim = DDIMScheduler.fromConfig(meta.scheduler_config);
  ddim.setTimesteps(10);
  assert.deepEqual(ddim.timesteps, ref.tensor('ddim_timesteps').toArray());
  assert.deepEqual(ddim.timesteps, [901, 801, 701, 601, 501, 401, 301, 201, 101, 1]);
  const outputs = ref.tensor('ddim_model_outputs');
  const prevSamples = ref.tensor('ddim_prev_samples');
  const predX0 = ref.tensor('ddim_pred_original_samples');
  let x = ref.tensor('ddim_x_T');
  let worstPrev = 0;
  let worstX0 = 0;
  const before = memory().liveTensors;
  ddim.timesteps.forEach((timestep, i) => {
    const next = tidy(() => {
      const out = ddim.step(outputs.select(0, i), timestep, x);
      const wantPrev = prevSamples.select(0, i);
      const wantX0 = predX0.select(0, i);
      worstPrev = Math.max(worstPrev, maxAbsDiff(out.prevSample.toArray(), wantPrev.toArray()));
      worstX0 = Math.max(worstX0, maxAbsDiff(out.predOriginalSample.toArray(), wantX0.toArray()));
      assertClose(out.prevSample, expected(wantPrev), { ...TOL, label: `prev_sample ${i}` });
      assertClose(out.predOriginalSample, expected(wantX0), { ...TOL, label: `x0 ${i}` });
      return out.prevSample;
    });
    if (i > 0) x.dispose();
    x = next;
  });
  x.dispose();
  assert.equal(memory().liveTensors, before, 'every intermediate freed');
  t.diagnostic(`DDIM max abs error: prev_sample ${worstPrev}, pred_original_sample ${worstX0}`);
});

test('PNDM (PLMS), 10 steps: 11 timesteps with 801 repeated, x_{t-δ} of every step', (t) => {
  const pndm = PNDMScheduler.fromPretrained(folder);
  pndm.setTimesteps(10);
  assert.deepEqual(pndm.timesteps, ref.tensor('pndm_timesteps').toArray());
  assert.deepEqual(pndm.timesteps, [901, 801, 801, 701, 601, 501, 401, 301, 201, 101, 1]);
  const outputs = ref.tensor('pndm_model_outputs');
  const prevSamples = ref.tensor('pndm_prev_samples');
  let x = ref.tensor('pndm_x_T');
  let worst = 0;
  const before = memory().liveTensors;
  pndm.timesteps.forEach((timestep, i) => {
    const next = tidy(() => {
      // a fresh model output that the caller's tidy frees: PNDM must keep its own copy
      const eps = outputs.select(0, i).clone();
      const out = pndm.step(eps, timestep, x);
      const want = prevSamples.select(0, i);
      worst = Math.max(worst, maxAbsDiff(out.prevSample.toArray(), want.toArray()));
      assertClose(out.prevSample, expected(want), { ...TOL, label: `prev_sample ${i}` });
      return out.prevSample;
    });
    if (i > 0) x.dispose();
    x = next;
  });
  x.dispose();
  assert.equal(pndm.counter, 11);
  pndm.reset();
  assert.equal(memory().liveTensors, before, 'history freed by reset()');
  t.diagnostic(`PNDM max abs error: prev_sample ${worst}`);
});

test('DDPM add_noise and get_velocity, one timestep per batch element', (t) => {
  const ddpm = DDPMScheduler.fromConfig(meta.scheduler_config);
  tidy(() => {
    const x0 = ref.tensor('ddpm_x0');
    const noise = ref.tensor('ddpm_noise');
    const timesteps = ref.tensor('ddpm_timesteps');
    assert.deepEqual(timesteps.toArray(), [0, 250, 500, 999]);
    const noisy = ddpm.addNoise(x0, noise, timesteps);
    const velocity = ddpm.getVelocity(x0, noise, timesteps);
    const wantNoisy = ref.tensor('ddpm_noisy');
    const wantVelocity = ref.tensor('ddpm_velocity');
    assertClose(noisy, expected(wantNoisy), { ...TOL, label: 'add_noise' });
    assertClose(velocity, expected(wantVelocity), { ...TOL, label: 'velocity' });
    // timesteps as a plain array give the same
    assertClose(ddpm.addNoise(x0, noise, [0, 250, 500, 999]), expected(wantNoisy), TOL);
    t.diagnostic(
      `DDPM max abs error: add_noise ${maxAbsDiff(noisy.toArray(), wantNoisy.toArray())}, velocity ${maxAbsDiff(velocity.toArray(), wantVelocity.toArray())}`,
    );
  });
});
