// Look-alikes, the toy world's "two different dogs": scenes with the subject and a distractor of
// the same shape that differs only in colour or only in pattern, with a point on each (the
// positive and negative clicks of P3S), and subject reference sets built from them.

import {
  BACKGROUNDS,
  COLOUR_NAMES,
  PATTERNS,
  type BackgroundName,
  type ObjectAttributes,
} from './attributes.js';
import { Rng, assertSeed } from './random.js';
import {
  placeObjects,
  renderScene,
  sampleAttributes,
  type PlacementItem,
  type Point,
  type RenderOptions,
  type Scene,
  type SceneSpec,
} from './scene.js';

export type Difference = 'colour' | 'pattern';
export const DIFFERENCES: readonly Difference[] = ['colour', 'pattern'];

/** A look-alike of the subject: same shape, and exactly one of colour or pattern changed. */
export function lookalikeOf(
  rng: Rng,
  subject: ObjectAttributes,
  difference: Difference,
): ObjectAttributes {
  if (difference === 'colour') {
    return { ...subject, colour: rng.pick(COLOUR_NAMES.filter((c) => c !== subject.colour)) };
  }
  return { ...subject, pattern: rng.pick(PATTERNS.filter((p) => p !== subject.pattern)) };
}

export interface LookalikeScene {
  scene: Scene;
  /** Index into scene.objects of the subject. */
  subject: number;
  /** Index of the look-alike, or null when the scene has only the subject. */
  distractor: number | null;
  difference: Difference | null;
  /** A pixel well inside the subject's visible mask (the positive click). */
  positive: Point;
  /** A pixel well inside the distractor's visible mask (the negative click), or null. */
  negative: Point | null;
}

export interface LookalikePair extends LookalikeScene {
  distractor: number;
  difference: Difference;
  negative: Point;
}

export interface LookalikeOptions extends RenderOptions {
  /** What the distractor changes. Default: drawn at random. */
  difference?: Difference;
  /** Fixed subject attributes; missing ones are drawn. */
  subject?: Partial<ObjectAttributes>;
  background?: BackgroundName;
}

// Similar sizes, barely touching: the hard part should be telling them apart, not finding them.
const PAIR_RADIUS: [number, number] = [0.17, 0.24];
const PAIR_MIN_VISIBLE = 0.95;
// Alone, the subject may take more room: sizes vary more across a reference set.
const SINGLE_RADIUS: [number, number] = [0.2, 0.34];

function pairSpec(
  rng: Rng,
  subject: ObjectAttributes,
  distractor: ObjectAttributes | null,
  background: BackgroundName,
): { spec: SceneSpec; subject: number; distractor: number | null } {
  const backgroundSeed = rng.uint32();
  // Retry whole layouts in the (rare) case the second object finds no room.
  for (let attempt = 0; attempt < 20; attempt++) {
    const r = rng.range(PAIR_RADIUS[0], PAIR_RADIUS[1]);
    const size = (k: number): [number, number] => [r * (0.88 + 0.06 * k), r * (1.06 + 0.06 * k)];
    if (!distractor) {
      const objects = placeObjects(rng, [{ ...subject, radius: SINGLE_RADIUS }]);
      if (objects.length === 1)
        return { spec: { background, backgroundSeed, objects }, subject: 0, distractor: null };
      continue;
    }
    // Subject left or right, and drawn first or second, at random.
    const subjectLeft = rng.chance(0.5);
    const subjectFirst = rng.chance(0.5);
    const s: PlacementItem = {
      ...subject,
      radius: size(0),
      xRange: subjectLeft ? [0, 0.5] : [0.5, 1],
    };
    const d: PlacementItem = {
      ...distractor,
      radius: size(1),
      xRange: subjectLeft ? [0.5, 1] : [0, 0.5],
    };
    const objects = placeObjects(rng, subjectFirst ? [s, d] : [d, s], {
      minVisible: PAIR_MIN_VISIBLE,
    });
    if (objects.length === 2) {
      return {
        spec: { background, backgroundSeed, objects },
        subject: subjectFirst ? 0 : 1,
        distractor: subjectFirst ? 1 : 0,
      };
    }
  }
  throw new Error('Could not place a look-alike pair (should not happen with the default sizes)');
}

function assemble(
  spec: SceneSpec,
  subject: number,
  distractor: number | null,
  difference: Difference | null,
  options: RenderOptions,
  seed: number | null,
): LookalikeScene {
  const scene = renderScene(spec, options, seed);
  return {
    scene,
    subject,
    distractor,
    difference,
    positive: scene.objects[subject]!.point,
    negative: distractor === null ? null : scene.objects[distractor]!.point,
  };
}

/** A scene with the subject and one look-alike, and a click on each. */
export function makeLookalikePair(seed: number, options: LookalikeOptions = {}): LookalikePair {
  assertSeed(seed);
  const rng = new Rng(seed);
  const subject = sampleAttributes(rng, options.subject);
  const drawnDifference = rng.pick(DIFFERENCES);
  const drawnBackground = rng.pick(BACKGROUNDS);
  const difference = options.difference ?? drawnDifference;
  const distractor = lookalikeOf(rng, subject, difference);
  const layout = pairSpec(rng, subject, distractor, options.background ?? drawnBackground);
  return assemble(
    layout.spec,
    layout.subject,
    layout.distractor,
    difference,
    options,
    seed,
  ) as LookalikePair;
}

export interface SubjectReferenceSet {
  subject: ObjectAttributes;
  images: LookalikeScene[];
}

export interface ReferenceSetOptions extends RenderOptions {
  /** Number of reference images, 3–5 in the paper's setting. Default 4. */
  count?: number;
  subject?: Partial<ObjectAttributes>;
  /** How many images also show a look-alike. Default: half, rounded up. */
  withDistractor?: number;
}

/**
 * N images of one subject (fixed shape, colour and pattern) in different backgrounds, positions
 * and sizes; some also show a look-alike. This is what P3S fine-tunes on.
 */
export function makeSubjectReferenceSet(
  seed: number,
  options: ReferenceSetOptions = {},
): SubjectReferenceSet {
  assertSeed(seed);
  const count = options.count ?? 4;
  if (!Number.isInteger(count) || count < 1 || count > 32) {
    throw new RangeError(`Expected an integer in [1, 32] for count but received ${count}`);
  }
  const withDistractor = options.withDistractor ?? Math.ceil(count / 2);
  if (!Number.isInteger(withDistractor) || withDistractor < 0 || withDistractor > count) {
    throw new RangeError(
      `Expected an integer in [0, ${count}] for withDistractor but received ${withDistractor}`,
    );
  }
  const rng = new Rng(seed);
  const subject = sampleAttributes(rng, options.subject);
  // Distinct backgrounds while they last.
  const backgrounds: BackgroundName[] = [];
  while (backgrounds.length < count) backgrounds.push(...rng.shuffled(BACKGROUNDS));
  const hasDistractor = rng.shuffled(Array.from({ length: count }, (_, i) => i < withDistractor));
  const images: LookalikeScene[] = [];
  for (let i = 0; i < count; i++) {
    const imageRng = rng.fork();
    const difference = hasDistractor[i] ? imageRng.pick(DIFFERENCES) : null;
    const distractor = difference ? lookalikeOf(imageRng, subject, difference) : null;
    const layout = pairSpec(imageRng, subject, distractor, backgrounds[i]!);
    images.push(
      assemble(layout.spec, layout.subject, layout.distractor, difference, options, null),
    );
  }
  return { subject, images };
}
