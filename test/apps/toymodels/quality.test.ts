// Quality helpers: mask IoU, one-attribute caption changes, attribute accuracy bookkeeping.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { scenes } from '../../../apps/toymodels/data.js';
import { attributeAccuracy, maskIoU } from '../../../apps/toymodels/quality.js';
import { alteredCaption } from '../../../src/toyworld/altered_captions.js';
import { captionFor } from '../../../src/toyworld/captions.js';
import { BACKGROUNDS, COLOUR_NAMES, PATTERNS, SHAPES } from '../../../src/toyworld/attributes.js';

test('mask IoU', () => {
  assert.equal(maskIoU(Uint8Array.from([1, 1, 0, 0]), Uint8Array.from([0, 1, 1, 0])), 1 / 3);
  assert.equal(maskIoU(new Uint8Array(4), new Uint8Array(4)), 1);
  assert.throws(() => maskIoU(new Uint8Array(2), new Uint8Array(3)), /different sizes/);
});

test('an altered caption changes exactly the one attribute its variant names', () => {
  for (const scene of scenes('heldout', 0, 20, { objectCount: 1 })) {
    const o = scene.objects[0]!;
    const base = { shape: o.shape, colour: o.colour, pattern: o.pattern };
    for (let v = 0; v < 8; v++) {
      const altered = alteredCaption(scene, v);
      const candidates =
        v % 4 === 0
          ? COLOUR_NAMES.map((colour) => captionFor([{ ...base, colour }], scene.background))
          : v % 4 === 1
            ? SHAPES.map((shape) => captionFor([{ ...base, shape }], scene.background))
            : v % 4 === 2
              ? PATTERNS.map((pattern) => captionFor([{ ...base, pattern }], scene.background))
              : BACKGROUNDS.map((b) => captionFor([base], b));
      assert.ok(candidates.includes(altered), `${altered} (variant ${v})`);
      assert.notEqual(altered, scene.caption);
    }
  }
});

test('attribute accuracy counts each attribute and all four', () => {
  const truth = [
    { colour: 'red', shape: 'star', pattern: 'solid', background: 'snow' },
    { colour: 'blue', shape: 'cross', pattern: 'checks', background: 'beach' },
  ];
  const seen = [
    { colour: 'red', shape: 'star', pattern: 'solid', background: 'snow' },
    { colour: 'red', shape: 'cross', pattern: 'checks', background: 'grass' },
  ];
  const acc = attributeAccuracy(seen, truth);
  assert.equal(acc.colour, 0.5);
  assert.equal(acc.shape, 1);
  assert.equal(acc.background, 0.5);
  assert.equal(acc.all, 0.5);
  assert.equal(acc.count, 2);
});
