// Flag parsing shared by the commands: negative numbers as values (--layer -2, as --help writes
// it) and a mistyped flag answered with the flag it was probably meant to be.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { intFlag, joinNegativeValues, parse, UsageError } from '../../../apps/cli/args.js';
import { MASK_SETTINGS } from '../../../src/p3s/supervision/mask_settings.js';
import { flagOptions } from '../../../src/settings/table.js';

const OPTIONS = flagOptions(MASK_SETTINGS);

test('a negative number after a value-taking flag is its value', () => {
  for (const value of ['-2', '-1', '-0.5', '-.5', '-Infinity']) {
    const { values, positionals } = parse(['a.json', '--layer', value, '--dense', '2'], OPTIONS);
    assert.equal(values.layer, value);
    assert.equal(values.dense, '2');
    assert.deepEqual(positionals, ['a.json']);
  }
  assert.equal(parse(['--layer=-2'], OPTIONS).values.layer, '-2');
  // only after flags that take a value, and never after "--"
  assert.deepEqual(joinNegativeValues(['--no-propagate', '-2'], OPTIONS), ['--no-propagate', '-2']);
  assert.deepEqual(joinNegativeValues(['--', '--layer', '-2'], OPTIONS), ['--', '--layer', '-2']);
  // a flag-like word after a value-taking flag is still refused as before
  assert.throws(() => parse(['--layer', '-h'], OPTIONS), UsageError);
});

test('a mistyped flag is named with the flag it was probably meant to be', () => {
  assert.throws(
    () => parse(['--laeyr', '2'], OPTIONS),
    (e: unknown) =>
      e instanceof UsageError && e.message === 'Unknown option --laeyr; did you mean --layer?',
  );
  assert.throws(
    () => parse(['--zzzzzz'], OPTIONS),
    (e: unknown) => e instanceof UsageError && e.message === 'Unknown option --zzzzzz',
  );
});

test('an integer flag names the smallest value it takes', () => {
  assert.equal(intFlag({ layer: '-1' }, 'layer', 0, -1), -1);
  assert.throws(() => intFlag({ layer: '-2' }, 'layer', 0, -1), {
    message: 'Expected an integer ≥ -1 for --layer but received -2',
  });
  assert.throws(() => intFlag({ n: '-1' }, 'n', 0), /Expected a non-negative integer for --n/);
  assert.throws(() => intFlag({ n: '0' }, 'n', 1, 1), /Expected a positive integer for --n/);
  assert.throws(() => intFlag({ n: '1' }, 'n', 2, 2), /Expected an integer ≥ 2 for --n/);
});
