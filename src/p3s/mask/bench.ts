// Micro-benchmark of the whole Eq. (2) post-processing at the paper's scale: CLIP's 16×16 patch
// grid to a 512×512 mask.
import { performance } from 'node:perf_hooks';
import { subjectMask, type PointSimilarity } from './subject_mask.js';

export interface BenchResult {
  name: string;
  value: number;
  unit: string;
}

/** Two look-alike blobs: M_P peaks on both, M_N mostly on the second (as CLIP would give). */
function syntheticSimilarity(n: number): PointSimilarity {
  const positive = new Float32Array(n * n);
  const negative = new Float32Array(n * n);
  const blob = (x: number, y: number, cx: number, cy: number, r: number) =>
    Math.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r));
  for (let y = 0; y < n; y++) {
    for (let x = 0; x < n; x++) {
      const a = blob(x, y, n * 0.3, n * 0.4, n * 0.12);
      const b = blob(x, y, n * 0.7, n * 0.6, n * 0.12);
      positive[y * n + x] = 0.3 + 0.7 * Math.max(a, 0.9 * b);
      negative[y * n + x] = 0.3 + 0.7 * Math.max(0.8 * a, b);
    }
  }
  const p = { x: n * 0.3, y: n * 0.4 };
  const q = { x: n * 0.7, y: n * 0.6 };
  return { positive, negative, height: n, width: n, positivePoints: [p], negativePoints: [q] };
}

/**
 * Median wall time (ms) of subjectMask on a 16×16 grid to 512×512 with bilinear upsampling and
 * a radius-4 dilation, over `runs` runs after a few warm-up runs.
 */
export function benchMaskPostprocess(runs = 50): BenchResult {
  if (!Number.isInteger(runs) || runs <= 0) {
    throw new Error(`Expected a positive integer for runs but received ${runs}`);
  }
  const sim = syntheticSimilarity(16);
  const options = { imageHeight: 512, imageWidth: 512, sigma: 1, dilateRadius: 4 };
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
  return { name: 'mask-postprocess-16x16-to-512x512', value: median, unit: 'ms' };
}
