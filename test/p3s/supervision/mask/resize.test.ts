import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resizeBilinear, resizeNearest } from '../../../../src/p3s/supervision/mask/index.js';
import { maxAbsDiff, reference } from './reference.js';

test('resizeBilinear matches align_corners=false bilinear (scipy zoom grid_mode reference)', (t) => {
  let worst = 0;
  for (const c of reference().resize) {
    const out = resizeBilinear(Float64Array.from(c.input), c.h, c.w, c.outH, c.outW);
    const e = maxAbsDiff(out, c.output);
    assert.ok(e <= 1e-12, `${c.name}: max error ${e}`);
    worst = Math.max(worst, e);
  }
  t.diagnostic(`max |error| ${worst}`);
});

test('resizeBilinear reproduces torch interpolate on [[1, 2], [3, 4]] → 4×4', () => {
  const out = resizeBilinear(Float32Array.from([1, 2, 3, 4]), 2, 2, 4, 4);
  assert.ok(out instanceof Float32Array);
  assert.deepEqual(
    [...out],
    [1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4],
  );
});

test('resizeNearest turns each cell into a block for integer factors, floor rule otherwise', () => {
  const out = resizeNearest(Uint8Array.from([1, 0, 0, 1]), 2, 2, 4, 6);
  assert.deepEqual(
    [...out],
    [1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1],
  );
  // 3 → 4: src = floor(dst * 3 / 4) = 0, 0, 1, 2
  assert.deepEqual([...resizeNearest(Uint8Array.from([1, 2, 3]), 1, 3, 1, 4)], [1, 1, 2, 3]);
  assert.throws(
    () => resizeNearest(new Uint8Array(4), 2, 2, 0, 4),
    /positive integer for output height/,
  );
});
