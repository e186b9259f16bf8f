import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  cellIndexOf,
  imageToGridPoint,
  keepComponentsContaining,
  labelComponents,
  nearestComponent,
} from '../../../../src/p3s/supervision/mask/index.js';
import { bits, labelDigits, reference } from './reference.js';

test('labelComponents reproduces scipy.ndimage.label exactly, numbering included', () => {
  for (const c of reference().label) {
    const binary = bits(c.binary);
    const got =
      c.connectivity === null
        ? labelComponents(binary, c.h, c.w)
        : labelComponents(binary, c.h, c.w, c.connectivity);
    const name = `${c.name} connectivity=${c.connectivity ?? 'default'}`;
    assert.equal(got.count, c.count, name);
    assert.deepEqual(got.labels, labelDigits(c.labels), name);
    const areas = new Array<number>(c.count).fill(0);
    for (const l of got.labels) if (l) areas[l - 1]++;
    assert.deepEqual(got.areas, areas, name);
  }
});

// 0 1 1 0 0
// 0 1 0 0 1
// 0 0 0 1 1
const grid = Uint8Array.from([0, 1, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 1, 1]);

test('keepComponentsContaining keeps exactly the clicked components', () => {
  const lab = labelComponents(grid, 3, 5);
  assert.equal(lab.count, 2);
  const kept = keepComponentsContaining(lab, [{ x: 4.7, y: 1.2 }]);
  assert.deepEqual(kept.keptLabels, [2]);
  assert.deepEqual([...kept.mask], [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1]);
  assert.deepEqual(kept.missedPoints, []);
  const miss = keepComponentsContaining(lab, [{ x: 0, y: 0 }]);
  assert.deepEqual(miss.keptLabels, []);
  assert.deepEqual(miss.missedPoints, [{ x: 0, y: 0 }]);
  assert.equal(nearestComponent(lab, { x: 0, y: 0 }), 1);
  assert.equal(nearestComponent(lab, { x: 4, y: 0 }), 2);
});

test('nearestComponent breaks distance ties towards the lower label', () => {
  // label 1 is the right column (met first in raster order), label 2 the cell at (0, 2);
  // from (2, 2) both are at squared distance 4, and label 2's cell comes first in the scan.
  const g = Uint8Array.from([0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 1]);
  const lab = labelComponents(g, 3, 5);
  assert.deepEqual([...lab.labels], [0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 2, 0, 0, 0, 1]);
  assert.equal(nearestComponent(lab, { x: 2, y: 2 }), 1);
  assert.equal(nearestComponent(labelComponents(new Uint8Array(15), 3, 5), { x: 2, y: 2 }), 0);
});

test('points off the grid and bad connectivity give clear errors', () => {
  const lab = labelComponents(grid, 3, 5, 8);
  assert.throws(
    () => keepComponentsContaining(lab, [{ x: 5, y: 0 }]),
    /Expected a point inside the 5×3 grid \(0 ≤ x < 5, 0 ≤ y < 3\) but received \(5, 0\)/,
  );
  assert.throws(() => nearestComponent(lab, { x: -1, y: 0 }), /received \(-1, 0\)/);
  assert.throws(() => labelComponents(grid, 3, 5, 6 as never), /Expected connectivity 4 or 8/);
});

test('imageToGridPoint maps pixels to the patch that holds them', () => {
  const p = imageToGridPoint({ x: 511, y: 0 }, 512, 512, 16, 16);
  assert.deepEqual(p, { x: 15.96875, y: 0 });
  assert.equal(cellIndexOf(p, 16, 16), 15);
  assert.equal(cellIndexOf(imageToGridPoint({ x: 100, y: 223 }, 224, 224, 16, 16), 16, 16), 247);
  assert.throws(
    () => imageToGridPoint({ x: 512, y: 3 }, 512, 512, 16, 16),
    /Expected a point inside the 512×512 image but received \(512, 3\)/,
  );
});
