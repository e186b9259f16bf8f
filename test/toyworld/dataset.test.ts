import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

import sharp from 'sharp';

import { SPLIT_SEEDS, iterateSplit, sceneLabel, splitSeed } from '../../src/toyworld/dataset.js';
import { writePng } from '../../src/io/image.js';
import { sceneImage, writeContactSheet } from '../../src/toyworld/views.js';
import { generateScene } from '../../src/toyworld/scene.js';

const dir = mkdtempSync(join(tmpdir(), 'p3s-toyworld-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('splits', () => {
  it('use disjoint seed ranges', () => {
    assert.ok(SPLIT_SEEDS.train.end <= SPLIT_SEEDS.heldout.start);
    assert.equal(splitSeed('train', 0), 0);
    assert.equal(splitSeed('heldout', 0), SPLIT_SEEDS.heldout.start);
    assert.throws(() => splitSeed('train', -1), /for index but received -1/);
  });

  it('iterate deterministically', () => {
    const a = [...iterateSplit('heldout', { start: 5, count: 4 })];
    const b = [...iterateSplit('heldout', { start: 5, count: 4 })];
    assert.equal(a.length, 4);
    assert.deepEqual(
      a.map((s) => s.seed),
      [5, 6, 7, 8].map((i) => SPLIT_SEEDS.heldout.start + i),
    );
    a.forEach((s, i) => assert.deepEqual(s.rgb, b[i]!.rgb));
    const train = [...iterateSplit('train', { count: 4 })];
    assert.notDeepEqual(train[0]!.rgb, a[0]!.rgb);
  });

  it('label scenes as plain JSON', () => {
    const label = sceneLabel(generateScene(3));
    const round = JSON.parse(JSON.stringify(label));
    assert.deepEqual(round, label);
    assert.equal(round.objects.length, generateScene(3).objects.length);
  });
});

describe('png output', () => {
  it('writes the exact pixels', async () => {
    const scene = generateScene(21);
    const path = join(dir, 'scene.png');
    await writePng(path, sceneImage(scene));
    const { data, info } = await sharp(path).raw().toBuffer({ resolveWithObject: true });
    assert.equal(info.width, 64);
    assert.equal(info.channels, 3);
    assert.deepEqual(new Uint8Array(data), scene.rgb);
  });

  it('writes a contact sheet of the expected size', async () => {
    const scenes = [1, 2, 3, 4, 5].map((s) => generateScene(s));
    const path = join(dir, 'sheet.png');
    const sheet = await writeContactSheet(path, scenes, { columns: 3, scale: 2, gap: 2 });
    assert.equal(sheet.width, 3 * 128 + 4 * 2);
    assert.equal(sheet.height, 2 * 128 + 3 * 2);
    // a grey frame, then the first scene doubled from (2, 2)
    const pixel = (x: number, y: number) => {
      const i = (y * sheet.width + x) * 3;
      return [...sheet.data.subarray(i, i + 3)];
    };
    assert.deepEqual(pixel(1, 1), [128, 128, 128]);
    assert.deepEqual(pixel(3, 3), [...scenes[0]!.rgb.subarray(0, 3)]);
    const meta = await sharp(path).metadata();
    assert.equal(meta.width, sheet.width);
    assert.equal(meta.height, sheet.height);
  });

  it('refuses a buffer of the wrong length', async () => {
    await assert.rejects(
      writePng(join(dir, 'x.png'), { width: 4, height: 4, data: new Uint8Array(10) }),
      /Expected 48 bytes/,
    );
  });
});
