// Captions that differ from a scene's own in exactly one attribute: the "hard" distractors of
// CLIP retrieval (quality.ts) and the hard negatives of the CLIP stage (clip_stage.ts). A model
// that only counts words ("bag of words") cannot tell them from the true caption.
import {
  BACKGROUNDS,
  COLOUR_NAMES,
  PATTERNS,
  SHAPES,
  type ObjectAttributes,
} from './attributes.js';
import { captionFor } from './captions.js';
import { hash32 } from './random.js';
import type { Scene } from './scene.js';

/** The caption with one attribute of the first object, or the background, changed. */
export function alteredCaption(scene: Scene, variant: number): string {
  const objects: ObjectAttributes[] = scene.objects.map((o) => ({
    shape: o.shape,
    colour: o.colour,
    pattern: o.pattern,
  }));
  const first = objects[0]!;
  const pick = <T>(values: readonly T[], current: T): T => {
    const others = values.filter((v) => v !== current);
    return others[hash32(scene.seed ?? 0, variant) % others.length]!;
  };
  let background = scene.background;
  switch (variant % 4) {
    case 0:
      objects[0] = { ...first, colour: pick(COLOUR_NAMES, first.colour) };
      break;
    case 1:
      objects[0] = { ...first, shape: pick(SHAPES, first.shape) };
      break;
    case 2:
      objects[0] = { ...first, pattern: pick(PATTERNS, first.pattern) };
      break;
    default:
      background = pick(BACKGROUNDS, background);
  }
  return captionFor(objects, background);
}
