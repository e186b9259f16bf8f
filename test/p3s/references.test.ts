// Reference photos: a `p3s mask` folder gives its filled photos with their subject masks, and the
// subject crop is the square around the mask's box, moved inside the photo.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RgbImage } from '../../src/io/image.js';
import {
  cropMoves,
  keepSubject,
  maskShares,
  resolveReferences,
  subjectSquare,
} from '../../src/p3s/references.js';
import { tidy } from '../../src/engine/scope.js';

/** A w×h mask with the box [x0, x1] × [y0, y1] set. */
function boxMask(w: number, h: number, x0: number, x1: number, y0: number, y1: number): RgbImage {
  const data = new Uint8Array(w * h * 3);
  for (let y = y0; y <= y1; y++)
    for (let x = x0; x <= x1; x++) data.fill(255, (y * w + x) * 3, (y * w + x) * 3 + 3);
  return { width: w, height: h, data };
}

test('the subject square is margin × the box, centred on it', () => {
  // box 10..19 × 20..29 (10 px), margin 1.5: 15 px, centre (15, 25)
  assert.deepEqual(subjectSquare(boxMask(64, 64, 10, 19, 20, 29), 1.5), {
    left: 8,
    top: 18,
    size: 15,
  });
  // the longer side decides: 10 × 20 px box, margin 1 → 20 px
  assert.deepEqual(subjectSquare(boxMask(64, 64, 30, 39, 0, 19), 1), {
    left: 25,
    top: 0,
    size: 20,
  });
});

test('the subject square moves inside the photo and never outgrows it', () => {
  // at the left edge: moved right, not shrunk
  assert.deepEqual(subjectSquare(boxMask(64, 48, 0, 9, 10, 19), 2), { left: 0, top: 5, size: 20 });
  // at the bottom-right corner
  assert.deepEqual(subjectSquare(boxMask(64, 48, 54, 63, 38, 47), 2), {
    left: 44,
    top: 28,
    size: 20,
  });
  // a margin larger than the photo: the shorter side, still centred across
  assert.deepEqual(subjectSquare(boxMask(64, 48, 20, 39, 10, 29), 5), {
    left: 6,
    top: 0,
    size: 48,
  });
});

test('a crop move scales the square about its centre and shifts it by a share of its side', () => {
  const mask = boxMask(64, 64, 20, 39, 20, 39); // 20 px box, centre (30, 30); margin 1.5: 30 px
  assert.deepEqual(subjectSquare(mask, 1.5), { left: 15, top: 15, size: 30 });
  assert.deepEqual(subjectSquare(mask, 1.5, { scale: 0.8, dx: 0, dy: 0 }), {
    left: 18,
    top: 18,
    size: 24,
  });
  assert.deepEqual(subjectSquare(mask, 1.5, { scale: 1, dx: 0.1, dy: -0.1 }), {
    left: 18,
    top: 12,
    size: 30,
  });
  // moved past the edge: fitted back inside the photo, its size kept
  assert.deepEqual(subjectSquare(mask, 1.5, { scale: 1.2, dx: -1, dy: 0 }), {
    left: 0,
    top: 12,
    size: 36,
  });
});

test('crop jitter gives the subject square first, then scaled and moved ones', () => {
  assert.deepEqual(cropMoves(0), [{ scale: 1, dx: 0, dy: 0 }]);
  const moves = cropMoves(0.2);
  assert.equal(moves.length, 7);
  assert.deepEqual(moves[0], { scale: 1, dx: 0, dy: 0 });
  assert.deepEqual(
    moves.map((m) => m.scale),
    [1, 0.8, 1.2, 1, 1, 1, 1],
  );
  // a moved square keeps the whole subject at the recipe's margin: the shift is half the jitter
  assert.ok(moves.every((m) => Math.abs(m.dx) <= 0.1 && Math.abs(m.dy) <= 0.1));
});

test('an empty mask has no square, and a margin below 1 is refused', () => {
  assert.equal(subjectSquare(boxMask(8, 8, 1, 0, 1, 0), 1.5), null);
  assert.throws(() => subjectSquare(boxMask(8, 8, 1, 2, 1, 2), 0.9), /margin of at least 1/);
});

test('a mask folder gives filled photos with their subject masks; a plain folder gives none', () => {
  const root = mkdtempSync(join(tmpdir(), 'p3s-refs-'));
  try {
    const maskDir = join(root, 'mask');
    mkdirSync(maskDir);
    for (const f of ['a.filled.png', 'a.subject-mask.png', 'b.filled.png'])
      writeFileSync(join(maskDir, f), '');
    writeFileSync(
      join(maskDir, 'summary.json'),
      JSON.stringify({
        images: [
          { files: { filled: 'a.filled.png', subjectMask: 'a.subject-mask.png' } },
          { files: { filled: 'b.filled.png', subjectMask: 'b.subject-mask.png' } }, // mask missing
        ],
      }),
    );
    const refs = resolveReferences([maskDir]);
    assert.deepEqual(
      refs.map((r) => [r.path.slice(root.length), r.subjectMaskPath?.slice(root.length) ?? null]),
      [
        ['/mask/a.filled.png', '/mask/a.subject-mask.png'],
        ['/mask/b.filled.png', null],
      ],
    );
    const plain = join(root, 'plain');
    mkdirSync(plain);
    writeFileSync(join(plain, 'x.png'), '');
    assert.deepEqual(
      resolveReferences([plain]).map((r) => r.subjectMaskPath),
      [null],
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('the subject-only condition keeps the masked pixels and greys the rest', () => {
  const photo: RgbImage = {
    width: 4,
    height: 2,
    data: Uint8Array.from({ length: 24 }, (_, i) => i * 10),
  };
  const kept = keepSubject(photo, boxMask(4, 2, 1, 2, 0, 0)); // pixels (1,0) and (2,0)
  const grey = [128, 128, 128];
  assert.deepEqual(
    [...kept.data],
    [...grey, 30, 40, 50, 60, 70, 80, ...grey, ...grey, ...grey, ...grey, ...grey],
  );
  assert.deepEqual([...photo.data.slice(0, 3)], [0, 10, 20], 'the photo is not changed');
  assert.throws(() => keepSubject(photo, boxMask(2, 2, 0, 1, 0, 1)), /4×2 mask but received 2×2/);
});

test("subject masks at the latents' size are each cell's share of mask pixels", () => {
  // 4 × 4 mask, 2 × 2 cells of 2 × 2 pixels: the top-left cell full, the top-right one half
  const mask = boxMask(4, 4, 0, 2, 0, 1);
  tidy(() => {
    const shares = maskShares([mask, boxMask(4, 4, 1, 0, 1, 0)], 2, 2);
    assert.deepEqual([...shares.shape], [2, 1, 2, 2]);
    assert.deepEqual(shares.toArray(), [1, 0.5, 0, 0, 0, 0, 0, 0]);
  });
});
