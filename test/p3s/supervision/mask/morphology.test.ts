import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  binaryDilation,
  binaryErosion,
  diskHalfWidths,
} from '../../../../src/p3s/supervision/mask/index.js';
import { bits, reference } from './reference.js';

test('binaryDilation / binaryErosion match scipy.ndimage with a skimage disk', () => {
  for (const c of reference().morphology) {
    const input = bits(c.input);
    const name = `${c.name} r=${c.radius}`;
    assert.deepEqual(
      binaryDilation(input, c.h, c.w, c.radius),
      bits(c.dilation),
      `${name} dilation`,
    );
    assert.deepEqual(binaryErosion(input, c.h, c.w, c.radius), bits(c.erosion), `${name} erosion`);
  }
});

test('the disk is dy² + dx² ≤ r²; radius 0 is the identity', () => {
  assert.deepEqual([...diskHalfWidths(2)], [0, 1, 2, 1, 0]);
  assert.deepEqual([...diskHalfWidths(1.5)], [1, 1, 1]);
  const m = Uint8Array.from([0, 1, 0, 1]);
  assert.deepEqual(binaryDilation(m, 2, 2, 0), m);
  assert.deepEqual(binaryErosion(m, 2, 2, 0), m);
  // a single pixel dilated by r = 2 is exactly the disk
  const one = new Uint8Array(25);
  one[12] = 1;
  assert.deepEqual(
    [...binaryDilation(one, 5, 5, 2)],
    [0, 0, 1, 0, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 1, 0, 0],
  );
  assert.throws(
    () => binaryDilation(one, 5, 5, -1),
    /non-negative finite disk radius but received -1/,
  );
});
