// Edge-aware refinement of a coarse map with the photo as guide: the colour guided filter of
// He, Sun and Tang (ECCV 2010). Inside every (2r+1)² window the output is an affine function of
// the photo's RGB, fitted to the input map by ridge regression (ε), so a blurry patch-level
// similarity map takes on the photo's edges: where the photo is flat the map is smoothed, where
// the photo has an edge the map may jump. Box means come from integral images, O(pixels)
// whatever the radius.
import { assertGrid, assertPositiveInteger, type FloatGrid } from './grid.js';

/** An RGB photo as 8-bit interleaved samples (the layout of io/image.ts's RgbImage). */
export interface GuideImage {
  width: number;
  height: number;
  data: Uint8Array;
}

export interface GuidedFilterOptions {
  /** Window radius r in pixels: windows are (2r+1)². */
  radius: number;
  /** Ridge term ε on colours scaled to [0, 1]; larger smooths more across weak edges. */
  eps: number;
}

/** Mean of every (2r+1)² window (clipped at the borders) by an integral image. */
export function boxMean(src: Float64Array, h: number, w: number, r: number): Float64Array {
  const W = w + 1;
  const sum = new Float64Array((h + 1) * W);
  for (let y = 0; y < h; y++) {
    let row = 0;
    for (let x = 0; x < w; x++) {
      row += src[y * w + x]!;
      sum[(y + 1) * W + x + 1] = sum[y * W + x + 1]! + row;
    }
  }
  const out = new Float64Array(h * w);
  for (let y = 0; y < h; y++) {
    const y0 = Math.max(0, y - r);
    const y1 = Math.min(h, y + r + 1);
    for (let x = 0; x < w; x++) {
      const x0 = Math.max(0, x - r);
      const x1 = Math.min(w, x + r + 1);
      const s = sum[y1 * W + x1]! - sum[y0 * W + x1]! - sum[y1 * W + x0]! + sum[y0 * W + x0]!;
      out[y * w + x] = s / ((y1 - y0) * (x1 - x0));
    }
  }
  return out;
}

/**
 * A guided filter bound to one photo: the window statistics of the photo (means and inverse
 * covariances) are computed once and reused for every map filtered with it — the subject's and
 * the look-alike's maps share them.
 */
export class GuidedFilter {
  readonly width: number;
  readonly height: number;
  readonly radius: number;
  private readonly I: [Float64Array, Float64Array, Float64Array];
  private readonly mI: [Float64Array, Float64Array, Float64Array];
  /** Per pixel, the six entries of (Σ + εU)⁻¹: [k00, k01, k02, k11, k12, k22]. */
  private readonly inverse: Float64Array;

  constructor(guide: GuideImage, options: GuidedFilterOptions) {
    const { width: w, height: h, data } = guide;
    assertPositiveInteger(w, 'guide width');
    assertPositiveInteger(h, 'guide height');
    if (data.length !== w * h * 3) {
      throw new RangeError(
        `Expected ${w * h * 3} RGB samples in the guide but received ${data.length}`,
      );
    }
    const { radius: r, eps } = options;
    if (!Number.isInteger(r) || r < 1) {
      throw new RangeError(`Expected a positive integer radius but received ${r}`);
    }
    if (!(eps > 0)) throw new RangeError(`Expected a positive eps but received ${eps}`);
    this.width = w;
    this.height = h;
    this.radius = r;
    const n = w * h;
    const channel = (c: number) => {
      const a = new Float64Array(n);
      for (let i = 0; i < n; i++) a[i] = data[3 * i + c]! / 255;
      return a;
    };
    this.I = [channel(0), channel(1), channel(2)];
    const [I0, I1, I2] = this.I;
    this.mI = [boxMean(I0, h, w, r), boxMean(I1, h, w, r), boxMean(I2, h, w, r)];
    const product = (a: Float64Array, b: Float64Array) => {
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++) out[i] = a[i]! * b[i]!;
      return boxMean(out, h, w, r);
    };
    const m00 = product(I0, I0);
    const m01 = product(I0, I1);
    const m02 = product(I0, I2);
    const m11 = product(I1, I1);
    const m12 = product(I1, I2);
    const m22 = product(I2, I2);
    const [u0, u1, u2] = this.mI;
    this.inverse = new Float64Array(6 * n);
    for (let i = 0; i < n; i++) {
      // Σ + εU, symmetric: [a b c; b d e; c e f]; positive definite thanks to ε.
      const a = m00[i]! - u0[i]! * u0[i]! + eps;
      const b = m01[i]! - u0[i]! * u1[i]!;
      const c = m02[i]! - u0[i]! * u2[i]!;
      const d = m11[i]! - u1[i]! * u1[i]! + eps;
      const e = m12[i]! - u1[i]! * u2[i]!;
      const f = m22[i]! - u2[i]! * u2[i]! + eps;
      const k00 = d * f - e * e;
      const k01 = c * e - b * f;
      const k02 = b * e - c * d;
      const det = a * k00 + b * k01 + c * k02;
      const o = 6 * i;
      this.inverse[o] = k00 / det;
      this.inverse[o + 1] = k01 / det;
      this.inverse[o + 2] = k02 / det;
      this.inverse[o + 3] = (a * f - c * c) / det;
      this.inverse[o + 4] = (b * c - a * e) / det;
      this.inverse[o + 5] = (a * d - b * b) / det;
    }
  }

  /** The map p (height × width) filtered with the photo as guide; returns a new map. */
  filter(p: FloatGrid): Float64Array {
    const { width: w, height: h, radius: r, I, mI, inverse } = this;
    assertGrid(p, h, w, 'map to filter');
    const n = w * h;
    const [I0, I1, I2] = I;
    const [u0, u1, u2] = mI;
    const pd = Float64Array.from(p);
    const mp = boxMean(pd, h, w, r);
    const withGuide = (c: Float64Array) => {
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++) out[i] = c[i]! * pd[i]!;
      return boxMean(out, h, w, r);
    };
    const p0 = withGuide(I0);
    const p1 = withGuide(I1);
    const p2 = withGuide(I2);
    const A0 = new Float64Array(n);
    const A1 = new Float64Array(n);
    const A2 = new Float64Array(n);
    const B = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      // Per window: a = (Σ + εU)⁻¹ cov(I, p), b = mean(p) − a·mean(I).
      const v0 = p0[i]! - u0[i]! * mp[i]!;
      const v1 = p1[i]! - u1[i]! * mp[i]!;
      const v2 = p2[i]! - u2[i]! * mp[i]!;
      const o = 6 * i;
      const a0 = inverse[o]! * v0 + inverse[o + 1]! * v1 + inverse[o + 2]! * v2;
      const a1 = inverse[o + 1]! * v0 + inverse[o + 3]! * v1 + inverse[o + 4]! * v2;
      const a2 = inverse[o + 2]! * v0 + inverse[o + 4]! * v1 + inverse[o + 5]! * v2;
      A0[i] = a0;
      A1[i] = a1;
      A2[i] = a2;
      B[i] = mp[i]! - a0 * u0[i]! - a1 * u1[i]! - a2 * u2[i]!;
    }
    const mA0 = boxMean(A0, h, w, r);
    const mA1 = boxMean(A1, h, w, r);
    const mA2 = boxMean(A2, h, w, r);
    const mB = boxMean(B, h, w, r);
    const q = new Float64Array(n);
    for (let i = 0; i < n; i++)
      q[i] = mA0[i]! * I0[i]! + mA1[i]! * I1[i]! + mA2[i]! * I2[i]! + mB[i]!;
    return q;
  }
}

/** One map filtered with the photo as guide (see {@link GuidedFilter}). */
export function guidedFilter(
  p: FloatGrid,
  guide: GuideImage,
  options: GuidedFilterOptions,
): Float64Array {
  return new GuidedFilter(guide, options).filter(p);
}
