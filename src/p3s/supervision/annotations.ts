// The subject annotation file: reference photos with positive/negative clicks.
//
// {
//   "version": 1,
//   "identifier": "sks",            // the rare token that will name the subject in prompts
//   "classWord": "dog",             // the subject's class, as in "a sks dog"
//   "images": [
//     { "path": "00.jpg", "positive": [[212, 305]], "negative": [[420, 290]] },
//     { "path": "01.jpg" }          // no points: they are propagated from the annotated photos
//   ]
// }
//
// Paths are relative to the annotation file. Points are pixel coordinates [x, y] (x to the right,
// y down, origin at the top-left pixel's corner) in the photo as displayed, i.e. after its EXIF
// orientation is applied. At least one image needs a positive point. Keys other than these are
// refused (a typo would otherwise drop clicks silently), except those starting with "_" (notes).
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { show } from '../../settings/kinds.js';
import { closestName } from '../../settings/closest.js';
import { DEFAULT_IDENTIFIER } from '../prompts.js';

export type Point = readonly [x: number, y: number];

export interface AnnotatedImage {
  /** Absolute path of the photo. */
  path: string;
  positive: Point[];
  negative: Point[];
}

export interface SubjectAnnotation {
  identifier: string;
  classWord: string;
  images: AnnotatedImage[];
}

export class AnnotationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AnnotationError';
  }
}

const FILE_KEYS = ['version', 'identifier', 'classWord', 'images'];
const IMAGE_KEYS = ['path', 'positive', 'negative'];

/** Refuses a key the format does not have, naming the known key it was probably meant to be. */
function checkKeys(obj: Record<string, unknown>, known: readonly string[], where: string): void {
  for (const key of Object.keys(obj)) {
    if (known.includes(key) || key.startsWith('_')) continue;
    const meant = closestName(key, known);
    throw new AnnotationError(
      `Unknown key ${JSON.stringify(key)} in ${where}` +
        `${meant ? `; did you mean ${JSON.stringify(meant)}?` : ''} ` +
        `(known keys: ${known.join(', ')}; keys starting with "_" are notes)`,
    );
  }
}

function parsePoints(value: unknown, where: string): Point[] {
  if (value === undefined) return [];
  if (!Array.isArray(value))
    throw new AnnotationError(
      `Expected an array of [x, y] points for ${where} but received ${show(value)}`,
    );
  return value.map((p, i) => {
    if (!Array.isArray(p) || p.length !== 2 || !p.every((c) => typeof c === 'number')) {
      throw new AnnotationError(
        `Expected [x, y] numbers for ${where}[${i}] but received ${show(p)}`,
      );
    }
    if (!p.every((c) => Number.isFinite(c)))
      throw new AnnotationError(
        `Expected [x, y] numbers for ${where}[${i}] but received ${show(p)}, which is not finite`,
      );
    return [p[0], p[1]] as Point;
  });
}

/** Refuses a point clicked as both positive and negative: it cannot be subject and look-alike. */
function checkNoPointTwice(image: AnnotatedImage, where: string): void {
  for (const [x, y] of image.positive) {
    if (image.negative.some(([nx, ny]) => nx === x && ny === y))
      throw new AnnotationError(
        `The point (${x}, ${y}) is both positive and negative in ${where} (${image.path}): ` +
          'put the positive point on the subject and the negative one on the look-alike',
      );
  }
}

/** Validates a parsed annotation object; relative image paths resolve against baseDir. */
export function parseAnnotation(json: unknown, baseDir: string): SubjectAnnotation {
  if (json === null || typeof json !== 'object' || Array.isArray(json))
    throw new AnnotationError('The annotation must be a JSON object');
  const obj = json as Record<string, unknown>;
  checkKeys(obj, FILE_KEYS, 'the annotation');
  if (obj.version !== undefined && obj.version !== 1)
    throw new AnnotationError(
      `Unsupported annotation version ${JSON.stringify(obj.version)}; this p3s reads version 1`,
    );
  const identifier = obj.identifier ?? DEFAULT_IDENTIFIER;
  const classWord = obj.classWord;
  if (typeof identifier !== 'string' || !/^\S+$/.test(identifier))
    throw new AnnotationError(
      `Expected one word for identifier but received ${JSON.stringify(identifier)}`,
    );
  if (typeof classWord !== 'string' || classWord.trim() === '')
    throw new AnnotationError('Expected a classWord (e.g. "dog") in the annotation');
  if (!Array.isArray(obj.images) || obj.images.length === 0)
    throw new AnnotationError('Expected at least one image in "images"');
  const images = obj.images.map((raw, i): AnnotatedImage => {
    const entry = typeof raw === 'string' ? { path: raw } : (raw as Record<string, unknown>);
    if (
      entry === null ||
      typeof entry !== 'object' ||
      typeof entry.path !== 'string' ||
      entry.path === ''
    ) {
      throw new AnnotationError(`Expected images[${i}] to be a path or an object with a "path"`);
    }
    checkKeys(entry, IMAGE_KEYS, `images[${i}]`);
    const image = {
      path: isAbsolute(entry.path) ? entry.path : resolve(baseDir, entry.path),
      positive: parsePoints(entry.positive, `images[${i}].positive`),
      negative: parsePoints(entry.negative, `images[${i}].negative`),
    };
    checkNoPointTwice(image, `images[${i}]`);
    return image;
  });
  if (!images.some((im) => im.positive.length > 0)) {
    throw new AnnotationError(
      'Expected a positive point on at least one image (click the subject you want)',
    );
  }
  return { identifier, classWord: classWord.trim(), images };
}

export function readAnnotation(path: string): SubjectAnnotation {
  let text: string;
  let json: unknown;
  try {
    text = readFileSync(path, 'utf8');
    json = JSON.parse(text);
  } catch (err) {
    throw new AnnotationError(`Cannot read annotation ${path}: ${(err as Error).message}`);
  }
  const huge = nonFiniteNumber(text);
  if (huge)
    throw new AnnotationError(
      `${path}: the number ${huge.text} (line ${huge.line}, column ${huge.column}) is not finite ` +
        '(too large for a double); points are pixel coordinates inside the photo',
    );
  try {
    return parseAnnotation(json, dirname(path));
  } catch (err) {
    if (err instanceof AnnotationError) throw new AnnotationError(`${path}: ${err.message}`);
    throw err;
  }
}

/**
 * The first number in a JSON text that JavaScript reads as ±Infinity ("1e999"), as written and
 * where: JSON.parse turns it into Infinity, which JSON.stringify would show as null.
 */
export function nonFiniteNumber(
  json: string,
): { text: string; line: number; column: number } | null {
  const token = /"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g; // strings are skipped whole
  for (let m = token.exec(json); m !== null; m = token.exec(json)) {
    if (m[0].startsWith('"') || Number.isFinite(Number(m[0]))) continue;
    const before = json.slice(0, m.index).split('\n');
    return { text: m[0], line: before.length, column: before.at(-1)!.length + 1 };
  }
  return null;
}

/** Throws unless every point lies inside a width×height image. */
export function checkPointsInside(
  points: readonly Point[],
  width: number,
  height: number,
  label: string,
): void {
  for (const [x, y] of points) {
    if (!(x >= 0 && x < width && y >= 0 && y < height)) {
      throw new AnnotationError(
        `Expected a point inside the ${width}×${height} image ${label} but received (${x}, ${y})`,
      );
    }
  }
}
