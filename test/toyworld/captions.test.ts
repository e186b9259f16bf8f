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
      captionFor([{ shape: 'cross', colour: 'orange', pattern: 'solid' }], 'snow'),
      'an orange cross in the snow',
    );
    assert.equal(
      captionFor([{ shape: 'circle', colour: 'purple', pattern: 'checks' }], 'city'),
      'a purple checkered circle with a city in the background',
    );
  });

  it('leaves unsaid the words an object is given without', () => {
    assert.equal(captionFor([{ shape: 'star' }], 'beach'), 'a star on the beach');
    assert.equal(
      captionFor([{ shape: 'star', pattern: 'stripes' }, { shape: 'star' }], 'snow'),
      'a striped star and a star in the snow',
    );
    // objects described alike are counted, whatever the unsaid words were
    assert.equal(
      captionFor(
        [
          { shape: 'cross', colour: 'orange' },
          { shape: 'cross', colour: 'orange' },
        ],
        'night',
      ),
      'two orange crosses at night',
    );
  });

  it('lists several objects and counts identical ones', () => {
    const star = { shape: 'star', colour: 'red', pattern: 'solid' } as const;
    const circle = { shape: 'circle', colour: 'blue', pattern: 'checks' } as const;
    const cross = { shape: 'cross', colour: 'yellow', pattern: 'solid' } as const;
    assert.equal(
      captionFor([star, circle], 'grass'),
      'a red star and a blue checkered circle on the grass',
    );
    assert.equal(
      captionFor([star, circle, cross], 'night'),
      'a red star, a blue checkered circle and a yellow cross at night',
    );
    assert.equal(
      captionFor([star, circle, star], 'beach'),
      'two red stars and a blue checkered circle on the beach',
    );
    assert.equal(captionFor([cross, cross], 'snow'), 'two yellow crosses in the snow');
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
    assert.equal(
      subjectPrompt('sks', 'cross', 'brick-wall'),
      'a sks cross in front of a brick wall',
    );
  });
});
