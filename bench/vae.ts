// Time and memory of SD 1.5's VAE decoder on CPU: one 64×64 latent to a 512×512 image, what
// every P3S generation ends with.
import { performance } from 'node:perf_hooks';
import { randn } from '../src/engine/creation.js';
import { inferenceMode } from '../src/engine/autograd.js';
import { tidy } from '../src/engine/scope.js';
import { Generator, manualSeed } from '../src/engine/random.js';
import { AutoencoderKL, type AutoencoderKLConfig } from '../src/models/vae/autoencoder_kl.js';

export interface VaeBenchResult {
  name: string;
  /** Median seconds per decode. */
  value: number;
  unit: string;
  /** Peak resident set size of the process so far (process.resourceUsage().maxRSS), MiB. */
  peakRssMiB: number;
  /** Peak RSS before the first decode (the process plus the model's weights), MiB. */
  rssBeforeDecodeMiB: number;
}

/** runwayml/stable-diffusion-v1-5's vae/config.json. */
export const SD15_VAE_CONFIG: Partial<AutoencoderKLConfig> = {
  in_channels: 3,
  out_channels: 3,
  down_block_types: Array(4).fill('DownEncoderBlock2D'),
  up_block_types: Array(4).fill('UpDecoderBlock2D'),
  block_out_channels: [128, 256, 512, 512],
  layers_per_block: 2,
  act_fn: 'silu',
  latent_channels: 4,
  norm_num_groups: 32,
  sample_size: 512,
  scaling_factor: 0.18215,
};

const MiB = (kb: number): number => kb / 1024;

/**
 * Median wall time (s) of AutoencoderKL.decodeLatents on a (1, 4, 64, 64) latent with random
 * weights, on CPU under inferenceMode, over `runs` runs (no warm-up: one run is ~tens of s).
 */
export function benchVaeDecoder(runs = 1): VaeBenchResult {
  if (!Number.isInteger(runs) || runs <= 0) {
    throw new Error(`Expected a positive integer for runs but received ${runs}`);
  }
  manualSeed(0);
  const vae = new AutoencoderKL(SD15_VAE_CONFIG).eval();
  try {
    const rssBefore = MiB(process.resourceUsage().maxRSS);
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      inferenceMode(() =>
        tidy(() => {
          const latents = randn([1, 4, 64, 64], { generator: new Generator(i) });
          const t0 = performance.now();
          const image = vae.decodeLatents(latents);
          times.push((performance.now() - t0) / 1000);
          if (image.shape.join(',') !== '1,3,512,512') {
            throw new Error(
              `Expected a [1, 3, 512, 512] image but got [${image.shape.join(', ')}]`,
            );
          }
        }),
      );
    }
    times.sort((a, b) => a - b);
    const mid = times.length >> 1;
    const median = times.length % 2 ? times[mid]! : (times[mid - 1]! + times[mid]!) / 2;
    return {
      name: 'sd15-vae-decode-64x64-to-512x512-cpu',
      value: median,
      unit: 's',
      peakRssMiB: MiB(process.resourceUsage().maxRSS),
      rssBeforeDecodeMiB: rssBefore,
    };
  } finally {
    vae.dispose();
  }
}
