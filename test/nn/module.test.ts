import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tidy, randn, zeros, manualSeed, Tensor } from '../../src/index.js';
import {
  Module,
  ModuleList,
  Linear,
  Conv2d,
  GroupNorm,
  LayerNorm,
  Embedding,
  StateDictError,
} from '../../src/nn/index.js';

class Block extends Module {
  readonly norm = this.registerModule('norm', new GroupNorm(2, 4));
  readonly convs = this.registerModule(
    'convs',
    new ModuleList([new Conv2d(4, 4, 3, { padding: 1 }), new Conv2d(4, 4, 1)]),
  );
  readonly proj = this.registerModule('proj', new Linear(4, 3, false));
  forward(x: Tensor): Tensor {
    let h = this.norm.forward(x);
    for (const c of this.convs) h = c.forward(h);
    return this.proj.forward(h.mean([2, 3]));
  }
}

test('parameter names follow the checkpoint key layout', () => {
  manualSeed(0);
  const b = new Block();
  assert.deepEqual(
    b.namedParameters().map(([n]) => n),
    [
      'norm.weight',
      'norm.bias',
      'convs.0.weight',
      'convs.0.bias',
      'convs.1.weight',
      'convs.1.bias',
      'proj.weight',
    ],
  );
  assert.equal(b.numParameters(), 4 + 4 + 4 * 4 * 9 + 4 + 16 + 4 + 12);
});

test('loadStateDict copies values and is strict, naming every bad key', () => {
  manualSeed(0);
  const a = new Block();
  manualSeed(1);
  const b = new Block();
  b.loadStateDict(a.stateDict());
  tidy(() => {
    const x = randn([2, 4, 5, 5]);
    assert.deepEqual(b.forward(x).toArray(), a.forward(x).toArray());
  });
  const sd = new Map(a.stateDict());
  sd.delete('proj.weight');
  sd.set('extra.weight', zeros([1]));
  sd.set('convs.1.bias', zeros([5]));
  try {
    b.loadStateDict(sd);
    assert.fail('expected an error');
  } catch (err) {
    assert.ok(err instanceof StateDictError);
    assert.deepEqual(err.missing, ['proj.weight']);
    assert.deepEqual(err.unexpected, ['extra.weight']);
    assert.match(err.message, /convs\.1\.bias: checkpoint \[5\] vs model \[4\]/);
  }
  const partial = new Map([['norm.weight', zeros([4])]]);
  const r = b.loadStateDict(partial, { strict: false });
  assert.equal(r.missing.length, 6);
});

test('freezing, train/eval and dtype casting', () => {
  const b = new Block();
  assert.equal(b.trainableParameters().length, 7);
  b.freeze();
  assert.equal(b.trainableParameters().length, 0);
  b.convs.at(0).requiresGrad_(true);
  assert.equal(b.trainableParameters().length, 2);
  b.eval();
  assert.equal(b.convs.at(1).training, false);
  b.to('float16');
  assert.ok(b.parameters().every((p) => p.dtype === 'float16'));
  assert.equal(b.trainableParameters().length, 2, 'casting keeps requiresGrad');
  b.to('bfloat16');
  assert.ok(b.parameters().every((p) => p.dtype === 'bfloat16'));
});

test('layers validate their configuration', () => {
  assert.throws(() => new Linear(0, 3), /positive integer for inFeatures but received 0/);
  assert.throws(() => new GroupNorm(3, 4), /divisible by groups/);
  assert.throws(() => new Conv2d(3, 4, 3, { groups: 2 }), /divisible by groups/);
  tidy(() => {
    const e = new Embedding(10, 4);
    assert.deepEqual([...e.forward(zeros([2, 3], { dtype: 'int64' })).shape], [2, 3, 4]);
    const ln = new LayerNorm(4);
    assert.deepEqual([...ln.forward(randn([2, 4])).shape], [2, 4]);
  });
});
