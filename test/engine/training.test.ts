// A tiny conv net trained with AdamW: the loss falls, the same seed gives bit-identical
// weights, and 1000 steps leave the live-tensor count and RSS flat.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Tensor,
  Generator,
  randn,
  tensor,
  tidy,
  manualSeed,
  memory,
  noGrad,
} from '../../src/index.js';
import { Module, Conv2d, GroupNorm, Linear } from '../../src/nn/index.js';
import * as F from '../../src/nn/functional.js';
import { AdamW, clipGradNorm } from '../../src/optim/index.js';

class TinyNet extends Module {
  readonly conv = this.registerModule('conv', new Conv2d(3, 8, 3, { padding: 1 }));
  readonly norm = this.registerModule('norm', new GroupNorm(2, 8));
  readonly head = this.registerModule('head', new Linear(8, 2));
  forward(x: Tensor): Tensor {
    const h = F.silu(this.norm.forward(this.conv.forward(x))); // (B, 8, H, W)
    return this.head.forward(h.mean([2, 3])); // (B, 2)
  }
}

function batch(g: Generator): { x: Tensor; y: Tensor } {
  const x = randn([8, 3, 8, 8], { generator: g });
  // target: the mean of each of the first two channels, a learnable function of the input
  const y = x.slice(1, 0, 2).mean([2, 3]);
  return { x, y };
}

function train(seed: number, steps: number): { losses: number[]; weights: number[] } {
  manualSeed(seed);
  const net = new TinyNet();
  const opt = new AdamW(net.parameters(), { lr: 1e-2 });
  const g = new Generator(seed);
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    losses.push(
      tidy(() => {
        const { x, y } = batch(g);
        const loss = F.mseLoss(net.forward(x), y);
        opt.zeroGrad();
        loss.backward();
        clipGradNorm(net.parameters(), 1.0);
        opt.step();
        return loss.item();
      }),
    );
  }
  const weights = noGrad(() => net.parameters().flatMap((p) => p.toArray()));
  return { losses, weights };
}

test('training lowers the loss', () => {
  const { losses } = train(0, 300);
  const first = losses.slice(0, 20).reduce((a, b) => a + b) / 20;
  const last = losses.slice(-20).reduce((a, b) => a + b) / 20;
  assert.ok(last < first * 0.2, `loss fell only from ${first} to ${last}`);
});

test('the same seed gives bit-identical weights on CPU', () => {
  const a = train(5, 30);
  const b = train(5, 30);
  assert.deepEqual(a.weights, b.weights);
  const c = train(6, 30);
  assert.notDeepEqual(a.weights, c.weights);
});

test('1000 training steps keep live tensors and RSS flat', async () => {
  manualSeed(1);
  const net = new TinyNet();
  const opt = new AdamW(net.parameters(), { lr: 1e-3 });
  const g = new Generator(1);
  const step = (): void =>
    tidy(() => {
      const { x, y } = batch(g);
      const loss = F.mseLoss(net.forward(x), y);
      opt.zeroGrad();
      loss.backward();
      opt.step();
    });
  // Node runs native-handle finalizers on a later turn of the event loop, so a long loop must
  // yield now and then (p3s's training loop does, to report progress); see docs/engine.md.
  const settle = async (): Promise<void> => {
    await new Promise((r) => setImmediate(r));
    (globalThis as { gc?: () => void }).gc?.();
    await new Promise((r) => setImmediate(r));
  };
  for (let i = 0; i < 50; i++) step(); // warm up allocator and optimizer state
  await settle();
  const live0 = memory().liveTensors;
  const rss0 = process.memoryUsage().rss;
  for (let i = 0; i < 1000; i++) {
    step();
    if (i % 100 === 99) await settle();
  }
  await settle();
  const live1 = memory().liveTensors;
  const rss1 = process.memoryUsage().rss;
  assert.equal(live1, live0, `live tensors grew from ${live0} to ${live1}`);
  // Measured growth is under 2 MB; 32 MB would mean a leak of ~32 KB per step.
  assert.ok(rss1 - rss0 < 32 * 1024 * 1024, `RSS grew by ${((rss1 - rss0) / 1e6).toFixed(1)} MB`);
});

test('Adam.dispose frees its moment tensors', () => {
  const before = memory().liveTensors;
  const net = new TinyNet();
  const opt = new AdamW(net.parameters(), { lr: 1e-3 });
  const g = new Generator(2);
  tidy(() => {
    const { x, y } = batch(g);
    F.mseLoss(net.forward(x), y).backward();
    opt.step();
  });
  assert.equal(memory().liveTensors, before + net.parameters().length * 3);
  opt.dispose();
  net.dispose();
  assert.equal(memory().liveTensors, before);
});

test('AdamW lrScales: a parameter with scale s moves s times as far; scale 0 freezes it', () => {
  const make = () => tensor([1, -2, 3], [3]).requiresGrad_();
  const [full, half, frozen] = [make(), make(), make()];
  const opt = new AdamW([full, half, frozen], {
    lr: 0.1,
    weightDecay: 0,
    lrScales: new Map([
      [half, 0.5],
      [frozen, 0],
    ]),
  });
  // One step: the three see the same gradient, so only the rate differs.
  full.mul(full).sum().add(half.mul(half).sum()).add(frozen.mul(frozen).sum()).backward();
  opt.step();
  const moved = (p: Tensor) => (p.toArray() as number[]).map((v, i) => v - [1, -2, 3][i]!);
  const fullMove = moved(full);
  moved(half).forEach((d, i) => assert.ok(Math.abs(d - fullMove[i]! / 2) < 1e-6, `${d}`));
  assert.deepEqual(moved(frozen), [0, 0, 0]);
  assert.ok(fullMove.every((d) => Math.abs(d) > 0.09));
  assert.throws(() => new AdamW([make()], { lrScales: new Map([[full, -1]]) }), /lrScales/);
});
