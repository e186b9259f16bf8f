// The last step every image processor shares: bytes → rescaled, normalised float32 pixel values
// (B, 3, H, W), computed in transformers' order so the values are bit-identical to its output.
import { tensor } from '../engine/creation.js';
import type { Tensor } from '../engine/tensor.js';
import type { RgbImage } from '../io/image.js';

export interface PixelScaling {
  doRescale: boolean;
  rescaleFactor: number;
  doNormalize: boolean;
  imageMean: readonly number[];
  imageStd: readonly number[];
}

/**
 * Per-byte lookup tables, one per channel: rescale in float64 then cast to float32, normalise
 * in float32 (transformers' order).
 */
function lookupTables(s: PixelScaling): Float32Array[] {
  return [0, 1, 2].map((c) => {
    const lut = new Float32Array(256);
    const mean = Math.fround(s.imageMean[c]!);
    const std = Math.fround(s.imageStd[c]!);
    for (let v = 0; v < 256; v++) {
      let x = s.doRescale ? Math.fround(v * s.rescaleFactor) : v;
      if (s.doNormalize) x = Math.fround(Math.fround(x - mean) / std);
      lut[v] = x;
    }
    return lut;
  });
}

/**
 * (B, 3, H, W) pixel values of images already resized (and cropped) to one size; images of
 * different sizes are refused, naming the `sizeSettings` that would make them one size.
 */
export function pixelValues(
  images: readonly RgbImage[],
  s: PixelScaling,
  sizeSettings: string,
): Tensor {
  const { width, height } = images[0]!;
  images.forEach((r, i) => {
    if (r.width !== width || r.height !== height)
      throw new RangeError(
        `Image ${i} is ${r.width}×${r.height} after preprocessing but image 0 is ` +
          `${width}×${height}; enable ${sizeSettings} to batch images of different sizes`,
      );
  });
  const luts = lookupTables(s);
  const plane = width * height;
  const out = new Float32Array(images.length * 3 * plane);
  images.forEach((img, b) => {
    for (let c = 0; c < 3; c++) {
      const base = (b * 3 + c) * plane;
      const lut = luts[c]!;
      for (let i = 0; i < plane; i++) out[base + i] = lut[img.data[i * 3 + c]!]!;
    }
  });
  return tensor(out, [images.length, 3, height, width]);
}
