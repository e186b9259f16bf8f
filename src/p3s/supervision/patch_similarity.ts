// Eq. (1): the patch similarity map. For a point, the cosine similarity between the CLIP patch
// token under it and every patch token of the image.
import { Tensor } from '../../engine/tensor.js';
import { tensor } from '../../engine/creation.js';
import { tidy } from '../../engine/scope.js';
import { noGrad } from '../../engine/autograd.js';
import * as ops from '../../engine/ops.generated.js';
import type { Point } from './annotations.js';

/** Patch tokens of one image: (gridH·gridW, C) in raster order. */
export interface PatchFeatures {
  tokens: Tensor;
  gridH: number;
  gridW: number;
  /** Size of the image the grid covers evenly. */
  imageWidth: number;
  imageHeight: number;
  /** Photo pixels one token sees across, when more than a grid cell (dense grids). */
  patchSize?: number;
}

/** The grid cell (row-major index) an image point falls in. */
export function cellOfPoint(f: PatchFeatures, [x, y]: Point): number {
  const col = Math.min(f.gridW - 1, Math.max(0, Math.floor((x / f.imageWidth) * f.gridW)));
  const row = Math.min(f.gridH - 1, Math.max(0, Math.floor((y / f.imageHeight) * f.gridH)));
  return row * f.gridW + col;
}

/** Image-pixel centre of a grid cell. */
export function pointOfCell(f: PatchFeatures, cell: number): Point {
  const row = Math.floor(cell / f.gridW);
  const col = cell % f.gridW;
  return [((col + 0.5) / f.gridW) * f.imageWidth, ((row + 0.5) / f.gridH) * f.imageHeight];
}

/**
 * Eq. (1): M_{i,j} = cos(patch_{x',y'}, patch_{i,j}) for every patch (i, j). Several points:
 * the maximum over their maps (a patch counts as the subject if it resembles any clicked part).
 * Returns a gridH×gridW Float32Array in raster order.
 */
export function patchSimilarity(f: PatchFeatures, points: readonly Point[]): Float32Array {
  if (points.length === 0) throw new Error('patchSimilarity needs at least one point');
  return noGrad(() =>
    tidy(() => {
      const tokens = f.tokens.float();
      const cells = points.map((p) => cellOfPoint(f, p));
      const picked = ops.indexSelect(tokens, 0, tensorOfCells(cells)); // (P, C)
      const sims = ops.cosineSimilarity(tokens.unsqueeze(0), picked.unsqueeze(1), 2, 1e-8); // (P, N)
      const best = ops.amax(sims, [0], false); // (N,)
      return Float32Array.from(best.toArray());
    }),
  );
}

/** Cosine similarity of every patch to a given feature vector (C,): (gridH·gridW,). */
export function similarityToFeature(f: PatchFeatures, feature: Tensor): Float32Array {
  return noGrad(() =>
    tidy(() => {
      const sims = ops.cosineSimilarity(f.tokens.float(), feature.float().unsqueeze(0), 1, 1e-8);
      return Float32Array.from(sims.toArray());
    }),
  );
}

/** Mean token of the cells under the points: the feature a click stands for. */
export function featureAtPoints(f: PatchFeatures, points: readonly Point[]): Tensor {
  return tidy(() =>
    ops
      .indexSelect(f.tokens.float(), 0, tensorOfCells(points.map((p) => cellOfPoint(f, p))))
      .mean([0]),
  );
}

function tensorOfCells(cells: number[]): Tensor {
  return tensor(cells, [cells.length], { dtype: 'int64' });
}
