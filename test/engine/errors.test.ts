// Bad input surfaces as JavaScript errors carrying ATen's message; the process stays alive.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tensor, zeros, ones, tidy, call, findOp, ops, memory } from '../../src/index.js';
import * as F from '../../src/nn/functional.js';

test('shape mismatch throws with ATen message', () => {
  tidy(() => {
    assert.throws(
      () => zeros([2, 3]).add(zeros([4, 5])),
      /size of tensor a \(3\) must match the size of tensor b \(5\)/,
    );
    assert.throws(() => zeros([2, 3]).matmul(zeros([4, 5])), /cannot be multiplied|shapes/);
    assert.throws(
      () => F.conv2d(zeros([1, 3, 8, 8]), zeros([4, 2, 3, 3])),
      /expected input\[1, 3, 8, 8\] to have 2 channels/,
    );
  });
});

test('wrong dtype throws', () => {
  tidy(() => {
    assert.throws(() => F.embedding(zeros([10, 4]), zeros([3])), /Long|Int|indices/i);
    assert.throws(
      () => zeros([2, 2]).matmul(zeros([2, 2], { dtype: 'float64' })),
      /dtype|Double|Float/i,
    );
  });
});

test('unknown operator throws', () => {
  assert.throws(() => findOp('aten::no_such_op'), /Unknown operator aten::no_such_op/);
  assert.throws(
    () => call('aten::add', 'NoSuchOverload', zeros([1]), zeros([1])),
    /Unknown operator aten::add.NoSuchOverload/,
  );
});

test('wrong argument kinds throw instead of crashing', () => {
  tidy(() => {
    assert.throws(() => call('aten::add', 'Tensor', zeros([1]), 'x'), /Expected a tensor/);
    assert.throws(
      () => call('aten::conv2d', '', zeros([1, 1, 3, 3]), zeros([1, 1, 1, 1]), null, 1.5),
      /Expected an integer/,
    );
    assert.throws(() => call('aten::add', 'Tensor'), /missing argument 'self'/);
    assert.throws(() => call('aten::relu', '', zeros([1]), 1, 2, 3), /takes at most 1 arguments/);
  });
});

test('use after dispose throws', () => {
  const t = ones([3]);
  t.dispose();
  assert.equal(t.isDisposed, true);
  assert.throws(() => t.add(1), /used after dispose/);
  assert.throws(() => t.shape, /used after dispose/);
  t.dispose(); // idempotent
});

test('bad data and shapes for tensor() are clear errors', () => {
  assert.throws(() => tensor([1, 2, 3], [2, 2]), /3 values but shape \[2, 2\] needs 4/);
  assert.throws(
    () => tensor([1.5], [1], { dtype: 'int64' }),
    /Expected integers in \[.*\] for dtype int64 but element 0 is 1.5 \(not an integer\)/,
  );
  assert.throws(() => zeros([2, -1]), /non-negative integers/);
  assert.throws(() => ops.item(zeros([2])), /one element|a Tensor with 2 elements/);
});

test('backward misuse throws', () => {
  tidy(() => {
    assert.throws(() => zeros([1]).backward(), /does not require grad/);
    const x = ones([3]).requiresGrad_();
    assert.throws(() => x.mul(2).backward(), /needs a scalar/);
  });
});

test('the process is alive and counting after all of the above', () => {
  const before = memory().liveTensors;
  const t = tidy(() => ones([2]).add(1));
  assert.deepEqual(t.toArray(), [2, 2]);
  t.dispose();
  assert.equal(memory().liveTensors, before);
});
