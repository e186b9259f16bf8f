import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  article,
  captionFor,
  describeObject,
  joinList,
  subjectPrompt,
} from '../../src/toyworld/captions.js';

describe('captions', () => {
  it('writes single objects in the DreamBench style', () => {
    assert.equal(
      captionFor([{ shape: 'star', colour: 'red', pattern: 'stripes' }], 'beach'),
      'a red striped star on the beach',
    );
    assert.equal(
      captionFor([{ shape: 'heart', colour: 'orange', pattern: 'solid' }], 'snow'),
      'an orange heart in the snow',
    );
    assert.equal(
      captionFor([{ shape: 'ring', colour: 'black', pattern: 'checks' }], 'city'),
      'a black checkered ring with a city in the background',
    );
  });

  it('lists several objects and counts identical ones', () => {
    const star = { shape: 'star', colour: 'red', pattern: 'solid' } as const;
    const circle = { shape: 'circle', colour: 'blue', pattern: 'dots' } as const;
    const cross = { shape: 'cross', colour: 'white', pattern: 'solid' } as const;
    assert.equal(
      captionFor([star, circle], 'grass'),
      'a red star and a blue dotted circle on the grass',
    );
    assert.equal(
      captionFor([star, circle, cross], 'night'),
      'a red star, a blue dotted circle and a white cross at night',
    );
    assert.equal(
      captionFor([star, circle, star], 'water'),
      'two red stars and a blue dotted circle on the water',
    );
    assert.equal(captionFor([cross, cross], 'desert'), 'two white crosses in the desert');
  });

  it('has the small pieces right', () => {
    assert.equal(article('orange star'), 'an');
    assert.equal(article('[V]'), 'a');
    assert.equal(
      describeObject({ shape: 'square', colour: 'green', pattern: 'checks' }),
      'green checkered square',
    );
    assert.equal(joinList(['a']), 'a');
    assert.equal(joinList(['a', 'b']), 'a and b');
    assert.equal(joinList(['a', 'b', 'c']), 'a, b and c');
  });

  it('builds subject prompts with an identifier token', () => {
    assert.equal(subjectPrompt('[V]', 'star', 'beach'), 'a [V] star on the beach');
    assert.equal(subjectPrompt('sks', 'ring', 'brick-wall'), 'a sks ring in front of a brick wall');
  });
});
