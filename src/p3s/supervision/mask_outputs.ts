// What `p3s mask` writes for each reference photo: the subject and distractor masks (PNG),
// an overlay (masks tinted over the photo, clicks drawn), the filled photo, and a JSON summary.
import { mkdirSync } from 'node:fs';
import { basename, extname, join } from 'node:path';
import { writeJsonAtomic } from '../../io/json_file.js';
import { writePng, type RgbImage } from '../../io/image.js';
import { writingTo } from '../../training/errors.js';
import type { Point } from './annotations.js';
import type { RngrImageResult } from './rngr.js';

const SUBJECT_TINT = [40, 200, 80] as const;
const DISTRACTOR_TINT = [230, 60, 50] as const;

export function maskToImage(mask: Uint8Array, width: number, height: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < mask.length; i++) if (mask[i]) data.fill(255, 3 * i, 3 * i + 3);
  return { width, height, data };
}

function drawMarker(img: RgbImage, [x, y]: Point, colour: readonly number[]): void {
  const r = Math.max(3, Math.round(Math.min(img.width, img.height) / 60));
  const cx = Math.round(x);
  const cy = Math.round(y);
  for (let dy = -r - 1; dy <= r + 1; dy++) {
    for (let dx = -r - 1; dx <= r + 1; dx++) {
      const px = cx + dx;
      const py = cy + dy;
      if (px < 0 || py < 0 || px >= img.width || py >= img.height) continue;
      const d = Math.sqrt(dx * dx + dy * dy);
      const o = 3 * (py * img.width + px);
      if (d <= r - 1) img.data.set(colour, o);
      else if (d <= r + 1) img.data.set([255, 255, 255], o); // white ring so it shows on any colour
    }
  }
}

/** The photo with the subject tinted green, the distractor red, and the clicks drawn. */
export function overlay(r: RngrImageResult): RgbImage {
  const { width, height, data } = r.image;
  const out = Uint8Array.from(data);
  const tint = (mask: Uint8Array, colour: readonly number[]): void => {
    for (let i = 0; i < mask.length; i++) {
      if (!mask[i]) continue;
      for (let c = 0; c < 3; c++)
        out[3 * i + c] = Math.round(0.55 * out[3 * i + c]! + 0.45 * colour[c]!);
    }
  };
  if (r.distractor) tint(r.distractor.mask, DISTRACTOR_TINT);
  tint(r.subject.mask, SUBJECT_TINT);
  const img = { width, height, data: out };
  for (const p of r.positive) drawMarker(img, p, SUBJECT_TINT);
  for (const p of r.negative) drawMarker(img, p, DISTRACTOR_TINT);
  return img;
}

export interface MaskSummaryEntry {
  image: string;
  width: number;
  height: number;
  positive: Point[];
  negative: Point[];
  propagated: boolean;
  propagationScores: { positive: number; negative: number | null } | null;
  subject: {
    threshold: number;
    area: number;
    components: number;
    keptComponents: number[];
    fallbacks: string[];
  };
  distractor: { threshold: number; area: number; components: number; fallbacks: string[] } | null;
  files: Record<string, string>;
}

/** Writes every output of one run into outDir; returns the summary (also written as summary.json). */
export async function writeMaskOutputs(
  results: RngrImageResult[],
  outDir: string,
  extra: Record<string, unknown> = {},
): Promise<MaskSummaryEntry[]> {
  return writingTo(outDir, 'write the masks into', () => writeAll(results, outDir, extra));
}

async function writeAll(
  results: RngrImageResult[],
  outDir: string,
  extra: Record<string, unknown>,
): Promise<MaskSummaryEntry[]> {
  mkdirSync(outDir, { recursive: true });
  const summary: MaskSummaryEntry[] = [];
  const used = new Set<string>();
  for (const r of results) {
    const files = await writeImages(r, outDir, uniqueStem(r.name, used));
    summary.push(summaryEntry(r, files));
  }
  const path = join(outDir, 'summary.json');
  writeJsonAtomic(path, { ...extra, images: summary });
  return summary;
}

/** The photo's file name without extension, numbered from -2 when two photos share it. */
function uniqueStem(name: string, used: Set<string>): string {
  const base = basename(name, extname(name));
  let stem = base;
  for (let k = 2; used.has(stem); k++) stem = `${base}-${k}`;
  used.add(stem);
  return stem;
}

/** Writes one photo's PNGs; returns their file names by role. */
async function writeImages(
  r: RngrImageResult,
  outDir: string,
  stem: string,
): Promise<Record<string, string>> {
  const files: Record<string, string> = {
    subjectMask: `${stem}.subject-mask.png`,
    overlay: `${stem}.overlay.png`,
    filled: `${stem}.filled.png`,
  };
  await writePng(
    join(outDir, files.subjectMask!),
    maskToImage(r.subject.mask, r.subject.width, r.subject.height),
  );
  if (r.distractor) {
    files.distractorMask = `${stem}.distractor-mask.png`;
    await writePng(
      join(outDir, files.distractorMask),
      maskToImage(r.distractor.mask, r.distractor.width, r.distractor.height),
    );
  }
  await writePng(join(outDir, files.overlay!), overlay(r));
  await writePng(join(outDir, files.filled!), r.filled);
  return files;
}

function summaryEntry(r: RngrImageResult, files: Record<string, string>): MaskSummaryEntry {
  return {
    image: r.name,
    width: r.image.width,
    height: r.image.height,
    positive: r.positive,
    negative: r.negative,
    propagated: r.propagated !== null,
    propagationScores: r.propagated
      ? { positive: r.propagated.positiveScore, negative: r.propagated.negativeScore }
      : null,
    subject: {
      threshold: r.subject.threshold,
      area: r.subject.maskArea,
      components: r.subject.componentCount,
      keptComponents: r.subject.keptLabels,
      fallbacks: r.subject.fallbacks.map((f) => f.message),
    },
    distractor: r.distractor
      ? {
          threshold: r.distractor.threshold,
          area: r.distractor.maskArea,
          components: r.distractor.componentCount,
          fallbacks: r.distractor.fallbacks.map((f) => f.message),
        }
      : null,
    files,
  };
}
