// Gaussian smoothing Ψ of Eq. (2), with the semantics of scipy.ndimage.gaussian_filter:
// a separable 1-D correlation along rows (axis 0) then columns (axis 1), a kernel of radius
// ⌊truncate·σ + 0.5⌋ normalised to sum 1, and scipy's boundary modes.
import { assertGrid, type FloatGrid } from './grid.js';

/**
 * How values beyond the edge are made up, named as in scipy.ndimage (for a row `a b c d`):
 * - 'reflect':  `d c b a | a b c d | d c b a` (half-sample symmetric; scipy's default)
 * - 'mirror':   `d c b | a b c d | c b a`     (whole-sample symmetric)
 * - 'nearest':  `a a a a | a b c d | d d d d`
 * - 'constant': `k k k k | a b c d | k k k k` with k = cval (default 0)
 * Lines shorter than the kernel radius are extended periodically, as scipy does.
 */
export type BoundaryMode = 'reflect' | 'mirror' | 'nearest' | 'constant';

const BOUNDARY_MODES: readonly BoundaryMode[] = ['reflect', 'mirror', 'nearest', 'constant'];

export interface GaussianOptions {
  /** Kernel radius in standard deviations (scipy's `truncate`). Default 4. */
  truncate?: number;
  /** Boundary mode. Default 'reflect', as scipy. */
  mode?: BoundaryMode;
  /** Value outside the grid for mode 'constant'. Default 0. */
  cval?: number;
}

/** The normalised 1-D Gaussian weights, index 0 at offset −radius (scipy's `_gaussian_kernel1d`). */
export function gaussianKernel1d(sigma: number, truncate = 4.0): Float64Array {
  if (!(sigma > 0) || !Number.isFinite(sigma)) {
    throw new Error(`Expected a positive finite sigma but received ${sigma}`);
  }
  if (!(truncate >= 0) || !Number.isFinite(truncate)) {
    throw new Error(`Expected a non-negative finite truncate but received ${truncate}`);
  }
  const radius = Math.trunc(truncate * sigma + 0.5);
  const kernel = new Float64Array(2 * radius + 1);
  const c = -0.5 / (sigma * sigma);
  let sum = 0;
  for (let i = -radius; i <= radius; i++) {
    const v = Math.exp(c * i * i);
    kernel[i + radius] = v;
    sum += v;
  }
  for (let i = 0; i < kernel.length; i++) kernel[i] /= sum;
  return kernel;
}

/** Source index for position i (possibly outside [0, n)) of a line of length n, or −1 for cval. */
function boundaryIndex(i: number, n: number, mode: BoundaryMode): number {
  if (i >= 0 && i < n) return i;
  switch (mode) {
    case 'constant':
      return -1;
    case 'nearest':
      return i < 0 ? 0 : n - 1;
    case 'reflect': {
      const period = 2 * n;
      const m = ((i % period) + period) % period;
      return m < n ? m : period - 1 - m;
    }
    case 'mirror': {
      if (n === 1) return 0;
      const period = 2 * n - 2;
      const m = ((i % period) + period) % period;
      return m < n ? m : period - m;
    }
  }
}

/**
 * Correlates `count` lines of length n with a symmetric kernel. Line k starts at
 * `k * lineStride` and its elements are `step` apart (rows: step w; columns: step 1).
 */
function correlateLines(
  src: Float64Array,
  dst: Float64Array,
  n: number,
  count: number,
  lineStride: number,
  step: number,
  kernel: Float64Array,
  mode: BoundaryMode,
  cval: number,
): void {
  const r = (kernel.length - 1) >> 1;
  // The extended line and its index map are shared by every line of this pass.
  const ext = new Float64Array(n + 2 * r);
  const map = new Int32Array(n + 2 * r);
  for (let i = 0; i < map.length; i++) map[i] = boundaryIndex(i - r, n, mode);
  for (let k = 0; k < count; k++) {
    const base = k * lineStride;
    for (let i = 0; i < ext.length; i++) {
      const j = map[i];
      ext[i] = j < 0 ? cval : src[base + j * step];
    }
    for (let i = 0; i < n; i++) {
      const c = i + r;
      // Same pairing and order as scipy's symmetric-kernel loop (outermost taps first).
      let acc = ext[c] * kernel[r];
      for (let j = r; j >= 1; j--) acc += (ext[c - j] + ext[c + j]) * kernel[r - j];
      dst[base + i * step] = acc;
    }
  }
}

/**
 * scipy.ndimage.gaussian_filter on an h×w row-major grid. `sigma` is one value or
 * [sigmaRows, sigmaCols]; an axis with sigma 0 is left as is (scipy skips it too).
 * Accumulates in float64 (also between the two passes, where scipy stores the input dtype) and
 * returns the input's array type.
 */
export function gaussianFilter<T extends FloatGrid>(
  map: T,
  h: number,
  w: number,
  sigma: number | readonly [number, number],
  options: GaussianOptions = {},
): T {
  assertGrid(map, h, w, 'map');
  const { truncate = 4.0, mode = 'reflect', cval = 0 } = options;
  if (!BOUNDARY_MODES.includes(mode)) {
    throw new Error(`Expected mode to be one of ${BOUNDARY_MODES.join(', ')} but received ${mode}`);
  }
  const [sy, sx] = typeof sigma === 'number' ? [sigma, sigma] : sigma;
  for (const s of [sy, sx]) {
    if (!(s >= 0) || !Number.isFinite(s)) {
      throw new Error(`Expected a non-negative finite sigma but received ${s}`);
    }
  }
  let cur = Float64Array.from(map);
  let tmp = new Float64Array(h * w);
  if (sy > 0) {
    // Axis 0: w columns of length h, elements w apart.
    correlateLines(cur, tmp, h, w, 1, w, gaussianKernel1d(sy, truncate), mode, cval);
    [cur, tmp] = [tmp, cur];
  }
  if (sx > 0) {
    // Axis 1: h rows of length w, contiguous.
    correlateLines(cur, tmp, w, h, w, 1, gaussianKernel1d(sx, truncate), mode, cval);
    [cur, tmp] = [tmp, cur];
  }
  return (map instanceof Float32Array ? Float32Array.from(cur) : cur) as T;
}
