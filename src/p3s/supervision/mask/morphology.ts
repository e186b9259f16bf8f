// Binary dilation and erosion with a disk, as scipy.ndimage.binary_dilation / binary_erosion
// with structure=skimage.morphology.disk(r) and the default border_value=0.
//
// The disk of radius r is every offset (dy, dx) with dy² + dx² ≤ r² (for integer r exactly
// skimage's disk(r); a fractional r is allowed and means the same inequality). Radius 0 is the
// single centre cell, so both operations return a copy.
//
// Each disk row dy is a horizontal run of half-width ⌊√(r² − dy²)⌋, so one pass per image row
// computes the distance to the nearest set (or unset) cell, and the 2-D operation reduces to
// comparing those distances with the half-widths: O(h·w·(2r + 1)) instead of O(h·w·r²).
import { assertGrid } from './grid.js';

/** halfWidths[dy + R] = ⌊√(r² − dy²)⌋ for dy in [−R, R], R = ⌊r⌋. */
export function diskHalfWidths(radius: number): Int32Array {
  if (!(radius >= 0) || !Number.isFinite(radius)) {
    throw new Error(`Expected a non-negative finite disk radius but received ${radius}`);
  }
  const R = Math.floor(radius);
  const out = new Int32Array(2 * R + 1);
  for (let dy = -R; dy <= R; dy++) out[dy + R] = Math.floor(Math.sqrt(radius * radius - dy * dy));
  return out;
}

/**
 * For each cell, the horizontal distance to the nearest cell in its row whose value is `target`
 * (cells beyond the row ends count as `edge`); `far` where there is none.
 */
function rowDistances(
  mask: Uint8Array,
  h: number,
  w: number,
  target: boolean,
  edge: boolean,
  far: number,
): Int32Array {
  const dist = new Int32Array(h * w);
  for (let y = 0; y < h; y++) {
    const row = y * w;
    let last = edge ? -1 : -far;
    for (let x = 0; x < w; x++) {
      if ((mask[row + x] !== 0) === target) last = x;
      const d = x - last;
      dist[row + x] = d < far ? d : far;
    }
    last = edge ? w : w + far;
    for (let x = w - 1; x >= 0; x--) {
      if ((mask[row + x] !== 0) === target) last = x;
      const d = last - x;
      if (d < dist[row + x]) dist[row + x] = d;
    }
  }
  return dist;
}

/** scipy.ndimage.binary_dilation(mask, structure=disk(radius)); outside the grid is 0. */
export function binaryDilation(mask: Uint8Array, h: number, w: number, radius: number): Uint8Array {
  assertGrid(mask, h, w, 'mask');
  const half = diskHalfWidths(radius);
  const R = half.length >> 1;
  const far = w + R + 1;
  const dist = rowDistances(mask, h, w, true, false, far);
  // Rows without any set cell contribute nothing; masks usually span a fraction of the image.
  const rowHasSet = new Uint8Array(h);
  for (let y = 0; y < h; y++) rowHasSet[y] = dist[y * w] < far ? 1 : 0; // any set cell is < far
  const out = new Uint8Array(h * w);
  // One disk row at a time: row y + dy within half[dy] of a set cell sets (y, x). Rows beyond
  // the grid are all background (border_value 0) and contribute nothing.
  for (let dy = -R; dy <= R; dy++) {
    const reach = half[dy + R];
    for (let y = Math.max(0, -dy); y < Math.min(h, h - dy); y++) {
      if (!rowHasSet[y + dy]) continue;
      const o = y * w;
      const s = (y + dy) * w;
      for (let x = 0; x < w; x++) if (dist[s + x] <= reach) out[o + x] = 1;
    }
  }
  return out;
}

/**
 * scipy.ndimage.binary_erosion(mask, structure=disk(radius)) with border_value=0: a cell survives
 * only if the whole disk around it lies inside the grid and on set cells, so foreground that
 * touches the border is eroded from the border side too.
 */
export function binaryErosion(mask: Uint8Array, h: number, w: number, radius: number): Uint8Array {
  assertGrid(mask, h, w, 'mask');
  const half = diskHalfWidths(radius);
  const R = half.length >> 1;
  const dist = rowDistances(mask, h, w, false, true, w + R + 1);
  const out = new Uint8Array(h * w);
  // Rows closer than R to the top or bottom edge see background beyond it: they stay 0.
  if (h > 2 * R) out.fill(1, R * w, (h - R) * w);
  for (let dy = -R; dy <= R; dy++) {
    const reach = half[dy + R];
    for (let y = R; y < h - R; y++) {
      const o = y * w;
      const s = (y + dy) * w;
      for (let x = 0; x < w; x++) if (dist[s + x] <= reach) out[o + x] = 0;
    }
  }
  return out;
}
