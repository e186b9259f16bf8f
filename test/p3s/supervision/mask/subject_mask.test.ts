import assert from 'node:assert/strict';
import { test } from 'node:test';
import { benchMaskPostprocess } from '../../../../bench/mask_postprocess.js';
import {
  distractorMask,
  maskFromSimilarity,
  resizeNearest,
  subjectMask,
  type PointSimilarity,
} from '../../../../src/p3s/supervision/mask/index.js';

const N = 16;
const IMG = 512;
const S = IMG / N; // pixels per grid cell
const options = { imageHeight: IMG, imageWidth: IMG };

/** A Gaussian bump map on the N×N grid, max over the given blobs, as fake CLIP cosines. */
function blobs(
  list: { x: number; y: number; r: number; peak: number }[],
  base = 0.25,
): Float32Array {
  const m = new Float32Array(N * N);
  for (let y = 0; y < N; y++) {
    for (let x = 0; x < N; x++) {
      let v = 0;
      for (const b of list) {
        v = Math.max(v, b.peak * Math.exp(-((x - b.x) ** 2 + (y - b.y) ** 2) / (2 * b.r * b.r)));
      }
      m[y * N + x] = base + (1 - base) * v;
    }
  }
  return m;
}

/** Mask value at the image pixel at the centre of grid cell (x, y). */
function at(mask: Uint8Array, x: number, y: number): number {
  return mask[Math.floor((y + 0.5) * S) * IMG + Math.floor((x + 0.5) * S)];
}

const A = { x: 4, y: 4, r: 1.5, peak: 1 };
const B = { x: 11, y: 11, r: 1.5, peak: 0.95 };

test('two separate blobs, a point on one: the mask covers that blob and not the other', () => {
  const sim: PointSimilarity = {
    positive: blobs([A, B]),
    height: N,
    width: N,
    positivePoints: [{ x: 4.5, y: 4.5 }],
  };
  const r = subjectMask(sim, options);
  assert.equal(r.componentCount, 2);
  assert.equal(r.keptLabels.length, 1);
  assert.deepEqual(r.fallbacks, []);
  assert.equal(at(r.mask, A.x, A.y), 1);
  assert.equal(at(r.mask, B.x, B.y), 0);
  assert.equal(r.mask.length, IMG * IMG);
  assert.equal(
    r.maskArea,
    r.mask.reduce((a, b) => a + b, 0),
  );
  // Every mask pixel lies in the upper-left quadrant around blob A.
  for (let i = 0; i < r.mask.length; i++) {
    if (r.mask[i]) assert.ok(i % IMG < IMG / 2 && i / IMG < IMG / 2, `pixel ${i}`);
  }
  // Clicking the other blob selects it instead.
  const other = subjectMask({ ...sim, positivePoints: [{ x: 11, y: 11 }] }, options);
  assert.equal(at(other.mask, A.x, A.y), 0);
  assert.equal(at(other.mask, B.x, B.y), 1);
  // Both points: both blobs.
  const both = subjectMask(
    {
      ...sim,
      positivePoints: [
        { x: 4, y: 4 },
        { x: 11, y: 11 },
      ],
    },
    options,
  );
  assert.deepEqual(both.keptLabels, [1, 2]);
});

/** Flat discs (object-like plateaus of similarity); a cell belongs to the nearest disc centre. */
function discs(
  list: { x: number; y: number; r: number; peak: number }[],
  base = 0.2,
): Float32Array {
  const m = new Float32Array(N * N).fill(base);
  for (let y = 0; y < N; y++) {
    for (let x = 0; x < N; x++) {
      let best = Infinity;
      for (const d of list) {
        const dist = Math.hypot(x - d.x, y - d.y);
        if (dist <= d.r && dist < best) {
          best = dist;
          m[y * N + x] = d.peak;
        }
      }
    }
  }
  return m;
}

test('M_N suppresses a touching look-alike that component selection alone cannot remove', () => {
  const a = { x: 5, y: 8, r: 3 };
  const b = { x: 10, y: 8, r: 3 };
  // The positive point's similarity: 1 on its subject a, 0.9 on the look-alike b (touching a).
  const positive = discs([
    { ...a, peak: 1 },
    { ...b, peak: 0.9 },
  ]);
  const base = { positive, height: N, width: N, positivePoints: [{ x: 5, y: 8 }] };
  const without = subjectMask(base, options);
  assert.equal(without.componentCount, 1);
  assert.equal(at(without.mask, a.x, a.y), 1);
  assert.equal(at(without.mask, b.x, b.y), 1, 'without M_N the look-alike is part of the subject');

  // The negative point's similarity: 1 on b, 0.6 on a.
  const negative = discs([
    { ...b, peak: 1 },
    { ...a, peak: 0.6 },
  ]);
  const sim: PointSimilarity = { ...base, negative, negativePoints: [{ x: 10, y: 8 }] };
  const withNeg = subjectMask(sim, options);
  assert.deepEqual(withNeg.fallbacks, []);
  assert.equal(at(withNeg.mask, a.x, a.y), 1);
  // Nothing from column 9 on (b's core) is left.
  for (let i = 0; i < withNeg.mask.length; i++) {
    if (withNeg.mask[i]) assert.ok(i % IMG < 9 * S, `pixel (${i % IMG}, ${(i / IMG) | 0})`);
  }

  // Roles swapped: the distractor mask covers b and nothing up to column 7 (a's core).
  const d = distractorMask(sim, options);
  assert.equal(at(d.mask, b.x, b.y), 1);
  for (let i = 0; i < d.mask.length; i++) {
    if (d.mask[i]) assert.ok(i % IMG >= 7 * S, `pixel (${i % IMG}, ${(i / IMG) | 0})`);
  }
});

test('min-max normalisation: raw cosines and any positive affine rescaling give the same mask', () => {
  const positive = blobs([A, B]);
  const negative = blobs([
    { ...B, peak: 1 },
    { ...A, peak: 0.9 },
  ]);
  const sim: PointSimilarity = {
    positive,
    negative,
    height: N,
    width: N,
    positivePoints: [{ x: 4, y: 4 }],
  };
  const r1 = subjectMask(sim, options);
  const rescale = (m: Float32Array) => m.map((v) => 0.3 * v - 0.1);
  const r2 = subjectMask(
    { ...sim, positive: rescale(positive), negative: rescale(negative) },
    options,
  );
  assert.deepEqual(r2.gridMask, r1.gridMask);
  assert.deepEqual(r2.mask, r1.mask);
  assert.ok(Math.abs(r2.threshold - r1.threshold) < 1e-6);
});

test("normalization 'clip' clamps to [0, 1]; 'none' uses the values as given", () => {
  const raw = blobs([A, B]).map((v) => 1.6 * v - 0.3); // spills below 0 and above 1
  const clamped = raw.map((v) => Math.min(Math.max(v, 0), 1));
  const sim = { height: N, width: N, positivePoints: [{ x: 4, y: 4 }] };
  const clip = subjectMask({ ...sim, positive: raw }, { ...options, normalization: 'clip' });
  const none = subjectMask({ ...sim, positive: clamped }, { ...options, normalization: 'none' });
  assert.deepEqual(clip.softMap, none.softMap);
  assert.deepEqual(clip.mask, none.mask);
  const unclamped = subjectMask({ ...sim, positive: raw }, { ...options, normalization: 'none' });
  assert.notDeepEqual(unclamped.softMap, clip.softMap);
  assert.throws(
    () => subjectMask({ ...sim, positive: raw }, { ...options, normalization: 'z' as never }),
    /one of minmax, clip, none but received z/,
  );
});

test('bilinear upsampling stays next to the kept cells; nearest gives exact blocks', () => {
  const sim: PointSimilarity = {
    positive: blobs([A, B]),
    height: N,
    width: N,
    positivePoints: [{ x: 4, y: 4 }],
  };
  const bil = subjectMask(sim, options);
  const near = subjectMask(sim, { ...options, upsample: 'nearest' });
  assert.deepEqual(near.mask, resizeNearest(near.gridMask, N, N, IMG, IMG));
  assert.notDeepEqual(bil.mask, near.mask, 'bilinear outlines are not 32-pixel blocks');
  for (let i = 0; i < bil.mask.length; i++) {
    if (!bil.mask[i]) continue;
    const cx = Math.floor((i % IMG) / S);
    const cy = Math.floor(i / IMG / S);
    let nearKept = false;
    for (let dy = -1; dy <= 1; dy++) {
      for (let dx = -1; dx <= 1; dx++) {
        const x = cx + dx;
        const y = cy + dy;
        if (x >= 0 && x < N && y >= 0 && y < N && bil.gridMask[y * N + x]) nearKept = true;
      }
    }
    assert.ok(nearKept, `pixel ${i} is far from every kept cell`);
  }
});

test('dilation grows the mask by a disk and keeps the original inside', () => {
  const sim: PointSimilarity = {
    positive: blobs([A]),
    height: N,
    width: N,
    positivePoints: [{ x: 4, y: 4 }],
  };
  const plain = subjectMask(sim, options);
  const grown = subjectMask(sim, { ...options, dilateRadius: 6 });
  assert.ok(grown.maskArea > plain.maskArea);
  for (let i = 0; i < plain.mask.length; i++) if (plain.mask[i]) assert.equal(grown.mask[i], 1);
  assert.throws(() => subjectMask(sim, { ...options, dilateRadius: -2 }), /disk radius/);
});

test('degenerate maps do not crash: constant input gives an empty mask and says why', () => {
  const flat = new Float32Array(N * N).fill(0.6);
  const r = subjectMask(
    { positive: flat, negative: flat, height: N, width: N, positivePoints: [{ x: 3, y: 3 }] },
    options,
  );
  assert.equal(r.maskArea, 0);
  assert.equal(r.componentCount, 0);
  assert.deepEqual(r.keptLabels, []);
  assert.equal(r.threshold, 0);
  assert.deepEqual(
    r.fallbacks.map((f) => f.code),
    ['constant-target-map', 'constant-suppressor-map', 'degenerate-map'],
  );
  // A constant negative map just means nothing is suppressed.
  const s = subjectMask(
    { positive: blobs([A]), negative: flat, height: N, width: N, positivePoints: [{ x: 4, y: 4 }] },
    options,
  );
  assert.deepEqual(
    s.fallbacks.map((f) => f.code),
    ['constant-suppressor-map'],
  );
  assert.equal(at(s.mask, A.x, A.y), 1);
});

test('a point outside the grid is a clear Error; a point on background keeps the nearest blob', () => {
  const sim: PointSimilarity = {
    positive: blobs([A, B]),
    height: N,
    width: N,
    positivePoints: [{ x: 20, y: 3 }],
  };
  assert.throws(
    () => subjectMask(sim, options),
    (e: Error) =>
      e.message ===
      'Expected a point inside the 16×16 grid (0 ≤ x < 16, 0 ≤ y < 16) but received (20, 3)',
  );
  assert.throws(
    () => subjectMask({ ...sim, positivePoints: [{ x: NaN, y: 3 }] }, options),
    /received \(NaN, 3\)/,
  );
  assert.throws(() => subjectMask({ ...sim, positivePoints: [] }, options), /at least one point/);

  const r = subjectMask({ ...sim, positivePoints: [{ x: 13, y: 15 }] }, options);
  assert.deepEqual(
    r.fallbacks.map((f) => f.code),
    ['point-in-background'],
  );
  assert.match(r.fallbacks[0].message, /\(13, 15\)/);
  assert.equal(at(r.mask, B.x, B.y), 1);
  assert.equal(at(r.mask, A.x, A.y), 0);
});

test('a kept cell that vanishes under bilinear upsampling falls back to nearest', () => {
  // 226 cells at 0.4, 20 at 0.7 (the last ones), the isolated cell (3, 3) at 0.41 with its 8
  // neighbours at 0. Otsu puts the threshold (0.4088) between 0.4 and 0.41, so the cell is
  // foreground, but near its centre bilinear values are only ≈ (63/64)² × 0.41 ≈ 0.397.
  const m = new Float64Array(N * N).fill(0.4);
  for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) m[(3 + dy) * N + 3 + dx] = 0;
  m[3 * N + 3] = 0.41;
  m.fill(0.7, N * N - 20);
  const opts = { ...options, sigma: 0, normalization: 'none' as const };
  const inputs = { target: m, suppressor: null, points: [{ x: 3, y: 3 }], height: N, width: N };
  const r = maskFromSimilarity(inputs, opts);
  assert.ok(r.threshold > 0.4 && r.threshold < 0.41, `threshold ${r.threshold}`);
  assert.deepEqual(
    r.fallbacks.map((f) => f.code),
    ['upsample-fell-back-to-nearest'],
  );
  assert.deepEqual(r.mask, resizeNearest(r.gridMask, N, N, IMG, IMG));
  assert.equal(r.maskArea, S * S);
});

test('bad options and inputs are refused with clear errors', () => {
  const sim: PointSimilarity = {
    positive: blobs([A]),
    height: N,
    width: N,
    positivePoints: [{ x: 4, y: 4 }],
  };
  assert.throws(
    () => subjectMask({ ...sim, positive: new Float32Array(10) }, options),
    /Expected target similarity map to hold 16×16 = 256 values but received 10/,
  );
  assert.throws(() => distractorMask(sim, options), /negative similarity map and at least one/);
  assert.throws(
    () => subjectMask(sim, { ...options, upsample: 'cubic' as never }),
    /bilinear or nearest but received cubic/,
  );
  assert.throws(() => subjectMask(sim, { ...options, imageWidth: 0 }), /imageWidth but received 0/);
  const bad = blobs([A]);
  bad[7] = NaN;
  assert.throws(
    () => subjectMask({ ...sim, positive: bad }, options),
    /finite values in the target/,
  );
});

test('benchMaskPostprocess returns a named millisecond measurement', () => {
  const r = benchMaskPostprocess(3);
  assert.equal(r.unit, 'ms');
  assert.equal(r.name, 'mask-postprocess-16x16-to-512x512');
  assert.ok(Number.isFinite(r.value) && r.value > 0);
  const g = benchMaskPostprocess(2, 'default');
  assert.equal(g.name, 'mask-postprocess-16x16-to-512x512-guided');
  assert.ok(Number.isFinite(g.value) && g.value > 0);
});
