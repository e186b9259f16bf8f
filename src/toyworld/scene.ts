// Scenes: a resolution-independent spec (background + objects in [0, 1]² coordinates), sampled
// from a seed with placement that keeps every object mostly visible, then rendered with exact
// instance masks. Rendering supersamples each pixel (2×2 when antialiased); a pixel belongs to the
// topmost object covering at least half of it, so masks match what is drawn.

import {
  BACKGROUNDS,
  COLOURS,
  COLOUR_NAMES,
  PATTERNS,
  SHAPES,
  type BackgroundName,
  type ObjectAttributes,
  type Rgb,
} from './attributes.js';
import { makeBackground } from './backgrounds.js';
import { captionFor } from './captions.js';
import { Rng, assertSeed } from './random.js';
import { patternTest, shapeExtent, shapeTest } from './shapes.js';

export interface Point {
  x: number;
  y: number;
}

/** Pixel box, end-exclusive: x0 ≤ x < x1, y0 ≤ y < y1. */
export interface BBox {
  x0: number;
  y0: number;
  x1: number;
  y1: number;
}

export interface ObjectSpec extends ObjectAttributes {
  /** Centre, as a fraction of the image side. */
  x: number;
  y: number;
  /** Radius of the shape's unit square, as a fraction of the image side. */
  radius: number;
  /** Radians, clockwise. Kept small so a square never turns into a diamond. */
  rotation: number;
  /** Brightness jitter in [-1, 1]: the same subject under slightly different light. */
  tint: number;
}

export interface SceneSpec {
  background: BackgroundName;
  backgroundSeed: number;
  /** Drawing order: later objects cover earlier ones. */
  objects: ObjectSpec[];
}

export interface RenderOptions {
  /** Image side in pixels (square images). Default 64. */
  size?: number;
  /** 2×2 supersampling of object edges and patterns. Default true. */
  antialias?: boolean;
  /**
   * 2×2 supersampling of the background too: smoother mortar and plank lines, but the background
   * then costs four times as much (about 2 ms instead of 0.5 at 64 px). Default false.
   */
  antialiasBackground?: boolean;
  /** Soft drop shadows on the ground, to the lower right. Default true. */
  shadows?: boolean;
}

export interface SceneObject extends ObjectAttributes {
  /** Position in drawing order (its instance id is index + 1). */
  index: number;
  spec: ObjectSpec;
  /** The colours actually drawn (after tint). */
  fill: Rgb;
  ink: Rgb;
  /** Geometric centre and radius in pixels. */
  centre: Point;
  radius: number;
  /** Box of the visible mask. */
  bbox: BBox;
  /** Visible pixels. */
  area: number;
  /** Pixels the object would have with nothing in front of it. */
  fullArea: number;
  visibleFraction: number;
  /** The mask's most interior pixel: where a user would click. */
  point: Point;
  /** size × size, 1 where this object is the visible one. */
  mask: Uint8Array;
}

export interface Scene {
  /** The seed it was generated from; null for scenes rendered from a hand-made spec. */
  seed: number | null;
  size: number;
  background: BackgroundName;
  /** size × size × 3, row-major RGB. */
  rgb: Uint8Array;
  /** size × size, 0 for background, index + 1 for objects. */
  instances: Uint8Array;
  objects: SceneObject[];
  caption: string;
  spec: SceneSpec;
}

export interface PlacementOptions {
  /** Smallest visible share of every object once all are placed. Default 0.6. */
  minVisible?: number;
  /** Tries per object before giving up on it. Default 60. */
  maxAttempts?: number;
}

export interface SceneOptions extends RenderOptions, PlacementOptions {
  /** Number of objects; 1 or 2 reads best at 64 px (more works but crowds). Default: 1 or 2. */
  objectCount?: number;
  background?: BackgroundName;
  /** Fixed attributes for the first objects; missing fields are sampled. */
  objects?: Partial<ObjectAttributes>[];
  /** Radius range as a fraction of the side. Default depends on the object count. */
  radius?: [number, number];
  /** Where objects go: anywhere they fit (default), or at fixed slots (`slotObjects`). */
  layout?: Layout;
}

export const LAYOUTS = ['free', 'slots'] as const;
export type Layout = (typeof LAYOUTS)[number];

export const DEFAULT_SIZE = 64;
/**
 * Placement is judged at this resolution whatever the render size, so a spec is the same scene at
 * every size; visible shares hold exactly at 64 px antialiased and within a few percent otherwise.
 */
const PLACEMENT_SIZE = 64;
/** Smallest visible area at the placement resolution (pixels out of 64 × 64). */
const MIN_VISIBLE_PIXELS = 60;
const MAX_ROTATION = 0.25;
const SHADOW_STRENGTH = 0.32;

// Objects fill a large part of the scene: the shape must survive the VAE's 16×16 latents.
export function defaultRadius(count: number): [number, number] {
  if (count <= 1) return [0.24, 0.36];
  if (count === 2) return [0.18, 0.28];
  return [0.14, 0.22];
}

// ---------------------------------------------------------------------------------------------
// Rasterisation

interface Raster {
  x0: number;
  y0: number;
  w: number;
  h: number;
  /** Subsamples inside the shape per pixel, 0..ss². */
  count: Uint8Array;
  /** Sum of the colours of the inside subsamples, per pixel (only when colours were asked for). */
  sums: Float32Array | null;
}

function tinted(c: Rgb, tint: number): Rgb {
  const d = tint * 14;
  const clamp = (v: number) => Math.max(0, Math.min(255, Math.round(v + d)));
  return [clamp(c[0]), clamp(c[1]), clamp(c[2])];
}

export function objectColours(spec: ObjectSpec): { fill: Rgb; ink: Rgb } {
  const def = COLOURS[spec.colour];
  return { fill: tinted(def.rgb, spec.tint), ink: tinted(def.ink, spec.tint) };
}

function rasterize(spec: ObjectSpec, size: number, ss: number, colours: boolean): Raster {
  const cx = spec.x * size;
  const cy = spec.y * size;
  const r = spec.radius * size;
  const reach = r * shapeExtent(spec.shape) + 1;
  const x0 = Math.max(0, Math.floor(cx - reach));
  const y0 = Math.max(0, Math.floor(cy - reach));
  const x1 = Math.min(size, Math.ceil(cx + reach));
  const y1 = Math.min(size, Math.ceil(cy + reach));
  const w = Math.max(0, x1 - x0);
  const h = Math.max(0, y1 - y0);
  const count = new Uint8Array(w * h);
  const sums = colours ? new Float32Array(w * h * 3) : null;
  const inside = shapeTest(spec.shape);
  const inked = patternTest(spec.pattern);
  const { fill, ink } = objectColours(spec);
  const cos = Math.cos(spec.rotation);
  const sin = Math.sin(spec.rotation);
  const inv = 1 / r;
  for (let py = 0; py < h; py++) {
    for (let px = 0; px < w; px++) {
      const i = py * w + px;
      let n = 0;
      for (let sy = 0; sy < ss; sy++) {
        const dy = (y0 + py + (sy + 0.5) / ss - cy) * inv;
        for (let sx = 0; sx < ss; sx++) {
          const dx = (x0 + px + (sx + 0.5) / ss - cx) * inv;
          // Into the object's frame: undo its rotation.
          const u = dx * cos + dy * sin;
          const v = -dx * sin + dy * cos;
          if (!inside(u, v)) continue;
          n++;
          if (sums) {
            const c = inked(u, v) ? ink : fill;
            sums[i * 3] += c[0];
            sums[i * 3 + 1] += c[1];
            sums[i * 3 + 2] += c[2];
          }
        }
      }
      count[i] = n;
    }
  }
  return { x0, y0, w, h, count, sums };
}

// ---------------------------------------------------------------------------------------------
// Rendering

function validateSize(size: number): void {
  if (!Number.isInteger(size) || size < 16 || size > 1024) {
    throw new RangeError(`Expected an integer in [16, 1024] for size but received ${size}`);
  }
}

/** Objects left to right, as captions list them (like a person describing the picture). */
export function readingOrder(objects: readonly SceneObject[]): SceneObject[] {
  return [...objects].sort((a, b) => a.centre.x - b.centre.x || a.index - b.index);
}

/** Renders a spec. Deterministic: the same spec and options give the same bytes. */
export function renderScene(
  spec: SceneSpec,
  options: RenderOptions = {},
  seed: number | null = null,
): Scene {
  const size = options.size ?? DEFAULT_SIZE;
  validateSize(size);
  const ss = (options.antialias ?? true) ? 2 : 1;
  const buf = paintBackground(spec, size, options.antialiasBackground ? 2 : 1);
  const rasters = spec.objects.map((o) => rasterize(o, size, ss, true));
  if ((options.shadows ?? true) && rasters.length > 0)
    castShadows(buf, spec, rasters, size, ss * ss);
  const { instances, fullAreas } = compositeObjects(buf, rasters, size, ss * ss);
  const rgb = new Uint8Array(size * size * 3);
  for (let i = 0; i < rgb.length; i++) rgb[i] = Math.round(buf[i]!);
  const objects = spec.objects.map((o, k) =>
    describeInstance(o, k, instances, size, fullAreas[k]!),
  );
  const reading = readingOrder(objects);
  return {
    seed,
    size,
    background: spec.background,
    rgb,
    instances,
    objects,
    caption: captionFor(reading, spec.background),
    spec,
  };
}

/**
 * The background as float RGB. The painter's cost per sample dominates rendering, so one
 * sample per pixel unless asked for more (`bss` per side); objects, whose edges carry the
 * masks, are always supersampled.
 */
function paintBackground(spec: SceneSpec, size: number, bss: number): Float32Array {
  const paint = makeBackground(spec.background, spec.backgroundSeed);
  const buf = new Float32Array(size * size * 3);
  const c = new Float32Array(3);
  const k = 1 / (bss * bss);
  for (let py = 0; py < size; py++) {
    for (let px = 0; px < size; px++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (let sy = 0; sy < bss; sy++) {
        for (let sx = 0; sx < bss; sx++) {
          paint((px + (sx + 0.5) / bss) / size, (py + (sy + 0.5) / bss) / size, c);
          r += c[0]!;
          g += c[1]!;
          b += c[2]!;
        }
      }
      const i = (py * size + px) * 3;
      buf[i] = r * k;
      buf[i + 1] = g * k;
      buf[i + 2] = b * k;
    }
  }
  return buf;
}

/** Shadows darken the ground only: each object's coverage shifted down-right, strongest wins. */
function castShadows(
  buf: Float32Array,
  spec: SceneSpec,
  rasters: Raster[],
  size: number,
  samples: number,
): void {
  const n = size * size;
  const shade = new Float32Array(n);
  rasters.forEach((ra, k) => {
    const off = Math.max(1, Math.round(spec.objects[k]!.radius * size * 0.14));
    for (let py = 0; py < ra.h; py++) {
      const y = ra.y0 + py + off;
      if (y >= size) break;
      for (let px = 0; px < ra.w; px++) {
        const x = ra.x0 + px + off;
        if (x >= size) break;
        const a = ra.count[py * ra.w + px]! / samples;
        if (a > shade[y * size + x]!) shade[y * size + x] = a;
      }
    }
  });
  for (let i = 0; i < n; i++) {
    const k = 1 - SHADOW_STRENGTH * shade[i]!;
    buf[i * 3] *= k;
    buf[i * 3 + 1] *= k;
    buf[i * 3 + 2] *= k;
  }
}

/** Objects in order, each over what is below; the instance map follows the half-coverage rule. */
function compositeObjects(
  buf: Float32Array,
  rasters: Raster[],
  size: number,
  samples: number,
): { instances: Uint8Array; fullAreas: number[] } {
  const instances = new Uint8Array(size * size);
  const fullAreas = rasters.map(() => 0);
  rasters.forEach((ra, k) => {
    for (let py = 0; py < ra.h; py++) {
      for (let px = 0; px < ra.w; px++) {
        const j = py * ra.w + px;
        const cnt = ra.count[j]!;
        if (cnt === 0) continue;
        const i = (ra.y0 + py) * size + ra.x0 + px;
        const keep = (samples - cnt) / samples;
        buf[i * 3] = ra.sums![j * 3]! / samples + keep * buf[i * 3]!;
        buf[i * 3 + 1] = ra.sums![j * 3 + 1]! / samples + keep * buf[i * 3 + 1]!;
        buf[i * 3 + 2] = ra.sums![j * 3 + 2]! / samples + keep * buf[i * 3 + 2]!;
        if (cnt * 2 >= samples) {
          instances[i] = k + 1;
          fullAreas[k]!++;
        }
      }
    }
  });
  return { instances, fullAreas };
}

function describeInstance(
  spec: ObjectSpec,
  index: number,
  instances: Uint8Array,
  size: number,
  fullArea: number,
): SceneObject {
  const id = index + 1;
  const mask = new Uint8Array(size * size);
  let area = 0;
  let x0 = size;
  let y0 = size;
  let x1 = 0;
  let y1 = 0;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const i = y * size + x;
      if (instances[i] !== id) continue;
      mask[i] = 1;
      area++;
      if (x < x0) x0 = x;
      if (y < y0) y0 = y;
      if (x >= x1) x1 = x + 1;
      if (y >= y1) y1 = y + 1;
    }
  }
  const bbox = area > 0 ? { x0, y0, x1, y1 } : { x0: 0, y0: 0, x1: 0, y1: 0 };
  const { fill, ink } = objectColours(spec);
  return {
    shape: spec.shape,
    colour: spec.colour,
    pattern: spec.pattern,
    index,
    spec,
    fill,
    ink,
    centre: { x: spec.x * size, y: spec.y * size },
    radius: spec.radius * size,
    bbox,
    area,
    fullArea,
    visibleFraction: fullArea > 0 ? area / fullArea : 0,
    point: interiorPoint(mask, size, size, bbox),
    mask,
  };
}

/**
 * The most interior pixel of a mask: largest chamfer (3-4) distance to the nearest pixel outside
 * it (the image border counts as outside), ties broken towards the centroid. Returns (-1, -1)
 * for an empty mask.
 */
export function interiorPoint(mask: Uint8Array, width: number, height: number, bbox?: BBox): Point {
  const box = bbox ?? { x0: 0, y0: 0, x1: width, y1: height };
  // Work on the box plus a one-pixel frame of "outside".
  const w = box.x1 - box.x0 + 2;
  const h = box.y1 - box.y0 + 2;
  if (w <= 2 || h <= 2) return { x: -1, y: -1 };
  const d = new Int32Array(w * h);
  const big = 1 << 28;
  let sx = 0;
  let sy = 0;
  let n = 0;
  for (let y = 1; y < h - 1; y++) {
    for (let x = 1; x < w - 1; x++) {
      const gx = box.x0 + x - 1;
      const gy = box.y0 + y - 1;
      if (mask[gy * width + gx]) {
        d[y * w + x] = big;
        sx += gx;
        sy += gy;
        n++;
      }
    }
  }
  if (n === 0) return { x: -1, y: -1 };
  for (let y = 1; y < h - 1; y++) {
    for (let x = 1; x < w - 1; x++) {
      const i = y * w + x;
      if (d[i] === 0) continue;
      d[i] = Math.min(d[i]!, d[i - 1]! + 3, d[i - w]! + 3, d[i - w - 1]! + 4, d[i - w + 1]! + 4);
    }
  }
  for (let y = h - 2; y >= 1; y--) {
    for (let x = w - 2; x >= 1; x--) {
      const i = y * w + x;
      if (d[i] === 0) continue;
      d[i] = Math.min(d[i]!, d[i + 1]! + 3, d[i + w]! + 3, d[i + w + 1]! + 4, d[i + w - 1]! + 4);
    }
  }
  const mx = sx / n;
  const my = sy / n;
  let best = -1;
  let bestTie = Infinity;
  let bx = -1;
  let by = -1;
  for (let y = 1; y < h - 1; y++) {
    for (let x = 1; x < w - 1; x++) {
      const v = d[y * w + x]!;
      if (v === 0 || v < best) continue;
      const gx = box.x0 + x - 1;
      const gy = box.y0 + y - 1;
      const tie = (gx - mx) ** 2 + (gy - my) ** 2;
      if (v > best || tie < bestTie) {
        best = v;
        bestTie = tie;
        bx = gx;
        by = gy;
      }
    }
  }
  return { x: bx, y: by };
}

// ---------------------------------------------------------------------------------------------
// Sampling

export interface PlacementItem extends ObjectAttributes {
  /** Radius range (fraction of the side) to draw from. */
  radius: [number, number];
  /** Optional range for the centre's x, e.g. to keep two look-alikes side by side. */
  xRange?: [number, number];
}

/**
 * Places objects one after another, each over the previous ones, rejecting positions that would
 * leave any object less than minVisible visible (judged on the 64 px grid). An object that cannot be
 * placed after maxAttempts is left out; the radius shrinks towards its minimum as tries fail.
 */
export function placeObjects(
  rng: Rng,
  items: readonly PlacementItem[],
  options: PlacementOptions = {},
): ObjectSpec[] {
  const minVisible = options.minVisible ?? 0.6;
  const maxAttempts = options.maxAttempts ?? 60;
  const size = PLACEMENT_SIZE;
  const ids = new Uint8Array(size * size);
  const full: number[] = [];
  const visible: number[] = [];
  const placed: ObjectSpec[] = [];
  const lost = new Int32Array(256);
  for (const item of items) {
    const [rLo, rHi] = item.radius;
    for (let attempt = 0; attempt < maxAttempts; attempt++) {
      const shrink = attempt / maxAttempts;
      const radius = rng.range(rLo, rHi - (rHi - rLo) * shrink);
      const reach = radius * shapeExtent(item.shape) + 0.01;
      const [xLo, xHi] = item.xRange ?? [0, 1];
      const lo = Math.max(reach, xLo);
      const hi = Math.min(1 - reach, xHi);
      const spec: ObjectSpec = {
        shape: item.shape,
        colour: item.colour,
        pattern: item.pattern,
        x: rng.range(lo, Math.max(lo, hi)),
        y: rng.range(reach, 1 - reach),
        radius,
        rotation: rng.range(-MAX_ROTATION, MAX_ROTATION),
        tint: rng.range(-1, 1),
      };
      // The same 2×2 half-coverage rule as the default render, so its masks obey minVisible exactly.
      const ra = rasterize(spec, size, 2, false);
      let area = 0;
      lost.fill(0, 0, placed.length + 1);
      for (let py = 0; py < ra.h; py++) {
        for (let px = 0; px < ra.w; px++) {
          if (ra.count[py * ra.w + px]! < 2) continue;
          area++;
          lost[ids[(ra.y0 + py) * size + ra.x0 + px]!]!++;
        }
      }
      if (area < MIN_VISIBLE_PIXELS) continue;
      let ok = true;
      for (let k = 0; k < placed.length && ok; k++) {
        const left = visible[k]! - lost[k + 1]!;
        ok = left >= MIN_VISIBLE_PIXELS && left >= minVisible * full[k]!;
      }
      if (!ok) continue;
      const id = placed.length + 1;
      for (let py = 0; py < ra.h; py++) {
        for (let px = 0; px < ra.w; px++) {
          if (ra.count[py * ra.w + px]! >= 2) ids[(ra.y0 + py) * size + ra.x0 + px] = id;
        }
      }
      for (let k = 0; k < placed.length; k++) visible[k] = visible[k]! - lost[k + 1]!;
      placed.push(spec);
      full.push(area);
      visible.push(area);
      break;
    }
  }
  return placed;
}

/** Radius range per object count in the slots layout: one size per count, a little jitter. */
export function slotRadius(count: number): [number, number] {
  if (count <= 1) return [0.3, 0.34];
  if (count === 2) return [0.19, 0.22];
  return [0.12, 0.15];
}
const SLOT_JITTER = 0.02;

/**
 * Objects at fixed slots, evenly spaced across the middle row, upright: an object of a given shape
 * then always covers the same cells, so a model that has only learned the average scene for a
 * caption still draws that shape's silhouette rather than the blob of many placements.
 */
export function slotObjects(rng: Rng, items: readonly PlacementItem[]): ObjectSpec[] {
  return items.map((item, k) => {
    const [rLo, rHi] = item.radius;
    // Always three draws per object, so streams stay aligned whatever the count.
    const radius = rng.range(rLo, rHi);
    const dx = rng.range(-SLOT_JITTER, SLOT_JITTER);
    const dy = rng.range(-SLOT_JITTER, SLOT_JITTER);
    const spec: ObjectSpec = {
      shape: item.shape,
      colour: item.colour,
      pattern: item.pattern,
      x: (k + 0.5) / items.length + dx,
      y: 0.5 + dy,
      radius,
      rotation: 0,
      tint: rng.range(-1, 1),
    };
    return spec;
  });
}

/** Random attributes, with any given fields kept. Always draws all three, to keep streams aligned. */
export function sampleAttributes(
  rng: Rng,
  fixed: Partial<ObjectAttributes> = {},
): ObjectAttributes {
  const shape = rng.pick(SHAPES);
  const colour = rng.pick(COLOUR_NAMES);
  const pattern = rng.pick(PATTERNS);
  return {
    shape: fixed.shape ?? shape,
    colour: fixed.colour ?? colour,
    pattern: fixed.pattern ?? pattern,
  };
}

/** The spec generateScene renders for a seed (resolution independent). */
export function sampleSceneSpec(seed: number, options: SceneOptions = {}): SceneSpec {
  assertSeed(seed);
  const rng = new Rng(seed);
  // Independent streams, so that fixing one choice leaves the others as they were.
  const layoutRng = rng.fork();
  const attrRng = rng.fork();
  const drawnCount = 1 + rng.int(2);
  const drawnBackground = rng.pick(BACKGROUNDS);
  const backgroundSeed = rng.uint32();
  const count = options.objectCount ?? Math.max(drawnCount, options.objects?.length ?? 0);
  if (!Number.isInteger(count) || count < 0 || count > 8) {
    throw new RangeError(`Expected an integer in [0, 8] for objectCount but received ${count}`);
  }
  const slots = options.layout === 'slots';
  const radius = options.radius ?? (slots ? slotRadius(count) : defaultRadius(count));
  const items: PlacementItem[] = [];
  for (let k = 0; k < count; k++) {
    items.push({ ...sampleAttributes(attrRng, options.objects?.[k]), radius });
  }
  return {
    background: options.background ?? drawnBackground,
    backgroundSeed,
    objects: slots ? slotObjects(layoutRng, items) : placeObjects(layoutRng, items, options),
  };
}

/** One scene from a seed: same seed and options, same bytes. */
export function generateScene(seed: number, options: SceneOptions = {}): Scene {
  return renderScene(sampleSceneSpec(seed, options), options, seed);
}
