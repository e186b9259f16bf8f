// Images in and out: decoding with sharp, PNG writing with text chunks (png.ts), conversions to
// and from tensors, and a resampler that reproduces Pillow's `Image.resize` bit for bit, so that
// preprocessing matches the Python reference implementations (transformers, diffusers' scripts)
// at the uint8 stage.
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import sharp from 'sharp';

import { tensor } from '../engine/creation.js';
import { Tensor } from '../engine/tensor.js';
import { encodePng, readPngTextChunks, writeFileAtomic } from './png.js';

/** An 8-bit RGB image: row-major, 3 bytes per pixel (R, G, B), no padding. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Throws unless `img` is a well-formed RgbImage. */
export function checkImage(img: RgbImage, label = 'image'): void {
  const { width, height, data } = img;
  if (!Number.isSafeInteger(width) || width < 1 || !Number.isSafeInteger(height) || height < 1) {
    throw new RangeError(
      `Expected a positive integer size for ${label} but received ${width}×${height}`,
    );
  }
  if (!(data instanceof Uint8Array) || data.length !== width * height * 3) {
    throw new RangeError(
      `Expected ${width * height * 3} bytes for a ${width}×${height} RGB ${label} but received ${data?.length}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Reading and writing files

/**
 * Decodes an image file (JPEG, PNG, WebP, TIFF, GIF, AVIF ...) to 8-bit RGB.
 *
 * - EXIF orientation is applied (as diffusers' training scripts do with `exif_transpose`), so a
 *   portrait phone photo comes out upright with width and height swapped.
 * - Alpha is dropped, not composited, like Pillow's `convert("RGB")` (what transformers'
 *   `do_convert_rgb` does); grey images are expanded to three equal channels.
 * - An embedded ICC profile is ignored: the decoded numbers are used as they are, as Pillow does,
 *   so colour-managed photos give the same pixels as the Python pipeline.
 * - CMYK (print JPEGs, TIFFs) becomes RGB by Pillow's formula, not a colour profile (see
 *   cmykToRgb); test/io/image.test.ts holds it to Pillow 9.4's pixels.
 */
export async function readImage(path: string): Promise<RgbImage> {
  const name = basename(path);
  await checkImageFile(path, name);
  let out: { data: Buffer; info: sharp.OutputInfo };
  try {
    out = await decode(path);
  } catch (err) {
    throw new Error(`Cannot read image ${name}: ${(err as Error).message}`);
  }
  const { width, height, channels } = out.info;
  if (width < 1 || height < 1) {
    throw new Error(`Cannot read image ${name}: it has zero size (${width}×${height})`);
  }
  if (channels !== 3 || out.data.length !== width * height * 3) {
    throw new Error(
      `Cannot read image ${name}: decoded to ${channels} channels / ${out.data.length} bytes, expected RGB`,
    );
  }
  return {
    width,
    height,
    data: new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.length),
  };
}

/** Refuses a missing, empty or non-regular file with its name. */
async function checkImageFile(path: string, name: string): Promise<void> {
  let size: number;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new Error(`Cannot read image ${name}: ${path} is not a file`);
    size = st.size;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') throw new Error(`Image file not found: ${path}`);
    if (e.code !== undefined) throw new Error(`Cannot read image ${name}: ${e.message}`);
    throw err;
  }
  if (size === 0) throw new Error(`Cannot read image ${name}: the file is empty (0 bytes)`);
}

/** The file's pixels as 8-bit RGB, upright; CMYK through cmykToRgb rather than libvips. */
async function decode(path: string): Promise<{ data: Buffer; info: sharp.OutputInfo }> {
  const { space } = await sharp(path).metadata();
  if (space !== 'cmyk') {
    return sharp(path, { ignoreIcc: true })
      .rotate() // EXIF orientation
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
  }
  // libvips would convert through a CMYK profile (up to 71/255 from Pillow on the fixture):
  // keep the decoded ink values (an Adobe JPEG's inverted samples already undone, as Pillow's
  // "CMYK;I" does) and convert them here
  const cmyk = await sharp(path, { ignoreIcc: true })
    .rotate()
    .pipelineColourspace('cmyk')
    .toColourspace('cmyk')
    .raw({ depth: 'uchar' })
    .toBuffer({ resolveWithObject: true });
  const { width, height, channels } = cmyk.info;
  return {
    data: Buffer.from(cmykToRgb(cmyk.data, width * height, channels)),
    info: { ...cmyk.info, channels: 3, size: width * height * 3 },
  };
}

/**
 * CMYK to RGB as Pillow's `convert("RGB")` computes it, with no colour profile:
 * R = (255 − K) − round(C · (255 − K) / 255), likewise G from M and B from Y, the division
 * done as Pillow's integer MULDIV255. `stride` is the samples per pixel (extra bands ignored).
 */
export function cmykToRgb(cmyk: Uint8Array, pixels: number, stride = 4): Uint8Array {
  const rgb = new Uint8Array(pixels * 3);
  const mulDiv255 = (a: number, b: number): number => {
    const t = a * b + 128;
    return ((t >> 8) + t) >> 8;
  };
  for (let i = 0; i < pixels; i++) {
    const nk = 255 - cmyk[i * stride + 3]!;
    for (let c = 0; c < 3; c++) rgb[i * 3 + c] = nk - mulDiv255(cmyk[i * stride + c]!, nk);
  }
  return rgb;
}

export interface WritePngOptions {
  /**
   * Text chunks, keyword → value (p3s stores generation parameters here). Values representable
   * in Latin-1 go in tEXt chunks, others in uncompressed UTF-8 iTXt chunks. Keywords: 1–79
   * printable Latin-1 characters.
   */
  text?: Record<string, string>;
}

/**
 * Writes an 8-bit RGB PNG, atomically: the bytes go to a temporary file next to `path` that is
 * renamed over it, so a reader never sees a half-written image and a crash leaves no debris.
 */
export async function writePng(
  path: string,
  image: RgbImage,
  options: WritePngOptions = {},
): Promise<void> {
  checkImage(image);
  const bytes = await encodePng(image, options.text ?? {});
  await writeFileAtomic(path, bytes);
}

/** The text chunks (tEXt, zTXt, iTXt) of a PNG file, keyword → value. */
export async function readPngText(path: string): Promise<Record<string, string>> {
  return readPngTextChunks(path);
}

// ---------------------------------------------------------------------------------------------
// Tensors

/** (1, 3, H, W) float32 in [0, 1]: byte / 255, as torchvision's `to_tensor`. */
export function imageToTensor(img: RgbImage): Tensor {
  checkImage(img);
  const { width, height, data } = img;
  const plane = width * height;
  const out = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    out[i] = data[i * 3]! / 255;
    out[plane + i] = data[i * 3 + 1]! / 255;
    out[2 * plane + i] = data[i * 3 + 2]! / 255;
  }
  return tensor(out, [1, 3, height, width]);
}

/** Same-size RGB images as a (B, 3, H, W) float32 batch in [-1, 1] (byte / 127.5 − 1), the VAE's input range. */
export function imagesToSignedTensor(batch: readonly RgbImage[]): Tensor {
  if (batch.length === 0) throw new RangeError('Expected at least one image');
  const { width, height } = batch[0]!;
  const plane = width * height;
  const out = new Float32Array(batch.length * 3 * plane);
  batch.forEach((image, b) => {
    if (image.width !== width || image.height !== height) {
      throw new RangeError(
        `Expected ${width}×${height} images but image ${b} is ${image.width}×${image.height}`,
      );
    }
    const base = b * 3 * plane;
    for (let i = 0; i < plane; i++) {
      for (let c = 0; c < 3; c++) out[base + c * plane + i] = image.data[i * 3 + c]! / 127.5 - 1;
    }
  });
  return tensor(out, [batch.length, 3, height, width]);
}

// numpy's round: halves go to the even neighbour.
function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * A (3, H, W) or (1, 3, H, W) tensor with values in [0, 1] to an image, as diffusers'
 * `numpy_to_pil` does: clamp to [0, 1], `(x * 255).round()` in float32 with numpy's round half
 * to even, then uint8. NaN becomes 0.
 */
export function tensorToImage(t: Tensor): RgbImage {
  const shape = t.shape;
  const ok =
    (shape.length === 3 && shape[0] === 3) ||
    (shape.length === 4 && shape[0] === 1 && shape[1] === 3);
  if (!ok) {
    throw new RangeError(
      `Expected a tensor of shape (3, H, W) or (1, 3, H, W) but received [${shape.join(', ')}]`,
    );
  }
  const height = shape[shape.length - 2]!;
  const width = shape[shape.length - 1]!;
  if (height < 1 || width < 1)
    throw new RangeError(`Expected a non-empty image but received [${shape.join(', ')}]`);
  // toTypedArray copies from any device and layout.
  let values: Float32Array;
  if (t.dtype === 'float32') {
    values = t.toTypedArray() as Float32Array;
  } else {
    if (!t.isFloatingPoint)
      throw new TypeError(`Expected a floating-point tensor but received ${t.dtype}`);
    const f = t.float();
    try {
      values = f.toTypedArray() as Float32Array;
    } finally {
      f.dispose();
    }
  }
  const plane = width * height;
  const data = new Uint8Array(plane * 3);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < plane; i++) {
      const x = values[c * plane + i]!;
      const v = x > 0 ? (x < 1 ? Math.fround(x * 255) : 255) : 0; // NaN fails x > 0
      data[i * 3 + c] = roundHalfEven(v);
    }
  }
  return { width, height, data };
}

// ---------------------------------------------------------------------------------------------
// Pillow-exact resampling

/** Pillow's resampling filters (numbers as in `PIL.Image.Resampling`, which configs store). */
export type ResampleFilter = 'lanczos' | 'bilinear' | 'bicubic' | 'box' | 'hamming';
export const PIL_RESAMPLE: Readonly<Record<number, ResampleFilter>> = {
  1: 'lanczos',
  2: 'bilinear',
  3: 'bicubic',
  4: 'box',
  5: 'hamming',
};

interface Kernel {
  fn: (x: number) => number;
  support: number;
}

// Kernels as Pillow's Resample.c writes them (operation order kept, so doubles agree bit for bit).
const KERNELS: Record<ResampleFilter, Kernel> = {
  box: { fn: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0), support: 0.5 },
  bilinear: {
    fn: (x) => {
      if (x < 0) x = -x;
      return x < 1 ? 1 - x : 0;
    },
    support: 1,
  },
  hamming: {
    fn: (x) => {
      if (x < 0) x = -x;
      if (x === 0) return 1;
      if (x >= 1) return 0;
      x = x * Math.PI;
      // 0.54f and 0.46f are single-precision constants in Pillow.
      return (Math.sin(x) / x) * (Math.fround(0.54) + Math.fround(0.46) * Math.cos(x));
    },
    support: 1,
  },
  // Keys' cubic convolution with a = -0.5.
  bicubic: {
    fn: (x) => {
      const a = -0.5;
      if (x < 0) x = -x;
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    },
    support: 2,
  },
  lanczos: {
    fn: (x) => {
      const sinc = (v: number): number => {
        if (v === 0) return 1;
        v = v * Math.PI;
        return Math.sin(v) / v;
      };
      return -3 <= x && x < 3 ? sinc(x) * sinc(x / 3) : 0;
    },
    support: 3,
  },
};

// Fixed-point precision of the 8-bit passes: 32 bits less 8 for the value and 2 for overflow.
const PRECISION_BITS = 22;

interface Coefficients {
  ksize: number;
  /** Per output pixel: first input index and number of taps. */
  bounds: Int32Array;
  /** outSize × ksize integer weights scaled by 2^PRECISION_BITS. */
  weights: Int32Array;
}

/**
 * The weights of one axis. The filter is stretched by the downscale factor (antialiasing),
 * sampled at the input pixel centres, normalised to sum to 1 per output pixel, then rounded
 * (away from zero) to fixed point.
 */
function coefficients(inSize: number, outSize: number, kernel: Kernel): Coefficients {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = kernel.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const ss = 1 / filterscale;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    // C's (int) cast truncates toward zero.
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      w[x] = kernel.fn((x + xmin - center + 0.5) * ss);
      ww += w[x]!;
    }
    for (let x = 0; x < xmax; x++) {
      const k = ww !== 0 ? w[x]! / ww : w[x]!;
      const scaled = k * (1 << PRECISION_BITS);
      weights[xx * ksize + x] = k < 0 ? Math.trunc(-0.5 + scaled) : Math.trunc(0.5 + scaled);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, weights };
}

// Rounds a fixed-point sum (which started at one half) down to 8 bits, clamped.
function clip8(ss: number): number {
  const v = ss >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * Resizes as Pillow's `Image.resize((width, height), filter)` does for an RGB image, exactly:
 * a horizontal pass then a vertical one, each a fixed-point convolution rounded and clamped
 * to uint8 (Pillow's ImagingResample). An axis whose size does not change is not filtered.
 */
export function resizeImage(
  img: RgbImage,
  width: number,
  height: number,
  filter: ResampleFilter = 'bicubic',
): RgbImage {
  checkImage(img);
  if (!Number.isSafeInteger(width) || width < 1 || !Number.isSafeInteger(height) || height < 1) {
    throw new RangeError(`Expected a positive integer output size but received ${width}×${height}`);
  }
  const kernel = KERNELS[filter];
  if (kernel === undefined) {
    throw new RangeError(
      `Expected a filter in ${Object.keys(KERNELS).join(', ')} but received ${filter}`,
    );
  }
  let cur = img;
  if (width !== cur.width) cur = resampleHorizontal(cur, width, kernel);
  if (height !== cur.height) cur = resampleVertical(cur, height, kernel);
  return cur === img ? { width, height, data: img.data.slice() } : cur;
}

function resampleHorizontal(img: RgbImage, outW: number, kernel: Kernel): RgbImage {
  const { width: inW, height, data: src } = img;
  const { ksize, bounds, weights } = coefficients(inW, outW, kernel);
  const out = new Uint8Array(outW * height * 3);
  const half = 1 << (PRECISION_BITS - 1);
  for (let y = 0; y < height; y++) {
    const row = y * inW * 3;
    const orow = y * outW * 3;
    for (let xx = 0; xx < outW; xx++) {
      const xmin = bounds[xx * 2]!;
      const n = bounds[xx * 2 + 1]!;
      const k0 = xx * ksize;
      let r = half;
      let g = half;
      let b = half;
      for (let x = 0; x < n; x++) {
        const k = weights[k0 + x]!;
        const p = row + (xmin + x) * 3;
        r += src[p]! * k;
        g += src[p + 1]! * k;
        b += src[p + 2]! * k;
      }
      const o = orow + xx * 3;
      out[o] = clip8(r);
      out[o + 1] = clip8(g);
      out[o + 2] = clip8(b);
    }
  }
  return { width: outW, height, data: out };
}

function resampleVertical(img: RgbImage, outH: number, kernel: Kernel): RgbImage {
  const { width, height: inH, data: src } = img;
  const { ksize, bounds, weights } = coefficients(inH, outH, kernel);
  const stride = width * 3;
  const out = new Uint8Array(outH * stride);
  const half = 1 << (PRECISION_BITS - 1);
  for (let yy = 0; yy < outH; yy++) {
    const ymin = bounds[yy * 2]!;
    const n = bounds[yy * 2 + 1]!;
    const k0 = yy * ksize;
    const orow = yy * stride;
    for (let i = 0; i < stride; i++) {
      let s = half;
      for (let y = 0; y < n; y++) s += src[(ymin + y) * stride + i]! * weights[k0 + y]!;
      out[orow + i] = clip8(s);
    }
  }
  return { width, height: outH, data: out };
}

// ---------------------------------------------------------------------------------------------
// Cropping and composing

/** The `width`×`height` region whose top-left corner is (left, top); it must lie inside. */
export function cropImage(
  img: RgbImage,
  left: number,
  top: number,
  width: number,
  height: number,
): RgbImage {
  checkImage(img);
  for (const [name, v] of [
    ['left', left],
    ['top', top],
  ] as const) {
    if (!Number.isSafeInteger(v) || v < 0) {
      throw new RangeError(`Expected a non-negative integer for ${name} but received ${v}`);
    }
  }
  if (!Number.isSafeInteger(width) || width < 1 || !Number.isSafeInteger(height) || height < 1) {
    throw new RangeError(`Expected a positive integer crop size but received ${width}×${height}`);
  }
  if (left + width > img.width || top + height > img.height) {
    throw new RangeError(
      `Crop ${width}×${height} at (${left}, ${top}) does not fit in a ${img.width}×${img.height} image`,
    );
  }
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const from = ((top + y) * img.width + left) * 3;
    data.set(img.data.subarray(from, from + width * 3), y * width * 3);
  }
  return { width, height, data };
}

export type Rgb = readonly [number, number, number];

/** A `width`×`height` image filled with one colour. */
export function solidImage(width: number, height: number, colour: Rgb = [255, 255, 255]): RgbImage {
  if (!Number.isSafeInteger(width) || width < 1 || !Number.isSafeInteger(height) || height < 1) {
    throw new RangeError(`Expected a positive integer size but received ${width}×${height}`);
  }
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i += 3) {
    data[i] = colour[0];
    data[i + 1] = colour[1];
    data[i + 2] = colour[2];
  }
  return { width, height, data };
}

/** Copies `src` into `dst` with its top-left corner at (left, top); it must fit. */
export function pasteImage(dst: RgbImage, src: RgbImage, left: number, top: number): void {
  checkImage(dst, 'destination');
  checkImage(src, 'source');
  if (left < 0 || top < 0 || left + src.width > dst.width || top + src.height > dst.height) {
    throw new RangeError(
      `A ${src.width}×${src.height} image at (${left}, ${top}) does not fit in ${dst.width}×${dst.height}`,
    );
  }
  for (let y = 0; y < src.height; y++) {
    dst.data.set(
      src.data.subarray(y * src.width * 3, (y + 1) * src.width * 3),
      ((top + y) * dst.width + left) * 3,
    );
  }
}

export interface ComposeOptions {
  /** Pixels between images. Default 0. */
  gap?: number;
  /** Colour of gaps and of the space around smaller images. Default white. */
  background?: Rgb;
}

/**
 * `a` and `b` next to each other (a left), vertically centred on the background colour when
 * their heights differ; used to build images with two look-alike subjects.
 */
export function pasteSideBySide(a: RgbImage, b: RgbImage, options: ComposeOptions = {}): RgbImage {
  checkImage(a, 'left image');
  checkImage(b, 'right image');
  const gap = checkGap(options.gap ?? 0);
  const height = Math.max(a.height, b.height);
  const out = solidImage(a.width + gap + b.width, height, options.background);
  pasteImage(out, a, 0, (height - a.height) >> 1);
  pasteImage(out, b, a.width + gap, (height - b.height) >> 1);
  return out;
}

export interface ContactSheetOptions extends ComposeOptions {
  /** Pixels of background around the grid. Default 0. */
  margin?: number;
}

/**
 * A grid of images, `columns` per row, row by row; each cell is as large as the largest image
 * and holds its image centred.
 */
export function contactSheet(
  images: readonly RgbImage[],
  columns: number,
  options: ContactSheetOptions = {},
): RgbImage {
  if (images.length === 0) throw new RangeError('Expected at least one image for a contact sheet');
  if (!Number.isSafeInteger(columns) || columns < 1) {
    throw new RangeError(`Expected a positive integer for columns but received ${columns}`);
  }
  images.forEach((img, i) => checkImage(img, `image ${i}`));
  const gap = checkGap(options.gap ?? 0);
  const margin = checkGap(options.margin ?? 0, 'margin');
  const cols = Math.min(columns, images.length);
  const rows = Math.ceil(images.length / cols);
  const cellW = Math.max(...images.map((i) => i.width));
  const cellH = Math.max(...images.map((i) => i.height));
  const out = solidImage(
    cols * cellW + (cols - 1) * gap + 2 * margin,
    rows * cellH + (rows - 1) * gap + 2 * margin,
    options.background,
  );
  images.forEach((img, i) => {
    const x = margin + (i % cols) * (cellW + gap) + ((cellW - img.width) >> 1);
    const y = margin + Math.floor(i / cols) * (cellH + gap) + ((cellH - img.height) >> 1);
    pasteImage(out, img, x, y);
  });
  return out;
}

function checkGap(gap: number, name = 'gap'): number {
  if (!Number.isSafeInteger(gap) || gap < 0) {
    throw new RangeError(`Expected a non-negative integer for ${name} but received ${gap}`);
  }
  return gap;
}

/** Each pixel as a `factor`×`factor` block: nearest-neighbour upscaling, to see small images. */
export function enlargeImage(img: RgbImage, factor: number): RgbImage {
  checkImage(img);
  if (!Number.isSafeInteger(factor) || factor < 1) {
    throw new RangeError(`Expected a positive integer for factor but received ${factor}`);
  }
  const width = img.width * factor;
  const height = img.height * factor;
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const from = Math.floor(y / factor) * img.width;
    for (let x = 0; x < width; x++) {
      const s = (from + Math.floor(x / factor)) * 3;
      const d = (y * width + x) * 3;
      data[d] = img.data[s]!;
      data[d + 1] = img.data[s + 1]!;
      data[d + 2] = img.data[s + 2]!;
    }
  }
  return { width, height, data };
}
