// Eq. (3): I' = inpainting(I, Mask). The paper only needs the distractor's region filled with
// anything unlike the subject. The default here is model-free: a multiscale diffusion fill
// (the masked region takes the harmonic interpolation of its surroundings, solved coarse to
// fine), which leaves a smooth, plausible patch of background colour. Inpainting models can be
// plugged in through the Inpainter interface.
import type { RgbImage } from '../../io/image.js';
import { binaryDilation } from './mask/morphology.js';

export interface Inpainter {
  readonly name: string;
  /** Returns a new image with the pixels where mask = 1 replaced. */
  inpaint(image: RgbImage, mask: Uint8Array): RgbImage | Promise<RgbImage>;
}

interface Level {
  w: number;
  h: number;
  rgb: Float32Array; // 3 floats per pixel
  known: Uint8Array;
}

function downsample(l: Level): Level {
  const w = Math.ceil(l.w / 2);
  const h = Math.ceil(l.h / 2);
  const rgb = new Float32Array(w * h * 3);
  const known = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let n = 0;
      let r = 0;
      let g = 0;
      let b = 0;
      for (let dy = 0; dy < 2; dy++) {
        for (let dx = 0; dx < 2; dx++) {
          const sx = 2 * x + dx;
          const sy = 2 * y + dy;
          if (sx >= l.w || sy >= l.h) continue;
          const i = sy * l.w + sx;
          if (!l.known[i]) continue;
          n++;
          r += l.rgb[3 * i]!;
          g += l.rgb[3 * i + 1]!;
          b += l.rgb[3 * i + 2]!;
        }
      }
      if (n > 0) {
        const o = y * w + x;
        known[o] = 1;
        rgb[3 * o] = r / n;
        rgb[3 * o + 1] = g / n;
        rgb[3 * o + 2] = b / n;
      }
    }
  }
  return { w, h, rgb, known };
}

/** Jacobi relaxation of the unknown pixels towards the average of their 4 neighbours. */
function relax(l: Level, iterations: number): void {
  const next = new Float32Array(l.rgb.length);
  for (let it = 0; it < iterations; it++) {
    next.set(l.rgb);
    for (let y = 0; y < l.h; y++) {
      for (let x = 0; x < l.w; x++) {
        const i = y * l.w + x;
        if (l.known[i]) continue;
        let n = 0;
        let r = 0;
        let g = 0;
        let b = 0;
        const add = (j: number): void => {
          n++;
          r += l.rgb[3 * j]!;
          g += l.rgb[3 * j + 1]!;
          b += l.rgb[3 * j + 2]!;
        };
        if (x > 0) add(i - 1);
        if (x < l.w - 1) add(i + 1);
        if (y > 0) add(i - l.w);
        if (y < l.h - 1) add(i + l.w);
        next[3 * i] = r / n;
        next[3 * i + 1] = g / n;
        next[3 * i + 2] = b / n;
      }
    }
    l.rgb.set(next);
  }
}

/** Fills masked pixels with the harmonic interpolation of the unmasked ones (multiscale). */
export function diffusionFill(
  image: RgbImage,
  mask: Uint8Array,
  options: { dilate?: number; iterations?: number } = {},
): RgbImage {
  const { width: w, height: h } = image;
  if (mask.length !== w * h)
    throw new RangeError(`Expected a ${w}×${h} mask but received ${mask.length} values`);
  // Grow the mask a little so the distractor's anti-aliased rim and shadow go too.
  const grown = options.dilate ? binaryDilation(mask, h, w, options.dilate) : mask;
  const base: Level = { w, h, rgb: Float32Array.from(image.data), known: new Uint8Array(w * h) };
  let unknown = 0;
  for (let i = 0; i < w * h; i++) {
    base.known[i] = grown[i] ? 0 : 1;
    if (grown[i]) unknown++;
  }
  if (unknown === 0) return { width: w, height: h, data: Uint8Array.from(image.data) };
  if (unknown === w * h)
    throw new Error('Cannot fill: the mask covers the whole image, leaving nothing to fill from');
  const pyramid: Level[] = [base];
  while (pyramid[pyramid.length - 1]!.known.includes(0) && pyramid[pyramid.length - 1]!.w > 1) {
    pyramid.push(downsample(pyramid[pyramid.length - 1]!));
  }
  const iterations = options.iterations ?? 30;
  relax(pyramid[pyramid.length - 1]!, iterations * 4);
  for (let k = pyramid.length - 2; k >= 0; k--) {
    const fine = pyramid[k]!;
    const coarse = pyramid[k + 1]!;
    for (let y = 0; y < fine.h; y++) {
      for (let x = 0; x < fine.w; x++) {
        const i = y * fine.w + x;
        if (fine.known[i]) continue;
        const j = (y >> 1) * coarse.w + (x >> 1);
        fine.rgb[3 * i] = coarse.rgb[3 * j]!;
        fine.rgb[3 * i + 1] = coarse.rgb[3 * j + 1]!;
        fine.rgb[3 * i + 2] = coarse.rgb[3 * j + 2]!;
      }
    }
    relax(fine, iterations);
  }
  const out = new Uint8Array(w * h * 3);
  for (let i = 0; i < out.length; i++)
    out[i] = Math.max(0, Math.min(255, Math.round(base.rgb[i]!)));
  return { width: w, height: h, data: out };
}

export const diffusionInpainter: Inpainter = {
  name: 'diffusion-fill',
  inpaint: (image, mask) => diffusionFill(image, mask, { dilate: 1 }),
};
