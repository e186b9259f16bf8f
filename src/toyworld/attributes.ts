// The toy world's vocabulary: shapes, named colours, patterns and backgrounds, with the words
// captions use for them. Order matters only for display; nothing is indexed by position.

export type Rgb = readonly [number, number, number];

export const SHAPES = [
  'circle',
  'square',
  'triangle',
  'star',
  'heart',
  'diamond',
  'cross',
  'ring',
] as const;
export type Shape = (typeof SHAPES)[number];

export const COLOUR_NAMES = [
  'red',
  'green',
  'blue',
  'yellow',
  'purple',
  'orange',
  'white',
  'black',
] as const;
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
  white: { rgb: [250, 250, 250], ink: [135, 135, 140] },
  black: { rgb: [22, 22, 26], ink: [150, 150, 155] },
};

export const PATTERNS = ['solid', 'stripes', 'dots', 'checks'] as const;
export type Pattern = (typeof PATTERNS)[number];

/** Caption adjective per pattern; solid objects get none ("a red star"). */
export const PATTERN_ADJECTIVES: Readonly<Record<Pattern, string>> = {
  solid: '',
  stripes: 'striped',
  dots: 'dotted',
  checks: 'checkered',
};

export const BACKGROUNDS = [
  'snow',
  'beach',
  'grass',
  'brick-wall',
  'water',
  'desert',
  'forest',
  'wooden-floor',
  'night',
  'city',
] as const;
export type BackgroundName = (typeof BACKGROUNDS)[number];

/** The context phrase that ends a caption, in DreamBench's wording where it has one. */
export const BACKGROUND_PHRASES: Readonly<Record<BackgroundName, string>> = {
  snow: 'in the snow',
  beach: 'on the beach',
  grass: 'on the grass',
  'brick-wall': 'in front of a brick wall',
  water: 'on the water',
  desert: 'in the desert',
  forest: 'in the forest',
  'wooden-floor': 'on a wooden floor',
  night: 'at night',
  city: 'with a city in the background',
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
