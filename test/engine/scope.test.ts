import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ones,
  tidy,
  keep,
  memory,
  noGrad,
  inferenceMode,
  enableGrad,
  isGradEnabled,
  tensor,
} from '../../src/index.js';

test('tidy frees intermediates and keeps returned tensors', () => {
  const before = memory().liveTensors;
  const result = tidy(() => {
    const a = ones([4]);
    const b = a.add(1);
    return { sum: b.mul(2), list: [b.sub(1)] };
  });
  assert.equal(memory().liveTensors, before + 2);
  assert.deepEqual(result.sum.toArray(), [4, 4, 4, 4]);
  result.sum.dispose();
  result.list[0]!.dispose();
  assert.equal(memory().liveTensors, before);
});

test('keep() lets a tensor outlive its scope; errors still free the scope', () => {
  const before = memory().liveTensors;
  let kept: ReturnType<typeof ones> | undefined;
  tidy(() => {
    kept = keep(ones([2]));
    ones([3]);
  });
  assert.equal(memory().liveTensors, before + 1);
  kept!.dispose();
  assert.throws(() =>
    tidy(() => {
      ones([5]);
      throw new Error('boom');
    }),
  );
  assert.equal(memory().liveTensors, before);
});

test('nested scopes move returned tensors to the parent', () => {
  const before = memory().liveTensors;
  tidy(() => {
    const inner = tidy(() => ones([2]).add(1));
    assert.equal(inner.isDisposed, false);
  });
  assert.equal(memory().liveTensors, before);
});

test('grad modes are scoped and restored after throws', () => {
  assert.equal(isGradEnabled(), true);
  noGrad(() => {
    assert.equal(isGradEnabled(), false);
    enableGrad(() => assert.equal(isGradEnabled(), true));
  });
  assert.throws(() =>
    noGrad(() => {
      throw new Error('x');
    }),
  );
  assert.equal(isGradEnabled(), true);
  tidy(() => {
    const w = ones([2]).requiresGrad_();
    assert.equal(noGrad(() => w.mul(2)).requiresGrad, false);
    assert.equal(inferenceMode(() => w.mul(2)).requiresGrad, false);
    assert.equal(w.mul(2).requiresGrad, true);
  });
});

test('typed arrays round-trip for every dtype', () => {
  tidy(() => {
    assert.deepEqual(
      [...(tensor(new Float32Array([1.5, -2])).toTypedArray() as Float32Array)],
      [1.5, -2],
    );
    assert.deepEqual(
      [...(tensor(new Float64Array([1e-300])).toTypedArray() as Float64Array)],
      [1e-300],
    );
    assert.deepEqual(
      [...(tensor(new BigInt64Array([2n ** 40n])).toTypedArray() as BigInt64Array)],
      [2n ** 40n],
    );
    assert.deepEqual([...(tensor(new Int32Array([-7])).toTypedArray() as Int32Array)], [-7]);
    assert.deepEqual([...(tensor(new Uint8Array([255])).toTypedArray() as Uint8Array)], [255]);
    assert.deepEqual(tensor([1, 0, 1], [3], { dtype: 'bool' }).toArray(), [1, 0, 1]);
    // 0x3c00 is 1.0 in float16, 0x3f80 is 1.0 in bfloat16
    assert.deepEqual(tensor(new Uint16Array([0x3c00]), [1], { dtype: 'float16' }).toArray(), [1]);
    assert.deepEqual(tensor(new Uint16Array([0x3f80]), [1], { dtype: 'bfloat16' }).toArray(), [1]);
    assert.deepEqual(
      [...(tensor([0.5], [1]).to('float16').toTypedArray() as Uint16Array)],
      [0x3800],
    );
    const t = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
    assert.deepEqual([...t.shape], [2, 3]);
    assert.equal(t.dtype, 'float32');
    assert.equal(t.device, 'cpu');
  });
});

test('tensors held by a returned result object survive tidy', () => {
  class Result {
    constructor(
      readonly mean: ReturnType<typeof ones>,
      readonly extra: { std: ReturnType<typeof ones> },
    ) {}
  }
  const before = memory().liveTensors;
  const r = tidy(() => {
    ones([9]);
    return new Result(ones([2]), { std: ones([3]) });
  });
  assert.equal(r.mean.isDisposed, false);
  assert.equal(r.extra.std.isDisposed, false);
  assert.equal(memory().liveTensors, before + 2);
  r.mean.dispose();
  r.extra.std.dispose();
});
