// Captions in the DreamBench style: "a red striped star on the beach". Several objects are
// listed in the order given (scene.ts passes them left to right), identical ones counted:
// "two red stars and a blue dotted circle in the snow".

import {
  BACKGROUNDS,
  BACKGROUND_PHRASES,
  COLOUR_NAMES,
  PATTERNS,
  PATTERN_ADJECTIVES,
  SHAPES,
  type BackgroundName,
  type ColourName,
  type ObjectAttributes,
  type Shape,
} from './attributes.js';

const NUMBER_WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight'];

export function pluralShape(shape: Shape): string {
  return shape === 'cross' ? 'crosses' : `${shape}s`;
}

/** "a" or "an" for the phrase that follows it. */
export function article(phrase: string): string {
  return /^[aeiou]/i.test(phrase) ? 'an' : 'a';
}

/**
 * What a caption says of an object: its shape always, its colour and pattern where given ("a
 * star" leaves them unsaid, as DreamBench's "a dog" leaves the breed).
 */
export type ObjectWords = Pick<ObjectAttributes, 'shape'> & Partial<ObjectAttributes>;

/** "red striped star"; with count > 1, "red striped stars". */
export function describeObject(attrs: ObjectWords, count = 1): string {
  const noun = count > 1 ? pluralShape(attrs.shape) : attrs.shape;
  const pattern = attrs.pattern === undefined ? '' : PATTERN_ADJECTIVES[attrs.pattern];
  return [attrs.colour, pattern, noun].filter((w) => w).join(' ');
}

/** "a red star", "an orange dotted heart", "two blue rings". */
export function countedPhrase(attrs: ObjectWords, count = 1): string {
  const description = describeObject(attrs, count);
  const quantity = count === 1 ? article(description) : (NUMBER_WORDS[count] ?? String(count));
  return `${quantity} ${description}`;
}

/** "a", "a and b", "a, b and c". */
export function joinList(items: readonly string[]): string {
  if (items.length <= 1) return items.join('');
  return `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}

/** The objects part of a caption, objects described alike grouped where the first of them stands. */
export function objectsPhrase(objects: readonly ObjectWords[]): string {
  const groups: { attrs: ObjectWords; count: number }[] = [];
  for (const o of objects) {
    const group = groups.find((g) => describeObject(g.attrs) === describeObject(o));
    if (group) group.count++;
    else groups.push({ attrs: o, count: 1 });
  }
  return joinList(groups.map((g) => countedPhrase(g.attrs, g.count)));
}

export function captionFor(objects: readonly ObjectWords[], background: BackgroundName): string {
  return `${objectsPhrase(objects)} ${BACKGROUND_PHRASES[background]}`;
}

/**
 * A subject prompt with an identifier token in place of the subject's colour and pattern, as
 * DreamBench writes "a sks dog on the beach": `subjectPrompt('[V]', 'star', 'beach')` gives
 * "a [V] star on the beach".
 */
export function subjectPrompt(token: string, shape: Shape, background: BackgroundName): string {
  return `${article(token)} ${token} ${shape} ${BACKGROUND_PHRASES[background]}`;
}

/**
 * The inverse of describeObject for one object: "blue striped circle" or "red star" (solid) ->
 * its attributes; anything else is refused with the words the world knows.
 */
export function parseObject(text: string): ObjectAttributes {
  const words = text.trim().toLowerCase().split(/\s+/);
  const [colour, ...rest] = words;
  const shape = rest.pop();
  const adjective = rest.join(' ');
  const pattern = PATTERNS.find((p) => PATTERN_ADJECTIVES[p] === adjective);
  if (
    !COLOUR_NAMES.includes(colour as ColourName) ||
    !SHAPES.includes(shape as Shape) ||
    pattern === undefined
  ) {
    const adjectives = PATTERNS.map((p) => PATTERN_ADJECTIVES[p]).filter((a) => a);
    throw new RangeError(
      `Expected "<colour> [${adjectives.join('|')}] <shape>" (colours: ${COLOUR_NAMES.join(', ')}; shapes: ${SHAPES.join(', ')}) but received ${JSON.stringify(text)}`,
    );
  }
  return { colour: colour as ColourName, pattern, shape: shape as Shape };
}

/** The context a prompt names (the background phrase it contains), or null. */
export function promptBackground(prompt: string): BackgroundName | null {
  const lower = prompt.toLowerCase();
  return BACKGROUNDS.find((b) => lower.includes(BACKGROUND_PHRASES[b])) ?? null;
}
