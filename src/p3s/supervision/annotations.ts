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
// orientation is applied. At least one image needs a positive point.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';

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

function parsePoints(value: unknown, where: string): Point[] {
  if (value === undefined) return [];
  if (!Array.isArray(value))
    throw new AnnotationError(
      `Expected an array of [x, y] points for ${where} but received ${JSON.stringify(value)}`,
    );
  return value.map((p, i) => {
    if (
      !Array.isArray(p) ||
      p.length !== 2 ||
      !p.every((c) => typeof c === 'number' && Number.isFinite(c))
    ) {
      throw new AnnotationError(
        `Expected [x, y] numbers for ${where}[${i}] but received ${JSON.stringify(p)}`,
      );
    }
    return [p[0], p[1]] as Point;
  });
}

/** Validates a parsed annotation object; relative image paths resolve against baseDir. */
export function parseAnnotation(json: unknown, baseDir: string): SubjectAnnotation {
  if (json === null || typeof json !== 'object' || Array.isArray(json))
    throw new AnnotationError('The annotation must be a JSON object');
  const obj = json as Record<string, unknown>;
  if (obj.version !== undefined && obj.version !== 1)
    throw new AnnotationError(
      `Unsupported annotation version ${JSON.stringify(obj.version)}; this p3s reads version 1`,
    );
  const identifier = obj.identifier ?? 'sks';
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
    return {
      path: isAbsolute(entry.path) ? entry.path : resolve(baseDir, entry.path),
      positive: parsePoints(entry.positive, `images[${i}].positive`),
      negative: parsePoints(entry.negative, `images[${i}].negative`),
    };
  });
  if (!images.some((im) => im.positive.length > 0)) {
    throw new AnnotationError(
      'Expected a positive point on at least one image (click the subject you want)',
    );
  }
  return { identifier, classWord: classWord.trim(), images };
}

export function readAnnotation(path: string): SubjectAnnotation {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new AnnotationError(`Cannot read annotation ${path}: ${(err as Error).message}`);
  }
  return parseAnnotation(json, dirname(path));
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
