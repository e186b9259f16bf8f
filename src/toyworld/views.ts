// Views of toy scenes for eyeballing: a scene as an image, its instance map in flat colours, and
// contact sheets of both, built on io/image.ts's images, grids and PNG writing.
import { contactSheet, enlargeImage, writePng, type Rgb, type RgbImage } from '../io/image.js';
import type { Point, Scene } from './scene.js';

/** A scene's pixels as an image (the scene's own bytes, not a copy). */
export function sceneImage(scene: Scene): RgbImage {
  return { width: scene.size, height: scene.size, data: scene.rgb };
}

// Distinct colours for instance ids 1, 2, 3, ...
const INSTANCE_COLOURS: readonly Rgb[] = [
  [230, 60, 60],
  [60, 200, 90],
  [70, 110, 240],
  [240, 200, 40],
  [200, 80, 220],
  [40, 210, 220],
];
const BACKGROUND_COLOUR: Rgb = [40, 40, 40];

/** A small plus sign centred on `p`, clipped to the image. */
function markPoint(img: RgbImage, p: Point, c: Rgb): void {
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
    img.data.set(c, (y * img.width + x) * 3);
  }
}

/** The instance map in flat colours on dark grey, with each object's interior point in white. */
export function instanceView(scene: Scene): RgbImage {
  const n = scene.size * scene.size;
  const data = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    const id = scene.instances[i]!;
    const c = id === 0 ? BACKGROUND_COLOUR : INSTANCE_COLOURS[(id - 1) % INSTANCE_COLOURS.length]!;
    data.set(c, i * 3);
  }
  const img = { width: scene.size, height: scene.size, data };
  for (const o of scene.objects) markPoint(img, o.point, [255, 255, 255]);
  return img;
}

export interface SceneSheetOptions {
  /** Tiles per row. Default: about square (twice that with masks, so each pair stays together). */
  columns?: number;
  /** Integer nearest-neighbour upscaling of every tile. Default 2. */
  scale?: number;
  /** Pixels between tiles and around the sheet. Default 2. */
  gap?: number;
  /** Follow each scene with its instance view. Default false. */
  masks?: boolean;
}

const SHEET_BACKGROUND: Rgb = [128, 128, 128];

/** Writes scenes (and optionally their instance views) as one PNG for a quick look. */
export async function writeContactSheet(
  path: string,
  scenes: readonly Scene[],
  options: SceneSheetOptions = {},
): Promise<RgbImage> {
  const tiles = scenes.flatMap((s) =>
    options.masks ? [sceneImage(s), instanceView(s)] : [sceneImage(s)],
  );
  const side = Math.max(1, Math.ceil(Math.sqrt(scenes.length)));
  const columns = options.columns ?? (options.masks ? 2 * side : side);
  const gap = options.gap ?? 2;
  const sheet = contactSheet(
    tiles.map((t) => enlargeImage(t, options.scale ?? 2)),
    columns,
    { gap, margin: gap, background: SHEET_BACKGROUND },
  );
  await writePng(path, sheet);
  return sheet;
}
