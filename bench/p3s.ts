// What the trainable copy costs: one P3S training step (copy + subject encoder + frozen U-Net
// with injection, L_LDM + γ·L_ac, backward, Adam on the adapter) against one step of plain
// fine-tuning of the U-Net alone (DreamBooth-style: every U-Net weight trained, L_LDM, Adam),
// on the same batch, with the tiny SD-structured U-Net on CPU; and what subject guidance saves
// per sampling step by skipping the copy on the unconditional half.
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { randn } from '../src/engine/creation.js';
import { Generator, manualSeed } from '../src/engine/random.js';
import { disposeAll, memory, resetPeakInUse, tidy } from '../src/engine/scope.js';
import { noGrad } from '../src/engine/autograd.js';
import { cuda, getNumThreads } from '../src/engine/device.js';
import { tensor } from '../src/engine/creation.js';
import { Adam, type AdamOptions } from '../src/optim/adam.js';
import { UNet2DConditionModel } from '../src/models/unet/unet_2d_condition.js';
import { TINY_UNET_CONFIG } from '../apps/testing/tiny_models.js';
import { P3SAdapter, P3SUNet, type SubjectCondition } from '../src/p3s/adapter/p3s_unet.js';
import type { Tensor } from '../src/engine/tensor.js';
import { attentionConsistencyLoss, ldmLoss, totalLoss } from '../src/p3s/adapter/losses.js';
import { subjectRegion } from '../src/p3s/adapter/subject_region.js';
import { DEFAULT_ATTENTION_CHUNK_BYTES, setAttentionChunkBytes } from '../src/nn/functional.js';
import { holdFrozenInHalfPrecision } from '../src/models/precision.js';
import { jsonChild, peakRssSinceResetMiB, resetPeakRss } from './child.js';
import { SD15_UNET } from './unet.js';

const SELF = fileURLToPath(import.meta.url);

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
    if (cuda.isAvailable()) cuda.synchronize(); // CUDA kernels run asynchronously
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

/** A training batch: x_t, the text context, the target, the subject condition. */
interface StepInputs {
  xt: Tensor;
  context: Tensor;
  target: Tensor;
  condition: SubjectCondition;
  timesteps: number[];
}

const inputTensors = (i: StepInputs): Tensor[] => [
  i.xt,
  i.context,
  i.target,
  i.condition.latent,
  i.condition.clipStates,
];

/** One P3S training step: L_LDM + γ·L_ac (Eq. 15), backward, Adam on the adapter. */
function p3sTrainStep(p3s: P3SUNet, optimizer: Adam, i: StepInputs): void {
  tidy(() => {
    const o = p3s.forward(i.xt, i.timesteps, i.context, i.condition, { captureAttention: true });
    const ac = attentionConsistencyLoss(o.copyAttention!, o.frozenAttention!);
    totalLoss(ldmLoss(o.noisePred, i.target), ac, 0.1).backward();
    disposeAll([o.copyAttention, o.frozenAttention]);
    optimizer.step();
    optimizer.zeroGrad();
  });
}

/** Seconds per P3S training step (frozen U-Net, trainable adapter). */
async function timeP3SStep(
  unet: UNet2DConditionModel,
  adapter: P3SAdapter,
  inputs: StepInputs,
  warmup: number,
  iters: number,
  momentDtype: AdamOptions['momentDtype'] = 'float32',
): Promise<number> {
  adapter.requiresGrad_(true);
  const p3s = new P3SUNet(unet, adapter);
  const optimizer = new Adam(adapter.parameters(), { lr: 1e-5, momentDtype });
  try {
    return await timeSteps(() => p3sTrainStep(p3s, optimizer, inputs), warmup, iters);
  } finally {
    p3s.detach();
    optimizer.dispose();
  }
}

/** Seconds per step of plain fine-tuning: every U-Net weight trained on L_LDM. */
async function timeUNetStep(
  unet: UNet2DConditionModel,
  i: StepInputs,
  warmup: number,
  iters: number,
): Promise<number> {
  unet.requiresGrad_(true);
  const optimizer = new Adam(unet.parameters(), { lr: 1e-5 });
  const t = tensor(i.timesteps, [i.timesteps.length], { dtype: 'int64' });
  try {
    const step = () =>
      tidy(() => {
        ldmLoss(unet.forward(i.xt, t, i.context), i.target).backward();
        optimizer.step();
        optimizer.zeroGrad();
      });
    return await timeSteps(step, warmup, iters);
  } finally {
    optimizer.dispose();
    t.dispose();
  }
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
  const unet = new UNet2DConditionModel({
    ...TINY_UNET_CONFIG,
    _class_name: 'UNet2DConditionModel',
  }).eval();
  const g = new Generator(0);
  const inputs: StepInputs = {
    xt: randn([batch, 4, 8, 8], { generator: g }),
    context: randn([batch, 77, 32], { generator: g }),
    target: randn([batch, 4, 8, 8], { generator: g }),
    condition: {
      latent: randn([batch, 4, 8, 8], { generator: g }),
      clipStates: randn([batch, 17, 32], { generator: g }),
    },
    timesteps: Array.from({ length: batch }, (_, i) => 100 + 700 * i),
  };
  const common = { batch, latent: '8x8', threads: getNumThreads(), device: 'cpu' };
  unet.freeze();
  const adapter = new P3SAdapter(unet, 32);
  const p3sSeconds = await timeP3SStep(unet, adapter, inputs, warmup, iters);
  const trained = adapter.numParameters();
  const guidance = await benchSubjectGuidance(unet, adapter, warmup, iters);
  adapter.dispose();
  const plainSeconds = await timeUNetStep(unet, inputs, warmup, iters);
  const line = (name: string, value: number, unit: string, extra = {}): P3SBenchLine => ({
    name,
    value,
    unit,
    ...extra,
    ...common,
  });
  const out = [
    line('p3s-train-step-tiny-cpu', p3sSeconds, 's', { trainedParameters: trained }),
    ...guidance,
    line('unet-finetune-step-tiny-cpu', plainSeconds, 's', {
      trainedParameters: unet.numParameters(),
    }),
    line('p3s-train-step-overhead-ratio', p3sSeconds / plainSeconds, 'x'),
    { name: 'p3s-bench-peak-rss', value: process.resourceUsage().maxRSS / 1024, unit: 'MiB' },
  ];
  disposeAll(inputTensors(inputs));
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
    p3s.detach();
    const local = await timeLocalInjectionStep(
      unet,
      adapter,
      { xt, context, condition },
      warmup,
      iters,
    );
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
      {
        name: 'p3s-sampling-step-local-injection-tiny-cpu',
        value: local,
        unit: 's',
        reference: guided,
        ratio: local / guided,
        ...common,
      },
    ];
  } finally {
    p3s.detach();
    disposeAll([xt, context, condition.latent, condition.clipStates]);
  }
}

/**
 * A subject-guided sampling step with local injection: the region maps captured, the step
 * weighted by the region of the step before, and the next region computed.
 */
async function timeLocalInjectionStep(
  unet: UNet2DConditionModel,
  adapter: P3SAdapter,
  i: { xt: Tensor; context: Tensor; condition: SubjectCondition },
  warmup: number,
  iters: number,
): Promise<number> {
  const p3s = new P3SUNet(unet, adapter, undefined, true);
  const held: { region: Tensor | null } = { region: null };
  const request = { tokens: [2, 3], latentSize: [8, 8] as [number, number], share: 0.3 };
  const step = () =>
    noGrad(() => {
      const next = tidy(() => {
        const out = p3s.forward(i.xt, [500, 500], i.context, i.condition, {
          injectionScale: [0, 1],
          region: held.region,
        });
        const maps = out.regionAttention!;
        const r = subjectRegion(maps, { ...request, rows: [1, 2], repeat: 2 });
        disposeAll(maps);
        return r;
      });
      held.region?.dispose();
      held.region = next;
    });
  try {
    return await timeSteps(step, warmup, iters);
  } finally {
    p3s.detach();
    held.region?.dispose();
  }
}

/** Options of the SD 1.5 benchmark's memory-lean mode, each on with `lean`. */
const LEAN_NOTE =
  'lean: frozen U-Net held in bfloat16 (sampling: the adapter too), Adam moments in bfloat16 ' +
  '(p3s train --optimizer-precision half), attention scores above two ' +
  `blocks computed in ${DEFAULT_ATTENTION_CHUNK_BYTES / 2 ** 20} MiB blocks; plain: float32, ` +
  'attention whole';

/**
 * How the peaks are measured, and what differs on a GPU: peak memory there is the caching
 * allocator's reserved bytes, which keep freed blocks (ours keeps freed CPU buffers too, up to
 * P3S_CPU_CACHE_MB, and they count in RSS, not in the tensor peak);
 * frozen weights are float16 (frozenHalfDtype); and torch >= 2.0 computes attention with its
 * fused kernel (never materialising scores) instead of the chunked one.
 */
const MEMORY_NOTE =
  'peakTensorGiB: the most bytes tensors held at once (buffers of 1 MiB or more), a CUDA ' +
  "allocator's allocated bytes, judged against the target; peakGiB: the process's RSS, with " +
  'the freed buffers the CPU cache keeps (P3S_CPU_CACHE_MB). ' +
  'On CUDA: peak = allocator reserved bytes (cached blocks included), float16 instead of ' +
  'bfloat16, torch >= 2.0 uses the fused scaled_dot_product_attention instead of chunking';

export type Sd15Phase = 'train' | 'sample';

/** A benchmark model and batch: U-Net config, latent side, CLIP condition tokens and width. */
export interface P3SShape {
  unetConfig: Record<string, unknown>;
  latent: number;
  clipTokens: number;
  clipWidth: number;
}

/** SD 1.5's U-Net at 512 px (64×64 latents) with CLIP ViT-L/14's 257 tokens of width 1024. */
export const SD15_P3S_SHAPE: P3SShape = {
  unetConfig: { ...SD15_UNET },
  latent: 64,
  clipTokens: 257,
  clipWidth: 1024,
};

/**
 * One phase of the P3S benchmark in this process: the U-Net with random weights and the P3S
 * adapter, batch 1 training steps or batch 2 classifier-free-guidance sampling steps, on a
 * device. Returns seconds per step and, on CPU, the peak RSS while stepping (model included,
 * set-up excluded; on CUDA the caller measures the GPU's memory).
 */
export async function runP3SPhase(
  shape: P3SShape,
  phase: Sd15Phase,
  lean: boolean,
  options: { device?: string; iters?: number } = {},
): Promise<{
  seconds: number;
  peakRssMiB: number | null;
  peakTensorMiB: number | null;
  trainedParameters: number;
}> {
  const device = options.device ?? 'cpu';
  manualSeed(0);
  const unet = new UNet2DConditionModel(shape.unetConfig).eval().freeze().to(device);
  const adapter = new P3SAdapter(unet, shape.clipWidth).to(device);
  setAttentionChunkBytes(lean ? DEFAULT_ATTENTION_CHUNK_BYTES : Infinity);
  const inputs = stepInputs(shape, phase === 'train' ? 1 : 2, device);
  try {
    if (phase === 'sample') adapter.freeze();
    if (lean) holdFrozenInHalfPrecision(phase === 'sample' ? [unet, adapter] : [unet]);
    const trainedParameters = adapter.numParameters();
    const cpuPeak = device === 'cpu' && resetPeakRss();
    resetPeakInUse();
    const iters = options.iters ?? 1;
    const seconds =
      phase === 'train'
        ? await timeP3SStep(unet, adapter, inputs, 0, iters, lean ? 'bfloat16' : 'float32')
        : await timeSamplingStep(unet, adapter, inputs, iters);
    const peakTensorMiB = device === 'cpu' ? memory().cpuCache.peakInUseBytes / 2 ** 20 : null;
    return {
      seconds,
      peakRssMiB: cpuPeak ? peakRssSinceResetMiB() : null,
      peakTensorMiB,
      trainedParameters,
    };
  } finally {
    disposeAll(inputTensors(inputs));
    adapter.dispose();
    unet.dispose();
  }
}

/** A batch of random inputs of a shape (the text context's width from the U-Net config). */
function stepInputs(shape: P3SShape, b: number, device: string): StepInputs {
  const g = new Generator(0);
  const n = shape.latent;
  const textWidth = Number(shape.unetConfig.cross_attention_dim ?? 768);
  const r = (dims: number[]) => tidy(() => randn(dims, { generator: g }).to(device));
  return {
    xt: r([b, 4, n, n]),
    context: r([b, 77, textWidth]),
    target: r([b, 4, n, n]),
    condition: { latent: r([b, 4, n, n]), clipStates: r([b, shape.clipTokens, shape.clipWidth]) },
    timesteps: new Array<number>(b).fill(500),
  };
}

/**
 * The SD 1.5-size P3S benchmark, plain and lean, each phase in its own child process (so each
 * peak is its own): a training step (batch 1, target ≤ 10 GiB) and a guided sampling step
 * (batch 2, target ≤ 5 GiB), with a 50-step image extrapolated from the latter (the VAE decode
 * is measured by `npm run bench -- models`). Minutes per line on 2 cores; the plain training
 * step peaks near 18 GiB.
 */
export function benchP3SSd15(options: { iters?: number } = {}): P3SBenchLine[] {
  const common = { latent: '64x64', threads: getNumThreads(), device: 'cpu', weights: 'random' };
  const out: P3SBenchLine[] = [];
  for (const lean of [false, true]) {
    const mode = lean ? 'lean' : 'plain';
    const run = (phase: Sd15Phase) =>
      jsonChild(SELF, ['--sd15', phase, mode, String(options.iters ?? 1)]);
    const train = run('train');
    const sample = run('sample');
    const GiB = (mib: unknown) => Math.round((Number(mib) / 1024) * 100) / 100;
    const line = (name: string, r: Record<string, unknown>, targetGiB: number) => ({
      name: `${name}-${mode}`,
      value: Number(r.seconds),
      unit: 's',
      peakGiB: GiB(r.peakRssMiB),
      peakTensorGiB: GiB(r.peakTensorMiB),
      targetGiB,
      withinTarget: GiB(r.peakTensorMiB) <= targetGiB,
      trainedParameters: r.trainedParameters,
      mode,
      ...common,
    });
    out.push(line('sd15-p3s-train-step-b1-64x64-cpu', train, 10));
    out.push(line('sd15-p3s-sampling-step-cfg-b2-64x64-cpu', sample, 5));
    out.push({
      name: `sd15-p3s-image-50-steps-cpu-extrapolated-${mode}`,
      value: 50 * Number(sample.seconds),
      unit: 's',
      note: '50 × the sampling step; add the VAE decode (bench models)',
      ...common,
    });
  }
  out.push({ name: 'sd15-p3s-notes', value: 0, unit: '', lean: LEAN_NOTE, memory: MEMORY_NOTE });
  return out;
}

/** Seconds per sampling step of the injected U-Net, without gradients. */
async function timeSamplingStep(
  unet: UNet2DConditionModel,
  adapter: P3SAdapter,
  i: StepInputs,
  iters: number,
): Promise<number> {
  const p3s = new P3SUNet(unet, adapter);
  try {
    const step = () =>
      noGrad(() => tidy(() => void p3s.forward(i.xt, i.timesteps, i.context, i.condition)));
    return await timeSteps(step, 0, iters);
  } finally {
    p3s.detach();
  }
}

// `node dist/bench/p3s.js --sd15 <train|sample> <plain|lean> [iters]`: one phase, as JSON.
const isMain =
  process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
const at = process.argv.indexOf('--sd15');
if (isMain && at >= 0) {
  const [phase, mode, iters] = process.argv.slice(at + 1);
  if ((phase !== 'train' && phase !== 'sample') || (mode !== 'plain' && mode !== 'lean')) {
    throw new Error('usage: p3s.js --sd15 <train|sample> <plain|lean> [iters]');
  }
  const r = await runP3SPhase(SD15_P3S_SHAPE, phase, mode === 'lean', {
    iters: Number(iters ?? 1),
  });
  console.log(JSON.stringify(r));
}
