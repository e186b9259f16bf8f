import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { BACKGROUNDS, sameAttributes } from '../../src/toyworld/attributes.js';
import {
  makeLookalikePair,
  makeSubjectReferenceSet,
  type LookalikeScene,
} from '../../src/toyworld/pairs.js';

function assertClick(scene: LookalikeScene['scene'], p: { x: number; y: number }, index: number) {
  assert.equal(scene.instances[p.y * scene.size + p.x], index + 1, `point ${p.x},${p.y}`);
}

describe('makeLookalikePair', () => {
  it('gives two objects of one shape that differ in exactly colour or pattern', () => {
    const kinds = new Set<string>();
    for (let seed = 0; seed < 60; seed++) {
      const pair = makeLookalikePair(seed);
      const s = pair.scene.objects[pair.subject]!;
      const d = pair.scene.objects[pair.distractor]!;
      assert.equal(pair.scene.objects.length, 2);
      assert.notEqual(pair.subject, pair.distractor);
      assert.equal(s.shape, d.shape);
      const colourDiffers = s.colour !== d.colour;
      const patternDiffers = s.pattern !== d.pattern;
      assert.ok(colourDiffers !== patternDiffers, 'exactly one attribute differs');
      assert.equal(pair.difference, colourDiffers ? 'colour' : 'pattern');
      kinds.add(pair.difference);
      // Barely touching, similar sizes.
      assert.ok(s.visibleFraction >= 0.95 && d.visibleFraction >= 0.95);
      assert.ok(Math.max(s.radius, d.radius) / Math.min(s.radius, d.radius) < 1.4);
    }
    assert.equal(kinds.size, 2);
  });

  it('puts the positive point on the subject and the negative one on the distractor', () => {
    for (let seed = 0; seed < 60; seed++) {
      const pair = makeLookalikePair(seed, { size: seed % 2 ? 96 : 64 });
      assertClick(pair.scene, pair.positive, pair.subject);
      assertClick(pair.scene, pair.negative, pair.distractor);
    }
  });

  it('honours fixed choices and is deterministic', () => {
    const pair = makeLookalikePair(9, {
      difference: 'pattern',
      subject: { shape: 'cross', colour: 'purple' },
      background: 'night',
    });
    const s = pair.scene.objects[pair.subject]!;
    assert.equal(pair.difference, 'pattern');
    assert.equal(s.shape, 'cross');
    assert.equal(s.colour, 'purple');
    assert.equal(pair.scene.background, 'night');
    assert.deepEqual(makeLookalikePair(9).scene.rgb, makeLookalikePair(9).scene.rgb);
    assert.notDeepEqual(makeLookalikePair(9).scene.rgb, makeLookalikePair(10).scene.rgb);
  });
});

describe('makeSubjectReferenceSet', () => {
  it('shows one subject in distinct backgrounds, some with a look-alike', () => {
    for (let seed = 0; seed < 20; seed++) {
      const count = 3 + (seed % 3);
      const set = makeSubjectReferenceSet(seed, { count });
      assert.equal(set.images.length, count);
      const backgrounds = new Set(set.images.map((i) => i.scene.background));
      assert.equal(backgrounds.size, count);
      let distractors = 0;
      for (const image of set.images) {
        const s = image.scene.objects[image.subject]!;
        assert.ok(sameAttributes(s, set.subject));
        assertClick(image.scene, image.positive, image.subject);
        if (image.distractor === null) {
          assert.equal(image.scene.objects.length, 1);
          assert.equal(image.negative, null);
          continue;
        }
        distractors++;
        const d = image.scene.objects[image.distractor]!;
        assert.equal(d.shape, s.shape);
        assert.ok((d.colour !== s.colour) !== (d.pattern !== s.pattern));
        assertClick(image.scene, image.negative!, image.distractor);
      }
      assert.equal(distractors, Math.ceil(count / 2));
    }
  });

  it('varies size and position, keeps a fixed subject, and cycles backgrounds past ten', () => {
    const set = makeSubjectReferenceSet(4, {
      count: 12,
      subject: { shape: 'star', colour: 'red', pattern: 'stripes' },
      withDistractor: 0,
    });
    assert.deepEqual(set.subject, { shape: 'star', colour: 'red', pattern: 'stripes' });
    const radii = set.images.map((i) => i.scene.objects[0]!.radius);
    assert.ok(Math.max(...radii) / Math.min(...radii) > 1.3);
    const xs = set.images.map((i) => i.scene.objects[0]!.centre.x);
    assert.ok(Math.max(...xs) - Math.min(...xs) > 10);
    assert.equal(new Set(set.images.map((i) => i.scene.background)).size, BACKGROUNDS.length);
    assert.ok(set.images.every((i) => i.distractor === null));
  });

  it('rejects bad counts', () => {
    assert.throws(() => makeSubjectReferenceSet(1, { count: 0 }), /for count but received 0/);
    assert.throws(
      () => makeSubjectReferenceSet(1, { count: 3, withDistractor: 4 }),
      /withDistractor/,
    );
  });
});
