// A model-free patch feature extractor for tests: each patch's soft colour histogram (every
// pixel votes for the nearby centres of a 3×3×3 RGB grid, Gaussian weights), so that patch
// similarity separates objects by colour — and by the mix of colours a pattern makes — the way
// CLIP separates them by appearance.
import type { RgbImage } from '../../../src/io/image.js';
import { tensor } from '../../../src/engine/creation.js';
import type { PatchFeatureExtractor } from '../../../src/p3s/supervision/rngr.js';
import type { PatchFeatures } from '../../../src/p3s/supervision/patch_similarity.js';

const LEVELS = [0, 0.5, 1];
const CENTRES = LEVELS.flatMap((r) => LEVELS.flatMap((g) => LEVELS.map((b) => [r, g, b] as const)));
const WIDTH = 0.22;

export function colourPatchExtractor(grid: number): PatchFeatureExtractor {
  const k = CENTRES.length;
  return {
    extract(image: RgbImage): PatchFeatures {
      const { width: w, height: h, data } = image;
      const feats = new Float32Array(grid * grid * k);
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const cell = Math.floor((y * grid) / h) * grid + Math.floor((x * grid) / w);
          const p = (y * w + x) * 3;
          const r = data[p]! / 255;
          const g = data[p + 1]! / 255;
          const b = data[p + 2]! / 255;
          CENTRES.forEach(([cr, cg, cb], j) => {
            const d2 = (r - cr) ** 2 + (g - cg) ** 2 + (b - cb) ** 2;
            feats[cell * k + j]! += Math.exp(-d2 / (2 * WIDTH * WIDTH));
          });
        }
      }
      return {
        tokens: tensor(feats, [grid * grid, k]),
        gridH: grid,
        gridW: grid,
        imageWidth: w,
        imageHeight: h,
      };
    },
  };
}

export function iou(a: Uint8Array, b: Uint8Array): number {
  let inter = 0;
  let union = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] && b[i]) inter++;
    if (a[i] || b[i]) union++;
  }
  return union === 0 ? 0 : inter / union;
}
