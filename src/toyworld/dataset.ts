// Deterministic dataset splits by seed range: train and held-out draw from the same distribution
// but never share a seed, so a held-out scene is never a training image.

import { assertSeed } from './random.js';
import { generateScene, type BBox, type Point, type Scene, type SceneOptions } from './scene.js';

export type Split = 'train' | 'heldout';

/** Half-open seed ranges [start, end). */
export const SPLIT_SEEDS: Readonly<Record<Split, { start: number; end: number }>> = {
  train: { start: 0, end: 0x80000000 },
  heldout: { start: 0x80000000, end: 0x100000000 },
};

/** The seed of the index-th scene of a split. */
export function splitSeed(split: Split, index: number): number {
  const range = SPLIT_SEEDS[split];
  if (!Number.isInteger(index) || index < 0 || index >= range.end - range.start) {
    throw new RangeError(
      `Expected an integer in [0, ${range.end - range.start}) for index but received ${index}`,
    );
  }
  const seed = range.start + index;
  assertSeed(seed);
  return seed;
}

export interface SplitOptions extends SceneOptions {
  /** First index within the split. Default 0. */
  start?: number;
  /** Number of scenes; default: until the split's seeds run out (iterate lazily). */
  count?: number;
}

/** Scenes start, start + 1, ... of a split, generated lazily. */
export function* iterateSplit(split: Split, options: SplitOptions = {}): Generator<Scene> {
  const start = options.start ?? 0;
  const range = SPLIT_SEEDS[split];
  const end = options.count === undefined ? range.end - range.start : start + options.count;
  for (let i = start; i < end; i++) yield generateScene(splitSeed(split, i), options);
}

/** The labels of one object, without its mask: what a dataset's JSON lines hold. */
export interface ObjectLabel {
  shape: string;
  colour: string;
  pattern: string;
  bbox: BBox;
  centre: Point;
  point: Point;
  area: number;
  visibleFraction: number;
}

export interface SceneLabel {
  seed: number | null;
  size: number;
  background: string;
  caption: string;
  objects: ObjectLabel[];
}

/** JSON-friendly labels of a scene (masks are in scene.instances). */
export function sceneLabel(scene: Scene): SceneLabel {
  return {
    seed: scene.seed,
    size: scene.size,
    background: scene.background,
    caption: scene.caption,
    objects: scene.objects.map((o) => ({
      shape: o.shape,
      colour: o.colour,
      pattern: o.pattern,
      bbox: o.bbox,
      centre: o.centre,
      point: o.point,
      area: o.area,
      visibleFraction: o.visibleFraction,
    })),
  };
}
