import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gaussianFilter, gaussianKernel1d } from '../../../../src/p3s/supervision/mask/index.js';
import { maxAbsDiff, reference } from './reference.js';

test('gaussianFilter matches scipy.ndimage.gaussian_filter for every case and mode', (t) => {
  const ref = reference().gaussian;
  let worst64 = 0;
  let worst32 = 0;
  for (const c of ref.cases) {
    const input = ref.inputs[c.input];
    const opts = { mode: c.mode, truncate: c.truncate };
    const label = `${c.input} sigma=${c.sigma} mode=${c.mode} truncate=${c.truncate}`;
    const out64 = gaussianFilter(Float64Array.from(input.data), input.h, input.w, c.sigma, opts);
    assert.ok(out64 instanceof Float64Array);
    const e64 = maxAbsDiff(out64, c.output);
    assert.ok(e64 <= 1e-12, `${label}: float64 max error ${e64}`);
    const out32 = gaussianFilter(Float32Array.from(input.data), input.h, input.w, c.sigma, opts);
    assert.ok(out32 instanceof Float32Array);
    const e32 = maxAbsDiff(out32, c.output);
    assert.ok(e32 <= 1e-6, `${label}: float32 max error ${e32}`);
    worst64 = Math.max(worst64, e64);
    worst32 = Math.max(worst32, e32);
  }
  t.diagnostic(
    `${ref.cases.length} cases; max |error| float64 in/out ${worst64}, float32 ${worst32}`,
  );
});

test('gaussianKernel1d has radius int(truncate*sigma + 0.5) and sums to 1', () => {
  assert.equal(gaussianKernel1d(1, 4).length, 9);
  assert.equal(gaussianKernel1d(0.5, 4).length, 5);
  assert.equal(gaussianKernel1d(2, 4).length, 17);
  assert.equal(gaussianKernel1d(1.3, 2).length, 7); // int(3.1) = 3
  const k = gaussianKernel1d(1.7, 3);
  assert.ok(Math.abs(k.reduce((a, b) => a + b, 0) - 1) < 1e-15);
  assert.equal(k[0], k[k.length - 1]);
});

test('gaussianFilter: per-axis sigma is separable, sigma 0 is the identity, cval is used', () => {
  const m = Float64Array.from({ length: 12 }, (_, i) => Math.sin(i * 1.7) + i / 5);
  assert.deepEqual(gaussianFilter(m, 3, 4, 0), m);
  // [sy, sx] = rows-only pass then columns-only pass.
  const both = gaussianFilter(m, 3, 4, [0.8, 1.6]);
  const split = gaussianFilter(gaussianFilter(m, 3, 4, [0.8, 0]), 3, 4, [0, 1.6]);
  assert.ok(maxAbsDiff(both, split) < 1e-15);
  // Axis 0 runs down the columns: filtering the transpose along axis 1 gives the transpose.
  const mt = new Float64Array(12);
  for (let y = 0; y < 3; y++) for (let x = 0; x < 4; x++) mt[x * 3 + y] = m[y * 4 + x];
  const rows = gaussianFilter(m, 3, 4, [1.2, 0], { mode: 'mirror' });
  const cols = gaussianFilter(mt, 4, 3, [0, 1.2], { mode: 'mirror' });
  for (let y = 0; y < 3; y++) {
    for (let x = 0; x < 4; x++) assert.ok(Math.abs(rows[y * 4 + x] - cols[x * 3 + y]) < 1e-15);
  }
  const ones = new Float64Array(9).fill(1);
  const c = gaussianFilter(ones, 3, 3, 1, { mode: 'constant', cval: 1 });
  assert.ok(maxAbsDiff(c, ones) < 1e-15);
  assert.ok(gaussianFilter(ones, 3, 3, 1, { mode: 'constant' })[0] < 0.6);
});

test('gaussianFilter rejects bad arguments with clear errors', () => {
  const m = new Float32Array(4);
  assert.throws(
    () => gaussianFilter(m, 2, 3, 1),
    /Expected map to hold 2×3 = 6 values but received 4/,
  );
  assert.throws(
    () => gaussianFilter(m, 2, 2, -1),
    /Expected a non-negative finite sigma but received -1/,
  );
  assert.throws(
    () => gaussianFilter(m, 2, 2, 1, { mode: 'wrap' as never }),
    /Expected mode to be one of reflect, mirror, nearest, constant but received wrap/,
  );
});
