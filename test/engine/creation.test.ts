// tensor() refuses data it cannot represent instead of turning it into NaN, truncating or
// wrapping it: nested or text elements, and values an integer dtype does not hold.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tensor, tidy } from '../../src/index.js';

test('tensor() refuses nested (ragged or not) and non-number elements, naming the element', () => {
  assert.throws(
    () => tensor([[1, 2], [3]] as unknown as number[]),
    (err: Error) =>
      err instanceof TypeError &&
      /element 0 is an array; nested arrays are not read: pass the values flat with their shape/.test(
        err.message,
      ),
  );
  assert.throws(
    () =>
      tensor([
        [1, 2],
        [3, 4],
      ] as unknown as number[]),
    /element 0 is an array/,
  );
  assert.throws(
    () => tensor(['a'] as unknown as number[]),
    (err: Error) => err instanceof TypeError && err.message.endsWith('element 0 is "a" (string)'),
  );
  assert.throws(() => tensor([1, null] as unknown as number[]), /element 1 is null \(object\)/);
  // numbers, NaN included, are data as given
  tidy(() => {
    assert.deepEqual(tensor([1, 2, 3, 4], [2, 2]).toArray(), [1, 2, 3, 4]);
    assert.ok(Number.isNaN(tensor([NaN]).toArray()[0]));
  });
});

test('integer dtypes refuse non-integers and values out of their range instead of wrapping', () => {
  assert.throws(
    () => tensor(Float64Array.from([1.5, 300]), [2], { dtype: 'int8' }),
    (err: Error) =>
      err instanceof RangeError &&
      err.message.startsWith(
        'Expected integers in [-128, 127] for dtype int8 but element 0 is 1.5 (not an integer)',
      ),
  );
  assert.throws(
    () => tensor(Float64Array.from([1, 300]), [2], { dtype: 'int8' }),
    /for dtype int8 but element 1 is 300 \(out of range\)/,
  );
  assert.throws(() => tensor([300], [1], { dtype: 'int8' }), /element 0 is 300 \(out of range\)/);
  assert.throws(() => tensor([-1], [1], { dtype: 'uint8' }), /\[0, 255\] for dtype uint8/);
  assert.throws(() => tensor(Int32Array.from([70000]), [1], { dtype: 'int16' }), /int16/);
  assert.throws(
    () => tensor(BigInt64Array.from([1n << 40n]), [1], { dtype: 'int32' }),
    /for dtype int32 but element 0 is 1099511627776 \(out of range\)/,
  );
  assert.throws(() => tensor([2], [1], { dtype: 'bool' }), /\[0, 1\] for dtype bool/);
  assert.throws(
    () => tensor([2 ** 60], [1], { dtype: 'int64' }),
    /for dtype int64 .* beyond ±2\^53 pass a BigInt64Array/,
  );
  // the edges of each range, and conversions that fit, still work
  tidy(() => {
    assert.deepEqual(
      tensor(Float64Array.from([-128, 127]), [2], { dtype: 'int8' }).toArray(),
      [-128, 127],
    );
    assert.deepEqual(tensor([0, 255], [2], { dtype: 'uint8' }).toArray(), [0, 255]);
    assert.deepEqual(tensor(Int32Array.from([7]), [1], { dtype: 'int8' }).toArray(), [7]);
    assert.deepEqual(tensor(BigInt64Array.from([-5n]), [1], { dtype: 'int32' }).toArray(), [-5]);
    assert.deepEqual(tensor([1.5], [1], { dtype: 'float64' }).toArray(), [1.5]);
  });
});
