// The phases of `npm run gpu:check` (scripts/gpu-check.mjs runs each in its own process and
// measures the GPU's memory from outside): fixture parity of the reference models on a device,
// a P3S training step, a 50-step DDIM generation. On CUDA at SD 1.5's size (512 px) with the
// lean options (frozen weights in float16, fused or chunked attention); on CPU (`--device cpu`)
// with the tiny test models, to check the script itself in seconds.
//
//   node dist/bench/gpu_check.js <parity|train|generate> --device <cpu|cuda>   # one JSON line
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { cuda, libtorchVersion } from '../src/engine/device.js';
import { noGrad } from '../src/engine/autograd.js';
import { randn } from '../src/engine/creation.js';
import { Generator } from '../src/engine/random.js';
import { tidy } from '../src/engine/scope.js';
import type { Tensor } from '../src/engine/tensor.js';
import * as ops from '../src/engine/ops.generated.js';
import { attentionPath, setAttentionChunkBytes } from '../src/nn/functional.js';
import { UNet2DConditionModel } from '../src/models/unet/unet_2d_condition.js';
import { AutoencoderKL } from '../src/models/vae/autoencoder_kl.js';
import { CLIPTextModel } from '../src/models/clip/clip_text_model.js';
import { holdFrozenInHalfPrecision } from '../src/models/precision.js';
import { schedulerFromConfig } from '../src/schedulers/index.js';
import { denoise } from '../src/pipelines/stable_diffusion.js';
import {
  SD15_SCHEDULER_CONFIG,
  TINY_UNET_CONFIG,
  TINY_VAE_CONFIG,
} from '../apps/testing/tiny_models.js';
import { SD15_VAE_CONFIG } from './vae.js';
import { SD15_P3S_SHAPE, runP3SPhase, type P3SShape } from './p3s.js';
import { fixturePath } from '../test/helpers/paths.js';

const TINY_P3S_SHAPE: P3SShape = {
  unetConfig: { ...TINY_UNET_CONFIG, _class_name: 'UNet2DConditionModel' },
  latent: 8,
  clipTokens: 17,
  clipWidth: 32,
};

/** { unet: 1 } as { chunkedUnet: 1 }. */
function prefixed(prefix: string, o: Record<string, number>): Record<string, number> {
  const name = (k: string) => prefix + k[0]!.toUpperCase() + k.slice(1);
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [name(k), v]));
}

/** Largest |a − b| of two same-shaped tensors, read back on the CPU. */
function maxAbsDiff(a: Tensor, b: Tensor): number {
  return tidy(() => ops.sub(a.to('cpu').float(), b.float()).abs().max().item());
}

/**
 * The tiny-sd fixture (test/fixtures: diffusers' and transformers' outputs) on a device: the
 * U-Net's output, the VAE decoder's and the text encoder's, each its largest deviation, with
 * attention computed whole and (where libtorch has no fused kernel) chunked. CUDA's
 * convolutions may use TF32, hence the looser tolerance there.
 */
export function parity(device: string): Record<string, unknown> {
  const dir = fixturePath('tiny-sd');
  const ref = SafetensorsFile.open(`${dir}/reference.safetensors`);
  const on = (name: string) => tidy(() => ref.tensor(name).to(device));
  const unet = UNet2DConditionModel.fromPretrained(`${dir}/unet`).eval().to(device);
  const vae = AutoencoderKL.fromPretrained(`${dir}/vae`).eval().to(device);
  const text = CLIPTextModel.fromPretrained(`${dir}/text_encoder`).eval().to(device);
  const outputs = () =>
    noGrad(() =>
      tidy(() => ({
        unet: maxAbsDiff(
          unet.forward(on('unet_sample'), on('unet_timesteps'), on('unet_encoder_hidden_states')),
          ref.tensor('unet_out'),
        ),
        vae: maxAbsDiff(vae.decode(on('vae_decode_input')), ref.tensor('vae_decode_out')),
        textEncoder: maxAbsDiff(
          text.forward(on('text_input_ids')).lastHiddenState,
          ref.tensor('text_last_hidden_state'),
        ),
      })),
    );
  const whole = outputs();
  // Again with every attention above 16 query rows chunked (libtorch without a fused kernel).
  const previous = setAttentionChunkBytes(1);
  const chunked = outputs();
  setAttentionChunkBytes(previous);
  const diffs = { ...whole, ...prefixed('chunked', chunked) };
  for (const m of [unet, vae, text]) m.dispose();
  const tolerance = device === 'cpu' ? 1e-4 : 2e-3;
  const pass = Object.values(diffs).every((d) => d <= tolerance);
  return {
    phase: 'parity',
    device,
    libtorch: libtorchVersion(),
    maxAbsDiff: diffs,
    tolerance,
    pass,
  };
}

/** One P3S training step at SD 1.5's size on CUDA (tiny on CPU), lean options on. */
export async function trainStep(device: string): Promise<Record<string, unknown>> {
  const shape = device === 'cpu' ? TINY_P3S_SHAPE : SD15_P3S_SHAPE;
  const iters = device === 'cpu' ? 1 : 3; // GPU: the median of 3 after the first's warm-up
  const r = await runP3SPhase(shape, 'train', true, { device, iters });
  return { phase: 'train', device, ...r, latent: shape.latent };
}

/**
 * A 50-step DDIM generation, batch 1 with classifier-free guidance (the U-Net sees batch 2), and
 * the VAE decode: 512 px with SD 1.5's U-Net and VAE (random weights, float16) on CUDA; the tiny
 * models on CPU. The text encoder (one forward) is left out.
 */
export async function generate(device: string): Promise<Record<string, unknown>> {
  const tiny = device === 'cpu';
  const unet = new UNet2DConditionModel(
    tiny ? TINY_P3S_SHAPE.unetConfig : SD15_P3S_SHAPE.unetConfig,
  )
    .eval()
    .freeze()
    .to(device);
  const vae = new AutoencoderKL(tiny ? TINY_VAE_CONFIG : SD15_VAE_CONFIG)
    .eval()
    .freeze()
    .to(device);
  holdFrozenInHalfPrecision([unet, vae]);
  const latent = tiny ? TINY_P3S_SHAPE.latent : SD15_P3S_SHAPE.latent;
  const g = new Generator(0);
  const width = Number(unet.config.cross_attention_dim);
  const context = tidy(() => randn([2, 77, width], { generator: g }).to(device));
  const x = tidy(() => randn([1, 4, latent, latent], { generator: g }).to(device));
  const scheduler = schedulerFromConfig(SD15_SCHEDULER_CONFIG, { className: 'DDIMScheduler' });
  const t0 = performance.now();
  // Frozen weights and inputs without gradients: no autograd graph is built.
  const z = await denoise({
    scheduler,
    latents: x,
    steps: 50,
    guidanceScale: 7.5,
    predict: (input, t) => unet.forward(input, t, context),
  });
  const image = tidy(() => vae.decode(z.div(0.18215)).to('cpu'));
  if (cuda.isAvailable()) cuda.synchronize();
  const seconds = (performance.now() - t0) / 1000;
  const side = image.shape[3];
  for (const t of [image, z, context, x]) t.dispose();
  unet.dispose();
  vae.dispose();
  return {
    phase: 'generate',
    device,
    seconds,
    steps: 50,
    imageSide: side,
    attention: attentionPathAt(latent),
  };
}

/** The attention path the U-Net's largest self-attention takes (fused, chunked or plain). */
function attentionPathAt(latent: number): string {
  return tidy(() => {
    const q = randn([2, 8, latent * latent, 40]);
    return attentionPath(q, q);
  });
}

const PHASES: Record<string, (device: string) => unknown> = { parity, train: trainStep, generate };

const isMain =
  process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain) {
  const [phase] = process.argv.slice(2);
  const at = process.argv.indexOf('--device');
  const device = at >= 0 ? (process.argv[at + 1] ?? 'cpu') : 'cpu';
  const run = phase !== undefined ? PHASES[phase] : undefined;
  if (!run)
    throw new Error(`usage: gpu_check.js <${Object.keys(PHASES).join('|')}> --device <cpu|cuda>`);
  console.log(JSON.stringify(await run(device)));
}
