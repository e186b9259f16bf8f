// The annotation file: a mistyped key, a number too large for a double and a point clicked as
// both positive and negative are refused with the file, the key or point, and what to do.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AnnotationError,
  nonFiniteNumber,
  parseAnnotation,
  readAnnotation,
} from '../../../src/p3s/supervision/annotations.js';

const dir = mkdtempSync(join(tmpdir(), 'p3s-annotation-'));

function refusal(json: unknown): string {
  try {
    parseAnnotation(json, dir);
  } catch (err) {
    assert.ok(err instanceof AnnotationError, String(err));
    return err.message;
  }
  return assert.fail('the annotation was accepted');
}

test('an unknown key is named, with the known key it was probably meant to be', () => {
  assert.equal(
    refusal({ classWord: 'dog', images: [{ path: 'a.png', postive: [[1, 2]] }] }),
    'Unknown key "postive" in images[0]; did you mean "positive"? ' +
      '(known keys: path, positive, negative; keys starting with "_" are notes)',
  );
  assert.match(
    refusal({ class_word: 'dog', images: ['a.png'] }),
    /^Unknown key "class_word" in the annotation; did you mean "classWord"\?/,
  );
  assert.match(
    refusal({ classWord: 'dog', images: [{ path: 'a.png', positive: [[1, 2]], colour: 1 }] }),
    /^Unknown key "colour" in images\[0\] \(known keys/,
  );
  // keys starting with "_" are notes
  const a = parseAnnotation(
    { _note: 'x', classWord: 'dog', images: [{ path: 'a.png', _by: 'me', positive: [[1, 2]] }] },
    dir,
  );
  assert.deepEqual(a.images[0]!.positive, [[1, 2]]);
});

test('a point given as positive and negative on one photo is refused', () => {
  assert.equal(
    refusal({
      classWord: 'dog',
      images: [
        {
          path: 'a.png',
          positive: [
            [5, 6],
            [10, 10],
          ],
          negative: [[10, 10]],
        },
      ],
    }),
    `The point (10, 10) is both positive and negative in images[0] (${join(dir, 'a.png')}): ` +
      'put the positive point on the subject and the negative one on the look-alike',
  );
  // the same coordinates on two different photos are fine
  parseAnnotation(
    {
      classWord: 'dog',
      images: [
        { path: 'a.png', positive: [[10, 10]] },
        { path: 'b.png', negative: [[10, 10]] },
      ],
    },
    dir,
  );
});

test('a number too large for a double is reported as written, where it is', () => {
  const path = join(dir, 'huge.json');
  writeFileSync(
    path,
    '{\n  "classWord": "dog",\n  "images": [{ "path": "1e999.png", "positive": [[1e999, 22]] }]\n}\n',
  );
  assert.throws(
    () => readAnnotation(path),
    (e: unknown) =>
      e instanceof AnnotationError &&
      e.message ===
        `${path}: the number 1e999 (line 3, column 51) is not finite (too large for a double); ` +
          'points are pixel coordinates inside the photo',
  );
  assert.deepEqual(nonFiniteNumber('{"a": "9e999", "b": [1.5e3, -2e400]}'), {
    text: '-2e400',
    line: 1,
    column: 29,
  });
  assert.equal(nonFiniteNumber('[1e308, 0.1, "1e999"]'), null);
  // through the API the value is Infinity: shown as such, not as JSON's null
  assert.equal(
    refusal({ classWord: 'dog', images: [{ path: 'a.png', positive: [[Infinity, 22]] }] }),
    'Expected [x, y] numbers for images[0].positive[0] but received [Infinity,22], which is not finite',
  );
});

test('errors from a file name the file', () => {
  const path = join(dir, 'no-positive.json');
  writeFileSync(path, JSON.stringify({ classWord: 'dog', images: ['a.png'] }));
  assert.throws(
    () => readAnnotation(path),
    (e: unknown) =>
      e instanceof AnnotationError &&
      e.message.startsWith(`${path}: Expected a positive point on at least one image`),
  );
});
