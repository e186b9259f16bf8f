// Adam's moments in 16 bits: stochastic rounding to bfloat16 is unbiased and exact where it can
// be, and an Adam holding bfloat16 moments follows the float32 one, its second moment included
// (the one round-to-nearest would freeze), and resumes from its state dict exactly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { full, randn, tensor } from '../../src/engine/creation.js';
import { noGrad } from '../../src/engine/autograd.js';
import { Generator, manualSeed } from '../../src/engine/random.js';
import type { Tensor } from '../../src/engine/tensor.js';
import { Adam, type AdamOptions } from '../../src/optim/adam.js';
import { stochasticBFloat16 } from '../../src/optim/stochastic_rounding.js';

function rounded(value: number, n = 200_000, seed = 0): number[] {
  return stochasticBFloat16(full([n], value), new Generator(seed))
    .to('float32')
    .toArray() as number[];
}

test('stochastic rounding to bfloat16 picks the two neighbours, unbiased, and keeps exact values', () => {
  // value, lower neighbour, upper neighbour (bfloat16 spacing 2^-7 in [1, 2), 2^-8 in [0.5, 1))
  const cases: [number, number, number][] = [
    [1 + 2 ** -9, 1, 1 + 2 ** -7],
    [1 - 2 ** -10, 1 - 2 ** -8, 1],
    [-(3 + 2 ** -8), -(3 + 2 ** -6), -3],
  ];
  for (const [x, lo, hi] of cases) {
    const r = rounded(x);
    assert.deepEqual(
      [...new Set(r)].sort((a, b) => a - b),
      [lo, hi],
      `neighbours of ${x}`,
    );
    const mean = r.reduce((a, b) => a + b, 0) / r.length;
    // the share picking `hi` is binomial: 4 standard deviations of the mean
    const sd = (hi - lo) * Math.sqrt((((x - lo) / (hi - lo)) * ((hi - x) / (hi - lo))) / r.length);
    assert.ok(Math.abs(mean - x) < 4 * sd, `mean ${mean} vs ${x} (sd ${sd})`);
  }
  for (const exact of [1, 0, -0.75, 2 ** -30, 1000]) {
    assert.deepEqual([...new Set(rounded(exact, 1000))], [exact], `${exact} stays`);
  }
});

/** n steps of Adam on a least-squares problem; returns the weights, optimizer and losses. */
function run(options: AdamOptions, steps: number, start?: { w: Tensor; opt: Adam }) {
  manualSeed(3);
  const a = randn([64, 16]);
  const b = randn([64, 1]);
  const w = start?.w ?? randn([16, 1]).requiresGrad_();
  const opt = start?.opt ?? new Adam([w], options);
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    opt.zeroGrad();
    const loss = a.matmul(w).sub(b).square().mean();
    loss.backward();
    opt.step();
    losses.push(loss.item() as number);
  }
  return { w, opt, losses };
}

test('Adam with bfloat16 moments follows float32 Adam and halves the moments’ bytes', () => {
  const full32 = run({ lr: 1e-2 }, 400);
  const half = run({ lr: 1e-2, momentDtype: 'bfloat16' }, 400);
  const moments = half.opt.stateDict().tensors;
  assert.equal(moments.get('0.exp_avg')!.dtype, 'bfloat16');
  assert.equal(moments.get('0.exp_avg_sq')!.dtype, 'bfloat16');
  for (const i of [50, 200, 399]) {
    const rel = Math.abs(half.losses[i]! - full32.losses[i]!) / full32.losses[i]!;
    assert.ok(rel < 0.02, `step ${i}: ${half.losses[i]} vs ${full32.losses[i]}`);
  }
  // v after 400 steps, element by element: each rounding is unbiased but adds noise, which v's
  // long memory (1 / (1 − β2) = 1 000 steps) sums; measured worst 8 % over these 16 elements
  const v32 = full32.opt.stateDict().tensors.get('0.exp_avg_sq')!.toArray() as number[];
  const v16 = moments.get('0.exp_avg_sq')!.to('float32').toArray() as number[];
  const worst = Math.max(...v32.map((v, i) => Math.abs(v16[i]! - v) / v));
  assert.ok(worst < 0.12, `second moment off by ${worst}`);
});

test('the second moment grows under a constant gradient, where round-to-nearest would stall', () => {
  const w = noGrad(() => tensor([0]).requiresGrad_());
  const opt = new Adam([w], { lr: 0, momentDtype: 'bfloat16' });
  let nearest = 0;
  for (let i = 0; i < 2000; i++) {
    w.grad = tensor([1]);
    opt.step();
    // what storing v by round-to-nearest would hold
    nearest = stochasticFreeRound(nearest * 0.999 + 0.001);
  }
  const v = (opt.stateDict().tensors.get('0.exp_avg_sq')!.to('float32').toArray() as number[])[0]!;
  const exact = 1 - 0.999 ** 2000;
  assert.ok(Math.abs(v - exact) / exact < 0.05, `v ${v} vs ${exact}`);
  assert.ok(nearest < 0.6 * exact, `round-to-nearest ${nearest} would have stalled below ${exact}`);
});

/** Round-to-nearest to bfloat16 of one number, through the tensor cast. */
function stochasticFreeRound(x: number): number {
  return (tensor([x]).to('bfloat16').to('float32').toArray() as number[])[0]!;
}

test('a bfloat16-moment Adam resumed from its state dict continues exactly', () => {
  const whole = run({ lr: 1e-2, momentDtype: 'bfloat16', roundingSeed: 7 }, 40);
  const first = run({ lr: 1e-2, momentDtype: 'bfloat16', roundingSeed: 7 }, 20);
  const saved = first.opt.stateDict();
  const copy = {
    steps: saved.steps,
    tensors: new Map([...saved.tensors].map(([k, t]) => [k, t.clone()])),
  };
  const resumed = new Adam([first.w], { lr: 1e-2, momentDtype: 'bfloat16', roundingSeed: 99 });
  resumed.loadStateDict(copy);
  const rest = run({}, 20, { w: first.w, opt: resumed });
  assert.deepEqual(rest.w.toArray(), whole.w.toArray());
  assert.throws(
    () => new Adam([first.w], { momentDtype: 'float16' as 'bfloat16' }),
    /float32 or bfloat16/,
  );
});

test('a parameter larger than a rounding slice is updated whole, at its own learning rate', () => {
  // one step: the update reads the moments before they are rounded, so it is float32 AdamW's
  const n = 2 ** 22 + 1000;
  const step = (options: AdamOptions) => {
    manualSeed(5);
    const w = randn([n]).requiresGrad_();
    const opt = new Adam([w], { lr: 1e-2, lrScales: new Map([[w, 0.5]]), ...options });
    w.square().sum().backward();
    opt.step();
    return noGrad(() => w.detach());
  };
  const wide = step({});
  const sliced = step({ momentDtype: 'bfloat16' });
  const moved = wide.sub(sliced).abs().max().item() as number;
  assert.equal(moved, 0, `largest difference ${moved}`);
  manualSeed(5);
  const start = randn([n]);
  // every element moved by about lr × scale (Adam's first step is ±lr, less where |g| nears ε),
  // the last slice's too: not 0 (left out), not 1e-2 (scale lost)
  const change = start.sub(sliced).abs();
  const [least, most] = [change.min().item() as number, change.max().item() as number];
  assert.ok(least > 4.9e-3 && most < 5e-3 + 1e-6, `changes from ${least} to ${most}`);
});
