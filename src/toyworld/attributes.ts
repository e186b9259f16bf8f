// The toy world's vocabulary: shapes, named colours, patterns and backgrounds, with the words
// captions use for them. Order matters only for display; nothing is indexed by position.

export type Rgb = readonly [number, number, number];

// Five silhouettes that stay apart after the VAE's 4× downsampling: round, boxy, pointed,
// spiky and plus-shaped. (Hearts, diamonds and rings read as circles and squares at that scale.)
export const SHAPES = ['circle', 'square', 'triangle', 'star', 'cross'] as const;
export type Shape = (typeof SHAPES)[number];

// Six saturated hues; white and black are left out, as they vanish on snow and at night.
export const COLOUR_NAMES = ['red', 'green', 'blue', 'yellow', 'purple', 'orange'] as const;
export type ColourName = (typeof COLOUR_NAMES)[number];

export interface ColourDef {
  /** Fill colour. Saturated and far apart so each stays nameable at 64 px and on any background. */
  readonly rgb: Rgb;
  /** Pattern ink: same hue, strongly different lightness, so "red striped" still reads as red. */
  readonly ink: Rgb;
}

export const COLOURS: Readonly<Record<ColourName, ColourDef>> = {
  red: { rgb: [222, 30, 38], ink: [105, 5, 12] },
  green: { rgb: [40, 190, 70], ink: [5, 85, 25] },
  blue: { rgb: [35, 80, 230], ink: [165, 195, 255] },
  yellow: { rgb: [252, 218, 30], ink: [150, 110, 0] },
  purple: { rgb: [150, 55, 200], ink: [225, 185, 250] },
  orange: { rgb: [252, 135, 18], ink: [140, 55, 0] },
};

// Coarse patterns only: dots were finer than a latent cell on most objects.
export const PATTERNS = ['solid', 'stripes', 'checks'] as const;
export type Pattern = (typeof PATTERNS)[number];

/** Caption adjective per pattern; solid objects get none ("a red star"). */
export const PATTERN_ADJECTIVES: Readonly<Record<Pattern, string>> = {
  solid: '',
  stripes: 'striped',
  checks: 'checkered',
};

// Six scenes of distinct colour and coarse texture (water, desert, forest and wooden floor were
// dropped: they looked like night, beach, grass and desert).
export const BACKGROUNDS = ['snow', 'beach', 'grass', 'brick-wall', 'night', 'city'] as const;
export type BackgroundName = (typeof BACKGROUNDS)[number];

/** The context phrase that ends a caption, in DreamBench's wording where it has one. */
export const BACKGROUND_PHRASES: Readonly<Record<BackgroundName, string>> = {
  snow: 'in the snow',
  beach: 'on the beach',
  grass: 'on the grass',
  'brick-wall': 'in front of a brick wall',
  night: 'at night',
  city: 'with a city in the background',
};

/** Chance levels of reading attributes: one uniform guess among the world's values. */
export const CHANCE = {
  colour: 1 / COLOUR_NAMES.length,
  shape: 1 / SHAPES.length,
  pattern: 1 / PATTERNS.length,
  background: 1 / BACKGROUNDS.length,
  colourAndPattern: 1 / (COLOUR_NAMES.length * PATTERNS.length),
  all: 1 / (COLOUR_NAMES.length * PATTERNS.length * SHAPES.length * BACKGROUNDS.length),
};

/** What identifies an object: a subject is one fixed combination of these. */
export interface ObjectAttributes {
  shape: Shape;
  colour: ColourName;
  pattern: Pattern;
}

export function sameAttributes(a: ObjectAttributes, b: ObjectAttributes): boolean {
  return a.shape === b.shape && a.colour === b.colour && a.pattern === b.pattern;
}

/** The named colour nearest to an RGB value (squared Euclidean distance to the fill colours). */
export function nearestColour(r: number, g: number, b: number): ColourName {
  let best: ColourName = COLOUR_NAMES[0];
  let bestDist = Infinity;
  for (const name of COLOUR_NAMES) {
    const [cr, cg, cb] = COLOURS[name].rgb;
    const d = (r - cr) ** 2 + (g - cg) ** 2 + (b - cb) ** 2;
    if (d < bestDist) {
      bestDist = d;
      best = name;
    }
  }
  return best;
}

function assertMember<T extends string>(list: readonly T[], value: string, what: string): T {
  if (!(list as readonly string[]).includes(value)) {
    throw new RangeError(
      `Expected one of ${list.join(', ')} for ${what} but received ${JSON.stringify(value)}`,
    );
  }
  return value as T;
}

export const parseShape = (v: string): Shape => assertMember(SHAPES, v, 'shape');
export const parseColour = (v: string): ColourName => assertMember(COLOUR_NAMES, v, 'colour');
export const parsePattern = (v: string): Pattern => assertMember(PATTERNS, v, 'pattern');
export const parseBackground = (v: string): BackgroundName =>
  assertMember(BACKGROUNDS, v, 'background');
