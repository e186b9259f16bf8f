// A click's mask that spread over the background is cut back to the object under the click.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { boundSpreadMask, type MaskResult } from '../../../../src/p3s/supervision/mask/index.js';
import { iou } from '../colour_features.js';

const SIZE = 64;

const disk = (cx: number, cy: number, r: number) =>
  Uint8Array.from({ length: SIZE * SIZE }, (_, i) =>
    ((i % SIZE) + 0.5 - cx) ** 2 + (Math.floor(i / SIZE) + 0.5 - cy) ** 2 <= r * r ? 1 : 0,
  );

/** The fields boundSpreadMask reads and writes, with a soft map on a grid of the photo's size. */
function asResult(mask: Uint8Array, softMap = new Float64Array(SIZE * SIZE).fill(1)): MaskResult {
  return {
    mask,
    maskArea: mask.reduce((a, v) => a + v, 0),
    height: SIZE,
    width: SIZE,
    softMap,
    gridHeight: SIZE,
    gridWidth: SIZE,
    gridMask: new Uint8Array(SIZE * SIZE).fill(1),
    fallbacks: [],
  } as unknown as MaskResult;
}

// the other click's object on the left, the spread mask's own object on the right
const other = () => asResult(disk(16, 32, 6));
const object = disk(48, 32, 7);
/** Everything but the other object, scoring 1 on its own object and `background` elsewhere. */
const spreadOver = (background: number) =>
  asResult(
    other().mask.map((v) => 1 - v),
    Float64Array.from(object, (v) => (v ? 1 : background)),
  );

for (const which of ['look-alike', 'subject'] as const) {
  test(`a ${which} mask that spread over the background is cut back to the object clicked`, () => {
    const spread = spreadOver(0.6);
    boundSpreadMask(spread, other(), [{ x: 48, y: 32 }], which);
    assert.equal(spread.fallbacks[0]?.code, `${which}-mask-bounded`);
    assert.ok(iou(spread.mask, object) > 0.95, `IoU ${iou(spread.mask, object)}`);
    assert.equal(
      spread.maskArea,
      spread.mask.reduce((a, v) => a + v, 0),
    );
  });
}

test('a spread mask whose click scores below the cut stays cut to the disk around it', () => {
  const spread = spreadOver(0.6);
  const clickOnBackground = { x: 48, y: 47 };
  boundSpreadMask(spread, other(), [clickOnBackground], 'subject');
  const radius = Math.max(1.5 * Math.sqrt(other().maskArea / Math.PI), SIZE / 8);
  for (let i = 0; i < spread.mask.length; i++) {
    if (!spread.mask[i]) continue;
    const d = Math.hypot((i % SIZE) + 0.5 - 48, Math.floor(i / SIZE) + 0.5 - 47);
    assert.ok(d <= radius, `pixel ${i} kept at ${d.toFixed(1)} px`);
  }
  assert.ok(spread.maskArea > 0.8 * Math.PI * radius * radius);
});

test('a mask about the size of the other one is left alone', () => {
  const normal = asResult(disk(48, 32, 7));
  const before = Uint8Array.from(normal.mask);
  boundSpreadMask(normal, other(), [{ x: 48, y: 32 }], 'subject');
  assert.deepEqual(normal.mask, before);
  assert.equal(normal.fallbacks.length, 0);
});
