// Micro-benchmark of the whole Eq. (2) post-processing at the paper's scale: CLIP's 16×16 patch
// grid to a 512×512 mask.
import { performance } from 'node:perf_hooks';
import type { GuideImage } from '../src/p3s/supervision/mask/guided_filter.js';
import type { MaskOptions } from '../src/p3s/supervision/mask/mask_options.js';
import { subjectMask, type PointSimilarity } from '../src/p3s/supervision/mask/subject_mask.js';

export interface BenchResult {
  name: string;
  value: number;
  unit: string;
}

/**
 * Two touching look-alike subjects as soft-edged discs of similarity (as CLIP patch maps look):
 * M_P is 1 on subject a and 0.9 on b, M_N is 1 on b and 0.6 on a, 0.2 elsewhere.
 */
function syntheticSimilarity(n: number): PointSimilarity {
  const a = { x: n * 0.32, y: n * 0.5 };
  const b = { x: n * 0.66, y: n * 0.5 };
  const r = n * 0.18;
  const disc = (x: number, y: number, c: { x: number; y: number }) =>
    1 / (1 + Math.exp(-2 * (r - Math.hypot(x - c.x, y - c.y))));
  const positive = new Float32Array(n * n);
  const negative = new Float32Array(n * n);
  for (let y = 0; y < n; y++) {
    for (let x = 0; x < n; x++) {
      const da = disc(x, y, a);
      const db = disc(x, y, b);
      positive[y * n + x] = 0.2 + 0.8 * Math.max(da, 0.9 * db);
      negative[y * n + x] = 0.2 + 0.8 * Math.max(0.6 * da, db);
    }
  }
  return { positive, negative, height: n, width: n, positivePoints: [a], negativePoints: [b] };
}

/** A size×size photo of the two discs of {@link syntheticSimilarity} on a grey background. */
function syntheticPhoto(size: number): GuideImage {
  const data = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const a = Math.hypot(x - size * 0.32, y - size * 0.5) < size * 0.18;
      const b = Math.hypot(x - size * 0.66, y - size * 0.5) < size * 0.18;
      data.set(a ? [200, 60, 40] : b ? [210, 120, 40] : [120, 130, 125], (y * size + x) * 3);
    }
  }
  return { width: size, height: size, data };
}

/**
 * Median wall time (ms) of subjectMask on a 16×16 grid to 512×512 with a radius-4 dilation, over
 * `runs` runs after a few warm-up runs: 'paper' is Eq. (2) as written (grid-level Otsu, bilinear
 * upsampling); 'default' is what `p3s mask` runs (compare rule, guided filter at pixel level).
 */
export function benchMaskPostprocess(
  runs = 50,
  variant: 'paper' | 'default' = 'paper',
): BenchResult {
  if (!Number.isInteger(runs) || runs <= 0) {
    throw new Error(`Expected a positive integer for runs but received ${runs}`);
  }
  const sim = syntheticSimilarity(16);
  const options: MaskOptions = { imageHeight: 512, imageWidth: 512, sigma: 1, dilateRadius: 4 };
  if (variant === 'default') {
    options.rule = 'compare';
    options.guide = syntheticPhoto(512);
  }
  for (let i = 0; i < 5; i++) subjectMask(sim, options);
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    subjectMask(sim, options);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const mid = times.length >> 1;
  const median = times.length % 2 ? times[mid] : (times[mid - 1] + times[mid]) / 2;
  const name = `mask-postprocess-16x16-to-512x512${variant === 'default' ? '-guided' : ''}`;
  return { name, value: median, unit: 'ms' };
}
