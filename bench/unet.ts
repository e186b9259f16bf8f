// Forward time of Stable Diffusion 1.5's U-Net (what every denoising step runs) on CPU.
import { performance } from 'node:perf_hooks';
import { randn } from '../src/engine/creation.js';
import { inferenceMode } from '../src/engine/autograd.js';
import { tidy } from '../src/engine/scope.js';
import { manualSeed } from '../src/engine/random.js';
import {
  UNet2DConditionModel,
  type UNet2DConditionConfig,
} from '../src/models/unet/unet_2d_condition.js';

export interface UNetBenchResult {
  name: string;
  /** Wall time of one forward, in seconds. */
  value: number;
  unit: 's';
  /** Seconds spent building the randomly initialised model. */
  initSeconds: number;
  parameters: number;
  /** The process's peak resident set size so far (process.resourceUsage().maxRSS), in MiB. */
  peakRssMiB: number;
}

/** runwayml/stable-diffusion-v1-5's unet/config.json (the values that differ from defaults). */
export const SD15_UNET: Partial<UNet2DConditionConfig> = {
  sample_size: 64,
  block_out_channels: [320, 640, 1280, 1280],
  layers_per_block: 2,
  attention_head_dim: 8,
  cross_attention_dim: 768,
  norm_num_groups: 32,
  norm_eps: 1e-5,
  flip_sin_to_cos: true,
  freq_shift: 0,
  downsample_padding: 1,
  mid_block_scale_factor: 1,
};

/**
 * One SD 1.5 U-Net forward (random weights, ~860 M parameters, ~3.4 GB) at batch 2 (a
 * classifier-free-guidance pair), 64×64 latents (512 px) and a 77-token context, on CPU under
 * inferenceMode. Slow: a minute or more on two cores. Not run by the tests.
 */
export function benchUNet(): UNetBenchResult {
  manualSeed(0);
  const t0 = performance.now();
  const unet = new UNet2DConditionModel(SD15_UNET).eval();
  const initSeconds = (performance.now() - t0) / 1000;
  try {
    const sample = randn([2, 4, 64, 64]);
    const context = randn([2, 77, 768]);
    const t1 = performance.now();
    inferenceMode(() => tidy(() => unet.forward(sample, 999, context).sum().item()));
    const seconds = (performance.now() - t1) / 1000;
    sample.dispose();
    context.dispose();
    return {
      name: 'sd15-unet-forward-b2-64x64-cpu',
      value: seconds,
      unit: 's',
      initSeconds,
      parameters: unet.numParameters(),
      peakRssMiB: process.resourceUsage().maxRSS / 1024,
    };
  } finally {
    unet.dispose();
  }
}
