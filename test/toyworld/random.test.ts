import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  FractalField,
  NoiseField,
  Rng,
  fractalNoise,
  valueNoise,
} from '../../src/toyworld/random.js';

describe('Rng', () => {
  it('repeats a stream for the same seed and differs across seeds', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const c = new Rng(43);
    const xs = Array.from({ length: 16 }, () => a.next());
    assert.deepEqual(
      Array.from({ length: 16 }, () => b.next()),
      xs,
    );
    assert.notDeepEqual(
      Array.from({ length: 16 }, () => c.next()),
      xs,
    );
  });

  it('stays in range', () => {
    const r = new Rng(7);
    for (let i = 0; i < 10_000; i++) {
      const x = r.next();
      assert.ok(x >= 0 && x < 1);
      const k = r.int(5);
      assert.ok(Number.isInteger(k) && k >= 0 && k < 5);
      const u = r.uint32();
      assert.ok(Number.isInteger(u) && u >= 0 && u <= 0xffffffff);
    }
  });

  it('is roughly uniform', () => {
    const r = new Rng(1);
    const bins = new Array(10).fill(0);
    for (let i = 0; i < 100_000; i++) bins[r.int(10)]++;
    for (const b of bins) assert.ok(Math.abs(b - 10_000) < 500, `bin count ${b}`);
  });

  it('shuffles to a permutation', () => {
    const r = new Rng(3);
    const items = [1, 2, 3, 4, 5, 6, 7, 8];
    assert.deepEqual(r.shuffled(items).sort(), items);
  });

  it('rejects bad seeds with a clear message', () => {
    assert.throws(
      () => new Rng(-1),
      /Expected an integer in \[0, 4294967295\] for seed but received -1/,
    );
    assert.throws(() => new Rng(1.5), RangeError);
    assert.throws(() => new Rng(2 ** 32), RangeError);
  });
});

describe('noise', () => {
  it('tabulated fields equal direct evaluation, inside and outside their window', () => {
    const f = new NoiseField(99, 0, 10, 0, 5);
    const g = new FractalField(99, 0, 10, 0, 5);
    for (let i = 0; i < 500; i++) {
      const x = -3 + i * 0.037;
      const y = -1 + i * 0.019;
      assert.ok(Math.abs(f.at(x, y) - valueNoise(x, y, 99)) < 1e-6);
      assert.ok(Math.abs(g.at(x, y) - fractalNoise(x, y, 99)) < 1e-6);
    }
  });

  it('stays in [0, 1)', () => {
    for (let i = 0; i < 2000; i++) {
      const v = valueNoise(i * 0.31, i * 0.17, 5);
      assert.ok(v >= 0 && v < 1);
    }
  });
});
