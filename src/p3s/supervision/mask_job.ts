// `p3s mask` as a library function: annotation file + CLIP weights -> masks and filled photos.
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { readImage } from '../../io/image.js';
import { CLIPVisionModel } from '../../models/clip/clip_vision_model.js';
import { CLIPImageProcessor } from '../../models/clip/image_processing.js';
import { readAnnotation, checkPointsInside, type SubjectAnnotation } from './annotations.js';
import { ClipPatchExtractor } from './clip_features.js';
import { DensePatchExtractor } from './dense_features.js';
import {
  buildSubjectMasks,
  type RngrImageInput,
  type RngrImageResult,
  type PatchFeatureExtractor,
  type MaskRefinement,
} from './rngr.js';
import type { SuppressionRule } from './mask/index.js';
import { writeMaskOutputs, type MaskSummaryEntry } from './mask_outputs.js';

export interface MaskJob {
  annotationPath: string;
  /** A CLIP vision (or full CLIP) model folder in the transformers layout. */
  clipFolder: string;
  outDir: string;
  layer?: number;
  /** Finer patch grid: CLIP on dense × dense sub-patch shifts (default 1; dense_features.ts). */
  dense?: number;
  sigma?: number;
  dilate?: number;
  propagate?: boolean;
  /** Eq. (2)'s negative step: 'compare' (default) or 'product' (as the paper writes it). */
  rule?: SuppressionRule;
  /** 'guided' (default): masks follow the photo's edges; 'none': the patch maps alone. */
  refine?: MaskRefinement;
  onProgress?: (done: number, total: number, name: string) => void;
  /** Replace CLIP (tests, other encoders). */
  extractor?: PatchFeatureExtractor;
}

export interface MaskJobResult {
  results: RngrImageResult[];
  summary: MaskSummaryEntry[];
  summaryPath: string;
}

export function loadClipExtractor(folder: string, layer = -1): ClipPatchExtractor {
  const model = CLIPVisionModel.fromPretrained(folder);
  model.eval();
  const processor = existsSync(join(folder, 'preprocessor_config.json'))
    ? CLIPImageProcessor.fromPretrained(folder)
    : undefined;
  return new ClipPatchExtractor(model, { layer, processor });
}

export async function runMaskJob(job: MaskJob): Promise<MaskJobResult> {
  const annotation = readAnnotation(job.annotationPath);
  const inputs: RngrImageInput[] = [];
  for (const im of annotation.images) {
    const image = await readImage(im.path);
    const name = relative(process.cwd(), im.path) || im.path;
    checkPointsInside(im.positive, image.width, image.height, name);
    checkPointsInside(im.negative, image.width, image.height, name);
    inputs.push({ name: im.path, image, positive: im.positive, negative: im.negative });
  }
  const ownExtractor = job.extractor ? null : loadClipExtractor(job.clipFolder, job.layer ?? -1);
  const base = job.extractor ?? ownExtractor!;
  const extractor = (job.dense ?? 1) > 1 ? new DensePatchExtractor(base, job.dense!) : base;
  try {
    return await maskWith(job, annotation, inputs, extractor);
  } finally {
    ownExtractor?.model.dispose();
  }
}

async function maskWith(
  job: MaskJob,
  annotation: SubjectAnnotation,
  inputs: RngrImageInput[],
  extractor: PatchFeatureExtractor,
): Promise<MaskJobResult> {
  let done = 0;
  const counting: PatchFeatureExtractor = {
    extract(image) {
      const f = extractor.extract(image);
      job.onProgress?.(++done, inputs.length, inputs[done - 1]?.name ?? '');
      return f;
    },
  };
  const results = await buildSubjectMasks(inputs, counting, {
    sigma: job.sigma,
    dilate: job.dilate,
    propagate: job.propagate,
    rule: job.rule,
    refine: job.refine,
  });
  const summary = await writeMaskOutputs(results, job.outDir, {
    annotation: job.annotationPath,
    identifier: annotation.identifier,
    classWord: annotation.classWord,
    clip: job.clipFolder,
    layer: job.layer ?? -1,
    dense: job.dense ?? 1,
    sigma: job.sigma ?? 1,
    dilate: job.dilate ?? 0,
    rule: job.rule ?? 'compare',
    refine: job.refine ?? 'guided',
  });
  return { results, summary, summaryPath: join(job.outDir, 'summary.json') };
}
