import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  boxMean,
  guidedFilter,
  type GuideImage,
} from '../../../../src/p3s/supervision/mask/index.js';

/** A photo: left half one colour, right half another (a vertical edge at x = edge). */
function twoTone(w: number, h: number, edge: number, left: number[], right: number[]): GuideImage {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) data.set(x < edge ? left : right, (y * w + x) * 3);
  }
  return { width: w, height: h, data };
}

test('boxMean equals the naive window mean, borders clipped', () => {
  const h = 7;
  const w = 9;
  const src = Float64Array.from({ length: h * w }, (_, i) => Math.sin(i * 1.7) * 3 + i * 0.01);
  for (const r of [1, 2, 5]) {
    const fast = boxMean(src, h, w, r);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        let s = 0;
        let n = 0;
        for (let yy = Math.max(0, y - r); yy <= Math.min(h - 1, y + r); yy++) {
          for (let xx = Math.max(0, x - r); xx <= Math.min(w - 1, x + r); xx++) {
            s += src[yy * w + xx]!;
            n++;
          }
        }
        assert.ok(Math.abs(fast[y * w + x]! - s / n) < 1e-12, `r ${r} (${x}, ${y})`);
      }
    }
  }
});

test('a constant map stays constant; a map that is a linear function of the colour is kept', () => {
  const w = 24;
  const h = 10;
  const data = new Uint8Array(w * h * 3);
  for (let i = 0; i < w * h; i++) data.set([(i * 37) % 256, (i * 11) % 256, (i * 5) % 256], 3 * i);
  const guide = { width: w, height: h, data };
  const flat = guidedFilter(new Float64Array(w * h).fill(0.7), guide, { radius: 3, eps: 1e-3 });
  for (const v of flat) assert.ok(Math.abs(v - 0.7) < 1e-9);
  // p = 0.5·R − 0.25·B + 0.1 is exactly what each window's affine model can express.
  const p = Float64Array.from(
    { length: w * h },
    (_, i) => (0.5 * data[3 * i]!) / 255 - (0.25 * data[3 * i + 2]!) / 255 + 0.1,
  );
  const q = guidedFilter(p, guide, { radius: 3, eps: 1e-8 });
  for (let i = 0; i < p.length; i++) assert.ok(Math.abs(q[i]! - p[i]!) < 1e-4, `pixel ${i}`);
});

test('a blurred step takes the photo edge: the jump moves onto it and grows', () => {
  const w = 32;
  const h = 4;
  const edge = 16;
  const guide = twoTone(w, h, edge, [200, 30, 30], [20, 120, 40]);
  // A coarse map ramping from 1 to 0 over 12 pixels, centred 3 pixels off the photo's edge, as an
  // upsampled patch map is: its steepest step is 1/12 and nowhere in particular.
  const p = Float64Array.from({ length: w * h }, (_, i) =>
    Math.min(1, Math.max(0, (edge + 9 - (i % w)) / 12)),
  );
  const q = guidedFilter(p, guide, { radius: 4, eps: 1e-4 });
  for (let y = 0; y < h; y++) {
    const step = (m: Float64Array, x: number) => m[y * w + x - 1]! - m[y * w + x]!;
    let steepest = 1;
    for (let x = 2; x < w; x++) if (step(q, x) > step(q, steepest)) steepest = x;
    assert.equal(steepest, edge, 'the largest drop is between the two colours');
    assert.ok(step(q, edge) > 4 * (1 / 12), `drop ${step(q, edge)}`);
    // Just past the edge, on the other colour, the map falls below the ramp.
    assert.ok(q[y * w + edge + 1]! < p[y * w + edge + 1]! - 0.1);
  }
});

test('bad arguments are refused with clear errors', () => {
  const guide = twoTone(4, 4, 2, [0, 0, 0], [255, 255, 255]);
  const p = new Float64Array(16);
  assert.throws(() => guidedFilter(new Float64Array(15), guide, { radius: 1, eps: 1e-3 }), /4×4/);
  assert.throws(() => guidedFilter(p, guide, { radius: 0, eps: 1e-3 }), /radius/);
  assert.throws(() => guidedFilter(p, guide, { radius: 1.5, eps: 1e-3 }), /radius/);
  assert.throws(() => guidedFilter(p, guide, { radius: 1, eps: 0 }), /eps/);
  assert.throws(
    () => guidedFilter(p, { ...guide, data: new Uint8Array(10) }, { radius: 1, eps: 1e-3 }),
    /RGB samples/,
  );
});
