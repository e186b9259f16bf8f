// `npm run bench`: engine benchmarks as JSON lines {name, value, unit, reference, ratio},
// each against PyTorch on the same libtorch measured in the same run.
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  manualSeed,
  randn,
  tidy,
  noGrad,
  ones,
  getNumThreads,
  libtorchVersion,
  ops,
} from '../src/index.js';
import { AdamW } from '../src/optim/index.js';
import { BenchBlock } from './block.js';

const WARMUP = Number(process.env.BENCH_WARMUP ?? 3);
const ITERS = Number(process.env.BENCH_ITERS ?? 10);
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

function medianMs(fn: () => void): number {
  for (let i = 0; i < WARMUP; i++) fn();
  const times: number[] = [];
  for (let i = 0; i < ITERS; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

function emit(
  name: string,
  value: number,
  unit: string,
  reference?: number,
  extra: Record<string, unknown> = {},
): void {
  const line: Record<string, unknown> = { name, value: Number(value.toFixed(3)), unit };
  if (reference !== undefined) {
    line.reference = Number(reference.toFixed(3));
    line.ratio = Number((value / reference).toFixed(3));
  }
  console.log(JSON.stringify({ ...line, ...extra }));
}

function pytorchReference(threads: number): Record<string, number> | undefined {
  const python = process.env.BENCH_PYTHON ?? '/usr/bin/python3';
  const r = spawnSync(
    python,
    [join(root, 'bench', 'block_pytorch.py'), String(threads), String(WARMUP), String(ITERS)],
    {
      encoding: 'utf8',
    },
  );
  if (r.status !== 0) {
    console.error(
      `bench: PyTorch reference unavailable (${python}: ${r.error?.message ?? r.stderr.trim().split('\n').pop()}); install python3-torch for ratios`,
    );
    return undefined;
  }
  return JSON.parse(r.stdout) as Record<string, number>;
}

export function benchEngine(): void {
  const threads = getNumThreads();
  manualSeed(0);
  const block = new BenchBlock();
  const x = randn([2, 64, 32, 32]);
  const ctx = randn([2, 77, 768]);
  const opt = new AdamW(block.parameters(), { lr: 1e-4 });
  const forward = medianMs(() => noGrad(() => tidy(() => block.forward(x, ctx))));
  const trainStep = medianMs(() =>
    tidy(() => {
      opt.zeroGrad();
      block.forward(x, ctx).square().mean().backward();
      opt.step();
    }),
  );
  const a = ones([1]);
  const smallOp = medianMs(() =>
    tidy(() => {
      for (let i = 0; i < 1000; i++) ops.add(a, a).dispose();
    }),
  ); // ms per 1000 calls == µs per call
  const ref = pytorchReference(threads);
  const ctxInfo = { threads, libtorch: libtorchVersion() };
  emit('engine.block.forward', forward, 'ms', ref?.forward_ms, ctxInfo);
  emit('engine.block.train_step', trainStep, 'ms', ref?.train_step_ms, {
    ...ctxInfo,
    target_ratio: 1.1,
  });
  emit('engine.small_op.call_overhead', smallOp, 'us', ref?.small_op_us, ctxInfo);
}

async function main(): Promise<void> {
  // `npm run bench -- engine mask` runs only those groups.
  const only = new Set(process.argv.slice(2));
  const want = (group: string): boolean => only.size === 0 || only.has(group);
  if (want('engine')) benchEngine();
  if (want('models')) {
    // SD 1.5-sized UNet, VAE decoder, ViT-L/14 and fp16 loading, each in its own process.
    const { benchModels } = await import('./models.js');
    await benchModels();
  }
  if (want('p3s')) {
    const { benchP3S } = await import('./p3s.js');
    for (const line of await benchP3S()) console.log(JSON.stringify(line));
  }
  if (want('p3s-sd15')) {
    // Minutes on 2 cores, plain then lean, each phase in its own process; plain peaks near 18 GiB.
    const { benchP3SSd15 } = await import('./p3s.js');
    for (const line of benchP3SSd15()) console.log(JSON.stringify(line));
  }
  if (want('toy-train')) {
    const { benchToyTraining } = await import('./toy_train.js');
    for (const line of benchToyTraining()) console.log(JSON.stringify(line));
  }
  if (want('serve')) {
    const { benchServe } = await import('./serve.js');
    for (const line of await benchServe()) console.log(JSON.stringify(line));
  }
  if (want('mask')) {
    const { benchMask } = await import('./mask.js');
    for (const line of await benchMask(join(root, 'data', 'dreambench')))
      console.log(JSON.stringify(line));
  }
}

await main();
