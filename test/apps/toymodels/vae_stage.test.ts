// The decoder stage's loss: L1 weighted towards the objects of a scene.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tensor } from '../../../src/engine/index.js';
import { scenes } from '../../../apps/toymodels/data.js';
import { objectPixelWeights, weightedL1 } from '../../../apps/toymodels/vae_stage.js';

test('object pixels weigh 1 + w, background pixels 1', () => {
  const batch = scenes('heldout', 0, 2, { objectCount: 2 });
  const weights = objectPixelWeights(batch, 4);
  assert.deepEqual(weights.shape, [2, 1, 64, 64]);
  const w = weights.toTypedArray() as Float32Array;
  weights.dispose();
  const plane = 64 * 64;
  batch.forEach((scene, b) => {
    let objects = 0;
    for (let i = 0; i < plane; i++) {
      const expected = scene.instances[i] ? 5 : 1;
      assert.equal(w[b * plane + i], expected, `scene ${b} pixel ${i}`);
      if (scene.instances[i]) objects++;
    }
    assert.ok(objects > 50 && objects < plane / 2, `${objects} object pixels`);
  });
});

test('weighted L1: equal weights give the mean L1, and heavier pixels count more', () => {
  // One 1×4 picture, 2 channels: errors 1 and 3 on its first pixel, 0 elsewhere.
  const target = tensor(new Float32Array(8), [1, 2, 1, 4]);
  const reconstruction = tensor(Float32Array.from([1, 0, 0, 0, 3, 0, 0, 0]), [1, 2, 1, 4]);
  const ones = tensor(Float32Array.from([1, 1, 1, 1]), [1, 1, 1, 4]);
  const mean = reconstruction.sub(target).abs().mean();
  assert.equal(weightedL1(reconstruction, target, ones).item(), mean.item());
  assert.equal(mean.item(), 0.5);
  // Weight 3 on the erring pixel: (3·1 + 3·3) / (2 channels · (3 + 1 + 1 + 1)) = 1.
  const heavy = tensor(Float32Array.from([3, 1, 1, 1]), [1, 1, 1, 4]);
  assert.equal(weightedL1(reconstruction, target, heavy).item(), 1);
  for (const t of [target, reconstruction, ones, mean, heavy]) t.dispose();
});
