// The known name a typo was meant to be: errors for a mistyped annotation key or flag suggest it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closestName, editDistance } from '../../src/settings/closest.js';

test('edit distance counts inserts, deletes, replacements and swapped neighbours', () => {
  assert.equal(editDistance('positive', 'positive'), 0);
  assert.equal(editDistance('postive', 'positive'), 1); // a letter left out
  assert.equal(editDistance('psoitive', 'positive'), 1); // two letters swapped
  assert.equal(editDistance('negatvie', 'negative'), 1);
  assert.equal(editDistance('', 'path'), 4);
  assert.equal(editDistance('kitten', 'sitting'), 3);
});

test('the closest known name is suggested only when it is close enough to be a typo', () => {
  const keys = ['path', 'positive', 'negative'];
  assert.equal(closestName('postive', keys), 'positive');
  assert.equal(closestName('Negative', keys), 'negative');
  assert.equal(closestName('pth', keys), 'path');
  assert.equal(closestName('colour', keys), undefined);
  assert.equal(closestName('stpes', ['steps', 'seed', 'size']), 'steps');
});
