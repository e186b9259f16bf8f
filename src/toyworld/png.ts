// PNG output for eyeballing the toy world: single images, instance-mask views and contact
// sheets. sharp does the encoding; everything else is plain byte shuffling.

import sharp from 'sharp';

import type { Point, Scene } from './scene.js';

export interface RgbImage {
  rgb: Uint8Array;
  width: number;
  height: number;
}

/** Writes row-major RGB bytes to a PNG file. */
export async function writePng(
  path: string,
  rgb: Uint8Array,
  width: number,
  height: number,
): Promise<void> {
  if (rgb.length !== width * height * 3) {
    throw new RangeError(
      `Expected ${width * height * 3} bytes for a ${width}×${height} RGB image but received ${rgb.length}`,
    );
  }
  const data = Buffer.from(rgb.buffer, rgb.byteOffset, rgb.byteLength);
  await sharp(data, { raw: { width, height, channels: 3 } })
    .png()
    .toFile(path);
}

// Distinct colours for instance ids 1, 2, 3, ...
const INSTANCE_COLOURS: readonly [number, number, number][] = [
  [230, 60, 60],
  [60, 200, 90],
  [70, 110, 240],
  [240, 200, 40],
  [200, 80, 220],
  [40, 210, 220],
];

function markPoint(img: RgbImage, p: Point, c: readonly [number, number, number]): void {
  for (const [dx, dy] of [
    [0, 0],
    [1, 0],
    [-1, 0],
    [0, 1],
    [0, -1],
  ] as const) {
    const x = p.x + dx;
    const y = p.y + dy;
    if (x < 0 || y < 0 || x >= img.width || y >= img.height) continue;
    const i = (y * img.width + x) * 3;
    img.rgb[i] = c[0];
    img.rgb[i + 1] = c[1];
    img.rgb[i + 2] = c[2];
  }
}

/** The instance map in flat colours on dark grey, with each object's interior point in white. */
export function instanceView(scene: Scene): RgbImage {
  const n = scene.size * scene.size;
  const rgb = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const id = scene.instances[i]!;
    const c = id === 0 ? [40, 40, 40] : INSTANCE_COLOURS[(id - 1) % INSTANCE_COLOURS.length]!;
    rgb[i * 3] = c[0]!;
    rgb[i * 3 + 1] = c[1]!;
    rgb[i * 3 + 2] = c[2]!;
  }
  const img = { rgb, width: scene.size, height: scene.size };
  for (const o of scene.objects) markPoint(img, o.point, [255, 255, 255]);
  return img;
}

export interface ContactSheetOptions {
  /** Tiles per row. Default: about square. */
  columns?: number;
  /** Integer nearest-neighbour upscaling of every tile. Default 2. */
  scale?: number;
  /** Pixels between tiles. Default 2. */
  gap?: number;
  /** Follow each scene with its instance view. Default false. */
  masks?: boolean;
}

/** Tiles images into one (all tiles the size of the largest, on a mid-grey ground). */
export function contactSheet(
  images: readonly RgbImage[],
  options: ContactSheetOptions = {},
): RgbImage {
  const scale = options.scale ?? 2;
  const gap = options.gap ?? 2;
  const columns = options.columns ?? Math.max(1, Math.ceil(Math.sqrt(images.length)));
  const tw = Math.max(1, ...images.map((i) => i.width)) * scale;
  const th = Math.max(1, ...images.map((i) => i.height)) * scale;
  const rows = Math.max(1, Math.ceil(images.length / columns));
  const width = columns * tw + (columns + 1) * gap;
  const height = rows * th + (rows + 1) * gap;
  const rgb = new Uint8Array(width * height * 3).fill(128);
  images.forEach((img, k) => {
    const ox = gap + (k % columns) * (tw + gap);
    const oy = gap + Math.floor(k / columns) * (th + gap);
    for (let y = 0; y < img.height * scale; y++) {
      for (let x = 0; x < img.width * scale; x++) {
        const s = (Math.floor(y / scale) * img.width + Math.floor(x / scale)) * 3;
        const d = ((oy + y) * width + ox + x) * 3;
        rgb[d] = img.rgb[s]!;
        rgb[d + 1] = img.rgb[s + 1]!;
        rgb[d + 2] = img.rgb[s + 2]!;
      }
    }
  });
  return { rgb, width, height };
}

/** Writes scenes (and optionally their instance views) as one PNG for a quick look. */
export async function writeContactSheet(
  path: string,
  scenes: readonly Scene[],
  options: ContactSheetOptions = {},
): Promise<RgbImage> {
  const tiles: RgbImage[] = [];
  for (const s of scenes) {
    tiles.push({ rgb: s.rgb, width: s.size, height: s.size });
    if (options.masks) tiles.push(instanceView(s));
  }
  const columns =
    options.columns ?? (options.masks ? 2 * Math.ceil(Math.sqrt(scenes.length)) : undefined);
  const sheet = contactSheet(tiles, { ...options, columns });
  await writePng(path, sheet.rgb, sheet.width, sheet.height);
  return sheet;
}
