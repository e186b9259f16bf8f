// What every `p3s generate` writes and starts from, whichever method made the model: each image's
// starting noise from its own seed, the size check, the file names and the contact sheet. P3S's
// generation (generate.ts) and the baselines' (src/baselines/generate.ts) share them, so the
// methods' images compare seed for seed and file for file.
import { join } from 'node:path';
import { randn } from '../engine/creation.js';
import * as ops from '../engine/ops.generated.js';
import { Generator } from '../engine/random.js';
import { tidy } from '../engine/scope.js';
import type { Tensor } from '../engine/tensor.js';
import { contactSheet, writePng, type RgbImage } from '../io/image.js';
import { writingTo } from '../training/errors.js';

/** x_T before the scheduler's initNoiseSigma, (B, C, h, w): image k's noise from Generator(seeds[k]). */
export function seedNoise(
  seeds: readonly number[],
  shape: readonly [number, number, number],
): Tensor {
  return tidy(() =>
    ops.cat(
      seeds.map((s) => randn([1, ...shape], { generator: new Generator(s) })),
      0,
    ),
  );
}

/** Height and width, each refused unless a positive multiple of the VAE's factor f. */
export function checkOutputSize(height: number, width: number, f: number): void {
  if (height % f || width % f || height < f || width < f)
    throw new RangeError(
      `Expected height and width to be positive multiples of ${f} but received ${height}×${width}`,
    );
}

/** A prompt as a file-name part: lower case, dashes, at most 48 characters. */
export function slug(text: string): string {
  const s = text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 48)
    .replace(/-+$/, '');
  return s || 'prompt';
}

/** "<prompt index>-<slug>-seed<seed>.png": sorts by prompt, then seed. */
export function imageFileName(promptIndex: number, prompt: string, seed: number): string {
  return `${String(promptIndex).padStart(3, '0')}-${slug(prompt)}-seed${seed}.png`;
}

/** One PNG with its text chunks, written so that a failure names the file. */
export async function writeImage(
  path: string,
  image: RgbImage,
  text: Record<string, string>,
): Promise<void> {
  await writingTo(path, 'write the image', () => writePng(path, image, { text }));
}

/** <outDir>/contact-sheet.png: every image, one row per prompt of `perPrompt` images. */
export async function writeContactSheet(
  outDir: string,
  images: readonly RgbImage[],
  perPrompt: number,
  text: Record<string, string>,
): Promise<string> {
  const path = join(outDir, 'contact-sheet.png');
  const sheet = contactSheet([...images], perPrompt, { gap: 2 });
  await writingTo(path, 'write the contact sheet', () => writePng(path, sheet, { text }));
  return path;
}
