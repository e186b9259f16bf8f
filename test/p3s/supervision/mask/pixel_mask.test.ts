import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  distractorMask,
  subjectMask,
  type GuideImage,
  type PointSimilarity,
} from '../../../../src/p3s/supervision/mask/index.js';

const IMG = 64;
const N = 8; // an 8-px patch grid, as the toy CLIP's
const S = IMG / N;

interface Disk {
  x: number;
  y: number;
  r: number;
}

const inside = (d: Disk, x: number, y: number) =>
  (x + 0.5 - d.x) ** 2 + (y + 0.5 - d.y) ** 2 <= d.r ** 2;

function diskMask(d: Disk): Uint8Array {
  const m = new Uint8Array(IMG * IMG);
  for (let y = 0; y < IMG; y++)
    for (let x = 0; x < IMG; x++) m[y * IMG + x] = inside(d, x, y) ? 1 : 0;
  return m;
}

/** A photo: grey background and flat-coloured disks. */
function photo(disks: { disk: Disk; rgb: number[] }[]): GuideImage {
  const data = new Uint8Array(IMG * IMG * 3);
  for (let y = 0; y < IMG; y++) {
    for (let x = 0; x < IMG; x++) {
      const hit = disks.find((d) => inside(d.disk, x, y));
      data.set(hit ? hit.rgb : [128, 128, 128], (y * IMG + x) * 3);
    }
  }
  return { width: IMG, height: IMG, data };
}

/** What a patch encoder sees: per cell, how much of it each disk covers, blended into cosines. */
function coverageMap(weights: { disk: Disk; w: number }[], base = 0.3): Float32Array {
  const m = new Float32Array(N * N);
  for (let cy = 0; cy < N; cy++) {
    for (let cx = 0; cx < N; cx++) {
      let v = 0;
      for (const { disk, w } of weights) {
        let n = 0;
        for (let y = cy * S; y < (cy + 1) * S; y++) {
          for (let x = cx * S; x < (cx + 1) * S; x++) n += inside(disk, x, y) ? 1 : 0;
        }
        v += (w * n) / (S * S);
      }
      m[cy * N + cx] = base + (1 - base) * Math.min(1, v);
    }
  }
  return m;
}

function iou(a: Uint8Array, b: Uint8Array): number {
  let i = 0;
  let u = 0;
  for (let k = 0; k < a.length; k++) {
    if (a[k] && b[k]) i++;
    if (a[k] || b[k]) u++;
  }
  return i / u;
}

// Two look-alikes side by side and touching: each click's patch is 85 % like the other object.
const SUBJECT: Disk = { x: 20, y: 30, r: 10 };
const LOOKALIKE: Disk = { x: 41, y: 30, r: 10 };
const PHOTO = photo([
  { disk: SUBJECT, rgb: [220, 40, 40] },
  { disk: LOOKALIKE, rgb: [230, 120, 30] },
]);
const SIM: PointSimilarity = {
  positive: coverageMap([
    { disk: SUBJECT, w: 1 },
    { disk: LOOKALIKE, w: 0.85 },
  ]),
  negative: coverageMap([
    { disk: LOOKALIKE, w: 1 },
    { disk: SUBJECT, w: 0.85 },
  ]),
  height: N,
  width: N,
  positivePoints: [{ x: SUBJECT.x / S, y: SUBJECT.y / S }],
  negativePoints: [{ x: LOOKALIKE.x / S, y: LOOKALIKE.y / S }],
};
const base = { imageHeight: IMG, imageWidth: IMG, sigma: 0.5 };

test('compare rule: a touching look-alike is cut away where the product loses the subject too', () => {
  const truth = diskMask(SUBJECT);
  const product = subjectMask(SIM, { ...base, rule: 'product' });
  const compare = subjectMask(SIM, { ...base, rule: 'compare' });
  assert.equal(compare.level, 'pixel');
  assert.equal(product.level, 'grid');
  const leak = (m: Uint8Array) => iou(m, diskMask(LOOKALIKE));
  assert.ok(iou(compare.mask, truth) > 0.6, `compare IoU ${iou(compare.mask, truth)}`);
  assert.ok(leak(compare.mask) < 0.05, `compare leak ${leak(compare.mask)}`);
  assert.ok(
    iou(compare.mask, truth) > iou(product.mask, truth) + 0.1,
    `compare ${iou(compare.mask, truth)} vs product ${iou(product.mask, truth)}`,
  );
});

test('the guide photo snaps the mask to the object outline', () => {
  const truth = diskMask(SUBJECT);
  const coarse = subjectMask(SIM, { ...base, rule: 'compare' });
  const guided = subjectMask(SIM, { ...base, rule: 'compare', guide: PHOTO });
  assert.ok(iou(guided.mask, truth) > 0.85, `guided IoU ${iou(guided.mask, truth)}`);
  assert.ok(iou(guided.mask, truth) > iou(coarse.mask, truth) + 0.05);
  // The distractor mask (what Eq. 3 fills) is the same rule with the roles swapped.
  const other = distractorMask(SIM, { ...base, rule: 'compare', guide: PHOTO });
  assert.ok(iou(other.mask, diskMask(LOOKALIKE)) > 0.85);
  // gridMask samples the pixel mask at cell centres.
  const cell = Math.floor(SUBJECT.y / S) * N + Math.floor(SUBJECT.x / S);
  assert.equal(guided.gridMask[cell], 1);
  assert.equal(guided.gridMask[0], 0);
});

test('without a negative click the compare rule is Otsu on the positive map alone', () => {
  const only = subjectMask(
    { ...SIM, negative: undefined, negativePoints: undefined },
    { ...base, rule: 'compare', guide: PHOTO },
  );
  // Both look-alikes resemble the click and touch: nothing tells them apart, both are kept.
  const covered = (d: Disk) => {
    const m = diskMask(d);
    let n = 0;
    let hit = 0;
    for (let i = 0; i < m.length; i++) {
      n += m[i]!;
      if (m[i] && only.mask[i]) hit++;
    }
    return hit / n;
  };
  assert.ok(covered(SUBJECT) > 0.9, `subject ${covered(SUBJECT)}`);
  assert.ok(covered(LOOKALIKE) > 0.9, `look-alike ${covered(LOOKALIKE)}`);
});

test('a guide of the wrong size and an unknown rule are clear errors', () => {
  const small = { width: 32, height: 32, data: new Uint8Array(32 * 32 * 3) };
  assert.throws(() => subjectMask(SIM, { ...base, guide: small }), /64×64 guide photo/);
  assert.throws(
    () => subjectMask(SIM, { ...base, rule: 'max' as unknown as 'compare' }),
    /rule to be product or compare/,
  );
});
