// Upsampling a patch grid (e.g. CLIP's 16×16) to image size (e.g. 512×512).
import { assertGrid, assertPositiveInteger, type FloatGrid } from './grid.js';

/**
 * Per output index along one axis: the two source indices and the weight of the second, with
 * torch's align_corners=false rule: src = (dst + 0.5)·in/out − 0.5, clamped at 0, and the upper
 * neighbour clamped to the last index.
 */
function bilinearTaps(inSize: number, outSize: number) {
  const lo = new Int32Array(outSize);
  const hi = new Int32Array(outSize);
  const frac = new Float64Array(outSize);
  const scale = inSize / outSize;
  for (let o = 0; o < outSize; o++) {
    const src = Math.max((o + 0.5) * scale - 0.5, 0);
    const i0 = Math.min(Math.floor(src), inSize - 1);
    lo[o] = i0;
    hi[o] = Math.min(i0 + 1, inSize - 1);
    frac[o] = src - i0;
  }
  return { lo, hi, frac };
}

/**
 * Bilinear resize of an h×w grid to outH×outW, as
 * torch.nn.functional.interpolate(mode='bilinear', align_corners=false) (and
 * scipy.ndimage.zoom(order=1, grid_mode=True, mode='nearest')). Float64 arithmetic; returns the
 * input's array type.
 */
export function resizeBilinear<T extends FloatGrid>(
  map: T,
  h: number,
  w: number,
  outH: number,
  outW: number,
): T {
  assertGrid(map, h, w, 'map');
  assertPositiveInteger(outH, 'output height');
  assertPositiveInteger(outW, 'output width');
  const ys = bilinearTaps(h, outH);
  const xs = bilinearTaps(w, outW);
  // Separable: interpolate every source row to outW columns once, then blend pairs of rows.
  // Same products and sums, in the same order, as the direct four-tap formula.
  const rows = new Float64Array(h * outW);
  for (let y = 0; y < h; y++) {
    for (let ox = 0; ox < outW; ox++) {
      const fx = xs.frac[ox];
      rows[y * outW + ox] = map[y * w + xs.lo[ox]] * (1 - fx) + map[y * w + xs.hi[ox]] * fx;
    }
  }
  const out = new Float64Array(outH * outW);
  for (let oy = 0; oy < outH; oy++) {
    const top = ys.lo[oy] * outW;
    const bottom = ys.hi[oy] * outW;
    const fy = ys.frac[oy];
    const row = oy * outW;
    for (let ox = 0; ox < outW; ox++) {
      out[row + ox] = rows[top + ox] * (1 - fy) + rows[bottom + ox] * fy;
    }
  }
  if (map instanceof Float32Array) return Float32Array.from(out) as T;
  return out as T;
}

/**
 * Nearest-neighbour resize with torch's mode='nearest' rule: src = min(⌊dst·in/out⌋, in − 1).
 * For integer factors (16 → 512) every source cell becomes an exact block. Works on any grid;
 * meant for binary masks.
 */
export function resizeNearest(
  mask: Uint8Array,
  h: number,
  w: number,
  outH: number,
  outW: number,
): Uint8Array {
  assertGrid(mask, h, w, 'mask');
  assertPositiveInteger(outH, 'output height');
  assertPositiveInteger(outW, 'output width');
  const srcX = new Int32Array(outW);
  for (let ox = 0; ox < outW; ox++) srcX[ox] = Math.min(Math.floor((ox * w) / outW), w - 1);
  const out = new Uint8Array(outH * outW);
  for (let oy = 0; oy < outH; oy++) {
    const r = Math.min(Math.floor((oy * h) / outH), h - 1) * w;
    const row = oy * outW;
    for (let ox = 0; ox < outW; ox++) out[row + ox] = mask[r + srcX[ox]];
  }
  return out;
}
