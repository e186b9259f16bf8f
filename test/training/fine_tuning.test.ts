// The fine-tuning batch draw's timestep shift (p3s train --timestep-shift).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randn, zeros } from '../../src/engine/creation.js';
import { Generator } from '../../src/engine/random.js';
import { tidy } from '../../src/engine/scope.js';
import { DDPMScheduler } from '../../src/schedulers/scheduling_ddpm.js';
import { DataOrder } from '../../src/training/data_order.js';
import { drawBatch, shiftTimestep, type FineTuningData } from '../../src/training/fine_tuning.js';

const T = 1000;
const all = Array.from({ length: T }, (_, t) => t);

test('shiftTimestep: 1 gives every timestep back; 3 sends three quarters to the noisier half, in order', () => {
  assert.deepEqual(
    all.map((t) => shiftTimestep(t, T, 1)),
    all,
  );
  const shifted = all.map((t) => shiftTimestep(t, T, 3));
  for (let t = 1; t < T; t++) assert.ok(shifted[t]! >= shifted[t - 1]!, `not monotone at ${t}`);
  assert.ok(shifted.every((t) => Number.isInteger(t) && t >= 0 && t <= T - 1));
  assert.ok(
    shifted.every((s, t) => s >= t),
    'a shift above 1 never moves a timestep to less noise',
  );
  const noisier = shifted.filter((t) => t >= T / 2).length / T;
  assert.ok(Math.abs(noisier - 0.75) < 0.01, `${noisier}`);
  // below 1 the shift goes the other way
  const quieter = all.map((t) => shiftTimestep(t, T, 1 / 3)).filter((t) => t >= T / 2).length / T;
  assert.ok(Math.abs(quieter - 0.25) < 0.01, `${quieter}`);
});

test('drawBatch with a timestep shift: the same draws, the timesteps shifted, the noise the same', () => {
  tidy(() => {
    const scheduler = new DDPMScheduler({ num_train_timesteps: T });
    const latents = randn([2, 4, 8, 8], { generator: new Generator(1) });
    const context = zeros([1, 3, 8]);
    const data = (timestepShift: number): FineTuningData => ({
      references: { latents, subjectMasks: null, variants: [] },
      contexts: { prompt: context, empty: context },
      scheduler,
      settings: { batchSize: 8, gradientAccumulation: 1, conditionDropout: 0.3, timestepShift },
      order: new DataOrder(0, 2),
      generator: new Generator(7),
    });
    const items = [0, 1, 0, 1, 1, 0, 0, 1];
    const uniform = drawBatch(data(1), items);
    const shifted = drawBatch(data(3), items);
    assert.deepEqual(
      shifted.timesteps,
      uniform.timesteps.map((t) => shiftTimestep(t, T, 3)),
    );
    assert.notDeepEqual(shifted.timesteps, uniform.timesteps);
    assert.deepEqual(shifted.dropped, uniform.dropped);
    assert.equal(shifted.noise.sub(uniform.noise).abs().max().item(), 0);
  });
});
