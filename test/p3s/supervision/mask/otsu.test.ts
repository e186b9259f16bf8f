import assert from 'node:assert/strict';
import { test } from 'node:test';
import { histogram, thresholdOtsu } from '../../../../src/p3s/supervision/mask/index.js';
import { reference } from './reference.js';

test('thresholdOtsu matches skimage.filters.threshold_otsu', (t) => {
  let worst = 0;
  for (const c of reference().otsu) {
    const { threshold, degenerate } = thresholdOtsu(Float64Array.from(c.values), c.nbins);
    const rel = Math.abs(threshold - c.threshold) / Math.max(Math.abs(c.threshold), 1e-300);
    assert.ok(rel <= 1e-6, `${c.name} nbins=${c.nbins}: ${threshold} vs skimage ${c.threshold}`);
    assert.equal(degenerate, c.name === 'all_equal', c.name);
    worst = Math.max(worst, rel);
  }
  t.diagnostic(`max relative error ${worst}`);
});

test('histogram matches numpy.histogram, including values one ULP from a bin edge', () => {
  for (const c of reference().histogram) {
    const h = histogram(Float64Array.from(c.values), c.nbins);
    assert.deepEqual([...h.counts], c.counts, c.name);
    assert.deepEqual([...h.edges], c.edges, c.name);
  }
});

test('thresholdOtsu splits a clearly bimodal sample between its modes', () => {
  const v = [...Array(50).fill(0.1), ...Array(30).fill(0.9), 0.12, 0.88];
  const { threshold } = thresholdOtsu(v);
  assert.ok(threshold > 0.12 && threshold < 0.88, `${threshold}`);
});

test('thresholdOtsu: all-equal input returns the value, flagged degenerate, without throwing', () => {
  assert.deepEqual(thresholdOtsu(new Float32Array(256).fill(0.25)), {
    threshold: 0.25,
    degenerate: true,
  });
  assert.deepEqual(thresholdOtsu([7]), { threshold: 7, degenerate: true });
});

test('thresholdOtsu rejects empty, non-finite input and nbins < 2', () => {
  assert.throws(() => thresholdOtsu([]), /Expected at least one value/);
  assert.throws(
    () => thresholdOtsu([0, NaN, 1]),
    /Expected finite values to histogram but value 1 is NaN/,
  );
  assert.throws(() => thresholdOtsu([0, 1], 1), /Expected an integer nbins ≥ 2 but received 1/);
});
