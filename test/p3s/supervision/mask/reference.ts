// Loads test/fixtures/mask/reference.json, written by tools/make_mask_fixtures.py from scipy and
// scikit-image.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../../helpers/paths.js';

export interface Reference {
  versions: Record<string, string>;
  gaussian: {
    inputs: Record<string, { h: number; w: number; data: number[] }>;
    cases: {
      input: string;
      sigma: number;
      mode: 'reflect' | 'nearest' | 'constant' | 'mirror';
      truncate: number;
      output: number[];
    }[];
  };
  otsu: { name: string; nbins: number; values: number[]; threshold: number }[];
  histogram: { name: string; nbins: number; values: number[]; counts: number[]; edges: number[] }[];
  label: {
    name: string;
    h: number;
    w: number;
    connectivity: 4 | 8 | null;
    binary: string;
    labels: string;
    count: number;
  }[];
  morphology: {
    name: string;
    h: number;
    w: number;
    radius: number;
    input: string;
    dilation: string;
    erosion: string;
  }[];
  resize: {
    name: string;
    h: number;
    w: number;
    outH: number;
    outW: number;
    input: number[];
    output: number[];
  }[];
}

let cached: Reference | undefined;

export function reference(): Reference {
  cached ??= JSON.parse(
    readFileSync(join(repoRoot(), 'test', 'fixtures', 'mask', 'reference.json'), 'utf8'),
  ) as Reference;
  return cached;
}

/** '0110…' → Uint8Array of 0/1. */
export function bits(s: string): Uint8Array {
  return Uint8Array.from(s, (c) => (c === '1' ? 1 : 0));
}

/** Base-36 label string → label numbers. */
export function labelDigits(s: string): Int32Array {
  return Int32Array.from(s, (c) => parseInt(c, 36));
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}
