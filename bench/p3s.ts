// What the trainable copy costs: one P3S training step (copy + subject encoder + frozen U-Net
// with injection, L_LDM + γ·L_ac, backward, Adam on the adapter) against one step of plain
// fine-tuning of the U-Net alone (DreamBooth-style: every U-Net weight trained, L_LDM, Adam),
// on the same batch, with the tiny SD-structured U-Net on CPU; and what subject guidance saves
// per sampling step by skipping the copy on the unconditional half.
import { performance } from 'node:perf_hooks';
import { randn } from '../src/engine/creation.js';
import { Generator, manualSeed } from '../src/engine/random.js';
import { disposeAll, tidy } from '../src/engine/scope.js';
import { noGrad } from '../src/engine/autograd.js';
import { getNumThreads } from '../src/engine/device.js';
import { tensor } from '../src/engine/creation.js';
import { Adam } from '../src/optim/adam.js';
import { UNet2DConditionModel } from '../src/models/unet/unet_2d_condition.js';
import { TINY_UNET_CONFIG } from '../apps/testing/tiny_models.js';
import { P3SAdapter, P3SUNet } from '../src/p3s/adapter/p3s_unet.js';
import { attentionConsistencyLoss, ldmLoss, totalLoss } from '../src/p3s/adapter/losses.js';

export interface P3SBenchLine {
  name: string;
  value: number;
  unit: string;
  [key: string]: unknown;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

async function timeSteps(step: () => void, warmup: number, iters: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < warmup + iters; i++) {
    const t0 = performance.now();
    step();
    if (i >= warmup) times.push((performance.now() - t0) / 1000);
    await new Promise<void>((r) => setImmediate(r)); // let handle finalizers run
  }
  return median(times);
}

export interface P3SBenchOptions {
  batch?: number;
  warmup?: number;
  iters?: number;
}

/**
 * Seconds per training step of P3S and of plain U-Net fine-tuning (batch `batch`, 8×8 latents,
 * a 77-token context, 17 CLIP tokens), their ratio, and the peak RSS, as JSON-line objects.
 */
export async function benchP3S(options: P3SBenchOptions = {}): Promise<P3SBenchLine[]> {
  const batch = options.batch ?? 2;
  const warmup = options.warmup ?? 2;
  const iters = options.iters ?? 8;
  manualSeed(0);
  const config = { ...TINY_UNET_CONFIG, _class_name: 'UNet2DConditionModel' };
  const unet = new UNet2DConditionModel(config).eval();
  const g = new Generator(0);
  const xt = randn([batch, 4, 8, 8], { generator: g });
  const context = randn([batch, 77, 32], { generator: g });
  const target = randn([batch, 4, 8, 8], { generator: g });
  const condition = {
    latent: randn([batch, 4, 8, 8], { generator: g }),
    clipStates: randn([batch, 17, 32], { generator: g }),
  };
  const timesteps = Array.from({ length: batch }, (_, i) => 100 + 700 * i);
  const common = { batch, latent: '8x8', threads: getNumThreads(), device: 'cpu' };
  const out: P3SBenchLine[] = [];

  // P3S: frozen U-Net, trainable adapter
  unet.freeze();
  const adapter = new P3SAdapter(unet, 32);
  adapter.requiresGrad_(true);
  const p3s = new P3SUNet(unet, adapter);
  const p3sOpt = new Adam(adapter.parameters(), { lr: 1e-5 });
  let p3sSeconds: number;
  try {
    p3sSeconds = await timeSteps(
      () =>
        tidy(() => {
          const o = p3s.forward(xt, timesteps, context, condition, { captureAttention: true });
          const ac = attentionConsistencyLoss(o.copyAttention!, o.frozenAttention!);
          totalLoss(ldmLoss(o.noisePred, target), ac, 0.1).backward();
          disposeAll([o.copyAttention, o.frozenAttention]);
          p3sOpt.step();
          p3sOpt.zeroGrad();
        }),
      warmup,
      iters,
    );
  } finally {
    p3s.detach();
    p3sOpt.dispose();
  }
  out.push({
    name: 'p3s-train-step-tiny-cpu',
    value: p3sSeconds,
    unit: 's',
    trainedParameters: adapter.numParameters(),
    ...common,
  });
  out.push(...(await benchSubjectGuidance(unet, adapter, warmup, iters)));
  adapter.dispose();

  // plain fine-tuning of the U-Net alone, same batch
  unet.requiresGrad_(true);
  const opt = new Adam(unet.parameters(), { lr: 1e-5 });
  const t = tensor(timesteps, [batch], { dtype: 'int64' });
  let plainSeconds: number;
  try {
    plainSeconds = await timeSteps(
      () =>
        tidy(() => {
          ldmLoss(unet.forward(xt, t, context), target).backward();
          opt.step();
          opt.zeroGrad();
        }),
      warmup,
      iters,
    );
  } finally {
    opt.dispose();
  }
  out.push({
    name: 'unet-finetune-step-tiny-cpu',
    value: plainSeconds,
    unit: 's',
    trainedParameters: unet.numParameters(),
    ...common,
  });
  out.push({
    name: 'p3s-train-step-overhead-ratio',
    value: p3sSeconds / plainSeconds,
    unit: 'x',
    ...common,
  });
  out.push({
    name: 'p3s-bench-peak-rss',
    value: process.resourceUsage().maxRSS / 1024,
    unit: 'MiB',
  });
  disposeAll([xt, context, target, condition.latent, condition.clipStates, t]);
  unet.dispose();
  return out;
}

/**
 * One classifier-free-guidance sampling step (batch 2: [unconditional; conditional]) with the
 * subject condition on both halves, and with subject guidance (ε_t = 0 on the unconditional
 * half, where the copy is skipped), and their ratio.
 */
async function benchSubjectGuidance(
  unet: UNet2DConditionModel,
  adapter: P3SAdapter,
  warmup: number,
  iters: number,
): Promise<P3SBenchLine[]> {
  const g = new Generator(1);
  const xt = randn([2, 4, 8, 8], { generator: g });
  const context = randn([2, 77, 32], { generator: g });
  const condition = {
    latent: randn([1, 4, 8, 8], { generator: g }),
    clipStates: randn([1, 17, 32], { generator: g }),
  };
  const p3s = new P3SUNet(unet, adapter);
  const step = (injectionScale?: number[]) => () =>
    noGrad(() => tidy(() => p3s.forward(xt, [500, 500], context, condition, { injectionScale })));
  const common = { batch: 2, latent: '8x8', threads: getNumThreads(), device: 'cpu' };
  try {
    const both = await timeSteps(step(), warmup, iters);
    const guided = await timeSteps(step([0, 1]), warmup, iters);
    return [
      { name: 'p3s-sampling-step-tiny-cpu', value: both, unit: 's', ...common },
      {
        name: 'p3s-sampling-step-subject-guidance-tiny-cpu',
        value: guided,
        unit: 's',
        reference: both,
        ratio: guided / both,
        ...common,
      },
    ];
  } finally {
    p3s.detach();
    disposeAll([xt, context, condition.latent, condition.clipStates]);
  }
}

/**
 * SD 1.5's U-Net config with random weights on CPU: one P3S training step (batch 1, 64×64
 * latents, CLIP ViT-L/14's 257 tokens of width 1024) and one classifier-free-guidance sampling
 * step (batch 2) of the injected U-Net. A 50-step image is extrapolated as 50 sampling steps
 * (the VAE decode is measured by \`npm run bench -- models\`). Minutes per line on 2 cores.
 */
export async function benchP3SSd15(
  unetConfig: Record<string, unknown>,
  options: { iters?: number } = {},
): Promise<P3SBenchLine[]> {
  const iters = options.iters ?? 1;
  manualSeed(0);
  const unet = new UNet2DConditionModel(unetConfig).eval().freeze();
  const adapter = new P3SAdapter(unet, 1024);
  adapter.requiresGrad_(true);
  const p3s = new P3SUNet(unet, adapter);
  const opt = new Adam(adapter.parameters(), { lr: 1e-5 });
  const g = new Generator(0);
  const common = { latent: '64x64', threads: getNumThreads(), device: 'cpu', weights: 'random' };
  const out: P3SBenchLine[] = [];
  const inputs = (b: number) => ({
    xt: randn([b, 4, 64, 64], { generator: g }),
    context: randn([b, 77, 768], { generator: g }),
    target: randn([b, 4, 64, 64], { generator: g }),
    condition: {
      latent: randn([b, 4, 64, 64], { generator: g }),
      clipStates: randn([b, 257, 1024], { generator: g }),
    },
  });
  try {
    const one = inputs(1);
    const train = await timeSteps(
      () =>
        tidy(() => {
          const o = p3s.forward(one.xt, [500], one.context, one.condition, {
            captureAttention: true,
          });
          const ac = attentionConsistencyLoss(o.copyAttention!, o.frozenAttention!);
          totalLoss(ldmLoss(o.noisePred, one.target), ac, 0.1).backward();
          disposeAll([o.copyAttention, o.frozenAttention]);
          opt.step();
          opt.zeroGrad();
        }),
      0,
      iters,
    );
    out.push({
      name: 'sd15-p3s-train-step-b1-64x64-cpu',
      value: train,
      unit: 's',
      trainedParameters: adapter.numParameters(),
      peakRssMiB: process.resourceUsage().maxRSS / 1024,
      ...common,
    });
    disposeAll([one.xt, one.context, one.target, one.condition.latent, one.condition.clipStates]);
    const two = inputs(2);
    const sample = await timeSteps(
      () =>
        noGrad(() =>
          tidy(() => {
            p3s.forward(two.xt, [500, 500], two.context, two.condition);
          }),
        ),
      0,
      iters,
    );
    out.push({
      name: 'sd15-p3s-sampling-step-cfg-b2-64x64-cpu',
      value: sample,
      unit: 's',
      peakRssMiB: process.resourceUsage().maxRSS / 1024,
      ...common,
    });
    out.push({
      name: 'sd15-p3s-image-50-steps-cpu-extrapolated',
      value: 50 * sample,
      unit: 's',
      note: '50 × the sampling step; add the VAE decode (bench models)',
      ...common,
    });
    disposeAll([two.xt, two.context, two.target, two.condition.latent, two.condition.clipStates]);
  } finally {
    p3s.detach();
    opt.dispose();
    adapter.dispose();
    unet.dispose();
  }
  return out;
}
