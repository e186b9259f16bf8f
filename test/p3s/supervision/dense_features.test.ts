// Denser patch grids: shifted copies of the photo, interleaved so each dense cell's token is
// the base extractor's token of the patch centred on that cell.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DensePatchExtractor, shiftImage } from '../../../src/p3s/supervision/dense_features.js';
import type { RgbImage } from '../../../src/io/image.js';
import { colourPatchExtractor } from './colour_features.js';

function gradientImage(w: number, h: number): RgbImage {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      data[(y * w + x) * 3] = x * 4;
      data[(y * w + x) * 3 + 1] = y * 4;
      data[(y * w + x) * 3 + 2] = (x * y) % 256;
    }
  return { width: w, height: h, data };
}

test('shiftImage translates with the edges repeated', () => {
  const img = gradientImage(8, 4);
  const s = shiftImage(img, 2, -1);
  // out(x, y) = in(x + 2, y - 1), clamped
  assert.equal(s.data[(0 * 8 + 0) * 3], img.data[(0 * 8 + 2) * 3]);
  assert.equal(s.data[(3 * 8 + 7) * 3], img.data[(2 * 8 + 7) * 3]);
  assert.equal(s.data[(3 * 8 + 1) * 3 + 1], img.data[(2 * 8 + 3) * 3 + 1]);
});

test('a dense grid interleaves the tokens of sub-patch shifts', () => {
  const img = gradientImage(64, 64);
  const base = colourPatchExtractor(8);
  const dense = new DensePatchExtractor(base, 2).extract(img);
  assert.equal(dense.gridH, 16);
  assert.equal(dense.gridW, 16);
  const c = dense.tokens.shape[1]!;
  const all = dense.tokens.toArray() as number[];
  // Dense cell (row 2·3 + 1, col 2·5 + 0) is patch (3, 5) of the photo shifted by (-2, +2).
  const shifted = base.extract(shiftImage(img, -2, 2));
  const expected = (shifted.tokens.toArray() as number[]).slice((3 * 8 + 5) * c, (3 * 8 + 6) * c);
  const cell = (3 * 2 + 1) * 16 + 5 * 2;
  assert.deepEqual(all.slice(cell * c, (cell + 1) * c), expected);
  shifted.tokens.dispose();
  dense.tokens.dispose();
  assert.throws(() => new DensePatchExtractor(base, 0), /density factor/);
});
