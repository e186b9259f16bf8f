// Forward time of CLIP ViT-L/14's vision tower (what P3S runs on each reference image) on CPU.
import { performance } from 'node:perf_hooks';
import { randn } from '../src/engine/creation.js';
import { inferenceMode } from '../src/engine/autograd.js';
import { tidy, disposeAll } from '../src/engine/scope.js';
import { manualSeed } from '../src/engine/random.js';
import { CLIPVisionModelWithProjection } from '../src/models/clip/clip_vision_model.js';

export interface VisionBenchResult {
  name: string;
  value: number;
  unit: string;
  /** The process's peak resident set size so far (process.resourceUsage().maxRSS), in MiB. */
  peakRssMiB: number;
}

/** openai/clip-vit-large-patch14's vision_config. */
export const VIT_L_14 = {
  hidden_size: 1024,
  intermediate_size: 4096,
  num_hidden_layers: 24,
  num_attention_heads: 16,
  patch_size: 14,
  image_size: 224,
  projection_dim: 768,
  hidden_act: 'quick_gelu',
  layer_norm_eps: 1e-5,
} as const;

/**
 * Median wall time (s) of one ViT-L/14 forward at batch 1, 224 px, on CPU under inferenceMode,
 * with random weights, over `runs` runs after one warm-up.
 */
export function benchVisionTower(runs = 3): VisionBenchResult {
  if (!Number.isInteger(runs) || runs <= 0) {
    throw new Error(`Expected a positive integer for runs but received ${runs}`);
  }
  manualSeed(0);
  const model = new CLIPVisionModelWithProjection(VIT_L_14).eval();
  try {
    const pixels = randn([1, 3, 224, 224]);
    const once = () =>
      inferenceMode(() => tidy(() => model.forward(pixels).imageEmbeds.sum().item()));
    once();
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      once();
      times.push((performance.now() - t0) / 1000);
    }
    disposeAll(pixels);
    times.sort((a, b) => a - b);
    const mid = times.length >> 1;
    const median = times.length % 2 ? times[mid]! : (times[mid - 1]! + times[mid]!) / 2;
    return {
      name: 'clip-vit-l14-vision-forward-b1-cpu',
      value: median,
      unit: 's',
      peakRssMiB: process.resourceUsage().maxRSS / 1024,
    };
  } finally {
    model.dispose();
  }
}
