// Min-SNR-γ weights: 1 where the SNR is at or below γ, γ/SNR above it, computed from the schedule.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { minSnrWeights } from '../../src/training/loss_weighting.js';
import { DDPMScheduler } from '../../src/schedulers/scheduling_ddpm.js';
import { SD15_SCHEDULER_CONFIG } from '../../apps/testing/tiny_models.js';

test('min-SNR weights are γ/SNR for clean timesteps and 1 for noisy ones', () => {
  const alphaBar = [0.99, 0.5, 0.1];
  const w = minSnrWeights(alphaBar, [0, 1, 2], 5);
  assert.ok(Math.abs(w[0]! - 5 / 99) < 1e-12);
  assert.equal(w[1], 1);
  assert.equal(w[2], 1);
});

test('on SD 1.5 schedule the weight rises with t and reaches 1 where SNR falls to γ', () => {
  const { alphasCumprod } = DDPMScheduler.fromConfig(SD15_SCHEDULER_CONFIG);
  const ts = [0, 100, 200, 400, 999];
  const w = minSnrWeights(alphasCumprod, ts, 5);
  for (let i = 1; i < w.length; i++) assert.ok(w[i]! >= w[i - 1]!, `weights ${w}`);
  assert.ok(w[0]! < 0.01);
  assert.equal(w[4], 1);
});

test('min-SNR refuses a non-positive γ and a timestep outside the schedule', () => {
  assert.throws(() => minSnrWeights([0.5], [0], 0), /γ must be positive/);
  assert.throws(() => minSnrWeights([0.5], [3], 5), /outside the schedule/);
});
