// Toy-model training batches: pixel layout and range, object-count skew, token ids.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CLIPTokenizer } from '../../../src/tokenizers/clip_tokenizer.js';
import { imagesToSignedTensor } from '../../../src/io/image.js';
import {
  scenes,
  scenesToTensor,
  skewedObjectCount,
  skewedScenes,
  tokenIds,
  trainingCaption,
} from '../../../apps/toymodels/data.js';
import { PATTERN_ADJECTIVES } from '../../../src/toyworld/attributes.js';
import { fixturePath } from '../../helpers/paths.js';

test('scenes become (B, 3, H, W) in [-1, 1] with channels planar', () => {
  const batch = scenes('heldout', 0, 2);
  const x = scenesToTensor(batch);
  assert.deepEqual(x.shape, [2, 3, 64, 64]);
  const v = x.toTypedArray() as Float32Array;
  const plane = 64 * 64;
  // Pixel 100 of scene 1, green channel.
  assert.equal(v[3 * plane + plane + 100], Math.fround(batch[1]!.rgb[100 * 3 + 1]! / 127.5 - 1));
  assert.ok(v.every((p) => p >= -1 && p <= 1));
  x.dispose();
  assert.throws(
    () =>
      imagesToSignedTensor([
        { width: 2, height: 2, data: new Uint8Array(12) },
        { width: 3, height: 2, data: new Uint8Array(18) },
      ]),
    /Expected 2×2 images but image 1 is 3×2/,
  );
});

test('object counts lean towards single objects, the same on every call', () => {
  const counts = [0, 0, 0, 0];
  for (let i = 0; i < 2000; i++) counts[skewedObjectCount('train', i)]!++;
  // 60 % and 40 % of 2000, within ±5 points
  assert.ok(counts[1]! > 1100 && counts[1]! < 1300, `1 object: ${counts[1]}`);
  assert.ok(counts[2]! > 700 && counts[2]! < 900, `2 objects: ${counts[2]}`);
  assert.equal(counts[3], 0);
  const batch = skewedScenes('train', 40, 6);
  batch.forEach((s, k) => assert.equal(s.objects.length, skewedObjectCount('train', 40 + k)));
  assert.deepEqual(
    skewedScenes('train', 40, 6).map((s) => s.caption),
    batch.map((s) => s.caption),
  );
});

test('the two-object share and the layout of the U-Net’s scenes follow its settings', () => {
  const share = (two: number) => {
    let n = 0;
    for (let i = 0; i < 2000; i++) n += skewedObjectCount('train', i, two) === 2 ? 1 : 0;
    return n / 2000;
  };
  assert.equal(share(0), 0);
  assert.equal(share(1), 1);
  assert.ok(Math.abs(share(0.1) - 0.1) < 0.03, `${share(0.1)}`);
  const slots = skewedScenes('train', 40, 6, { layout: 'slots', twoObjectShare: 0 });
  assert.ok(slots.every((s) => s.objects.length === 1 && s.objects[0]!.spec.rotation === 0));
});

test('training captions leave colour and pattern unsaid at their shares, fixed per scene', () => {
  const batch = skewedScenes('train', 1000, 400, { layout: 'slots', twoObjectShare: 0 });
  const full = batch.map((s, i) =>
    trainingCaption(s, 1000 + i, { colourDropout: 0, patternDropout: 0 }),
  );
  assert.deepEqual(
    full,
    batch.map((s) => s.caption),
  );
  const unsaid = { colourDropout: 0.4, patternDropout: 0.2 };
  const captions = batch.map((s, i) => trainingCaption(s, 1000 + i, unsaid));
  assert.deepEqual(
    batch.map((s, i) => trainingCaption(s, 1000 + i, unsaid)),
    captions,
  );
  let noColour = 0;
  let noPattern = 0;
  let patterned = 0;
  captions.forEach((c, i) => {
    const o = batch[i]!.objects[0]!;
    const [objectWords, where] = c.split(` ${o.shape} `);
    // the shape and the background are always said
    assert.ok(batch[i]!.caption.endsWith(`${o.shape} ${where}`), c);
    if (!objectWords!.includes(o.colour)) noColour++;
    if (o.pattern !== 'solid') {
      patterned++;
      if (!objectWords!.includes(PATTERN_ADJECTIVES[o.pattern])) noPattern++;
    }
  });
  // 40 % and 20 % of the objects, within ±7 points
  assert.ok(Math.abs(noColour / batch.length - 0.4) < 0.07, `colour unsaid ${noColour}`);
  assert.ok(
    Math.abs(noPattern / patterned - 0.2) < 0.07,
    `pattern unsaid ${noPattern}/${patterned}`,
  );
});

test('captions tokenize to (B, 77) padded with 49407', () => {
  const tokenizer = CLIPTokenizer.fromPretrained(fixturePath('clip-tokenizer'));
  const ids = tokenIds(tokenizer, ['a red star on the beach', '']);
  assert.deepEqual(ids.shape, [2, 77]);
  const flat = ids.toArray() as number[];
  assert.equal(flat[0], 49406);
  assert.equal(flat[77 + 1], 49407);
  assert.equal(flat[77 + 76], 49407);
  ids.dispose();
});
