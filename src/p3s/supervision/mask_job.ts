// `p3s mask` as a library function: annotation file + CLIP weights -> masks and filled photos.
// Its settings are declared once in mask_settings.ts and resolved here, at the boundary.
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { readImage } from '../../io/image.js';
import { refuseSetting, resolveSettings } from '../../settings/table.js';
import { CLIPVisionModel } from '../../models/clip/clip_vision_model.js';
import { CLIPImageProcessor } from '../../models/clip/image_processing.js';
import {
  AnnotationError,
  readAnnotation,
  checkPointsInside,
  type SubjectAnnotation,
} from './annotations.js';
import { ClipPatchExtractor } from './clip_features.js';
import { DensePatchExtractor } from './dense_features.js';
import {
  buildSubjectMasks,
  type RngrImageInput,
  type RngrImageResult,
  type PatchFeatureExtractor,
} from './rngr.js';
import { writeMaskOutputs, type MaskSummaryEntry } from './mask_outputs.js';
import { MASK_SETTINGS, type MaskJob, type MaskSettings } from './mask_settings.js';
import { checkWritable } from '../../training/run_folder.js';

export type { MaskJob, MaskSettings } from './mask_settings.js';

/** What runMaskJob reports while it runs, and what a test may put in CLIP's place. */
export interface MaskJobOptions {
  /** After each photo's patch features: photos done, photos in all, the photo's path. */
  onProgress?: (done: number, total: number, name: string) => void;
  /** Replaces CLIP (tests, other encoders); the job then loads no model. */
  extractor?: PatchFeatureExtractor;
  /**
   * Sees every photo's masks before anything is written; a throw stops the job there
   * (`p3s mask` passes refuseEmptySubjects).
   */
  check?: (results: RngrImageResult[]) => void;
}

/** Refuses a set in which a photo's subject mask is empty: training on it would learn nothing. */
export function refuseEmptySubjects(results: RngrImageResult[]): void {
  for (const r of results) {
    const empty = r.subject.fallbacks.find((f) => f.code === 'empty-subject-mask');
    if (empty) throw new AnnotationError(`${r.name}: ${empty.message}`);
  }
}

export interface MaskJobResult {
  results: RngrImageResult[];
  summary: MaskSummaryEntry[];
  summaryPath: string;
}

export function loadClipExtractor(folder: string, layer = -1): ClipPatchExtractor {
  const model = CLIPVisionModel.fromPretrained(folder);
  const n = model.config.num_hidden_layers;
  if (!(layer >= -(n + 1) && layer <= n)) {
    model.dispose(); // this CLIP has n layers, so n + 1 hidden states to pick from
    refuseSetting(
      MASK_SETTINGS,
      'layer',
      `an integer in [${-(n + 1)}, ${n}] (0 = embeddings, ${n} or -1 = the last of this CLIP's ${n} layers)`,
      layer,
    );
  }
  model.eval();
  const processor = existsSync(join(folder, 'preprocessor_config.json'))
    ? CLIPImageProcessor.fromPretrained(folder)
    : undefined;
  return new ClipPatchExtractor(model, { layer, processor });
}

/** Annotation file + CLIP weights -> masks, overlays, filled photos and summary.json. */
/** The annotation path of masks made without an annotation file (the web app's). */
export const NO_ANNOTATION = '-';

export async function runMaskJob(
  job: MaskJob,
  options: MaskJobOptions = {},
): Promise<MaskJobResult> {
  const settings = resolveSettings(MASK_SETTINGS, job);
  const annotation = readAnnotation(settings.annotationPath);
  const inputs = await maskInputs(annotation);
  checkWritable(settings.outDir); // before the work, not after it
  const own = options.extractor ? null : loadClipExtractor(settings.clipFolder, settings.layer);
  const base = options.extractor ?? own!;
  const extractor = settings.dense > 1 ? new DensePatchExtractor(base, settings.dense) : base;
  try {
    const counted = counting(extractor, inputs, options);
    return await maskWith(settings, annotation, inputs, counted, options.check);
  } finally {
    own?.model.dispose();
  }
}

/** The annotated photos, read, with their clicks checked against their sizes. */
async function maskInputs(annotation: SubjectAnnotation): Promise<RngrImageInput[]> {
  const inputs: RngrImageInput[] = [];
  for (const im of annotation.images) {
    const image = await readImage(im.path);
    const name = relative(process.cwd(), im.path) || im.path;
    checkPointsInside(im.positive, image.width, image.height, name);
    checkPointsInside(im.negative, image.width, image.height, name);
    inputs.push({ name: im.path, image, positive: im.positive, negative: im.negative });
  }
  return inputs;
}

/** The extractor, telling onProgress after each photo. */
function counting(
  extractor: PatchFeatureExtractor,
  inputs: RngrImageInput[],
  options: MaskJobOptions,
): PatchFeatureExtractor {
  let done = 0;
  return {
    extract(image) {
      const f = extractor.extract(image);
      options.onProgress?.(++done, inputs.length, inputs[done - 1]?.name ?? '');
      return f;
    },
  };
}

/**
 * Masks for the inputs with these settings, written to s.outDir as `p3s mask` writes them (also
 * the web app's live masks, with features it keeps cached); summary.json records the settings,
 * and the annotation file when there is one.
 */
export async function maskWith(
  s: MaskSettings,
  annotation: Pick<SubjectAnnotation, 'identifier' | 'classWord'>,
  inputs: RngrImageInput[],
  extractor: PatchFeatureExtractor,
  check?: (results: RngrImageResult[]) => void,
): Promise<MaskJobResult> {
  const results = await buildSubjectMasks(inputs, extractor, {
    sigma: s.sigma,
    dilate: s.dilate,
    propagate: s.propagate,
    rule: s.rule,
    refine: s.refine,
    clickRadius: s.clickRadius,
  });
  check?.(results);
  const summary = await writeMaskOutputs(results, s.outDir, {
    ...(s.annotationPath === NO_ANNOTATION ? {} : { annotation: s.annotationPath }),
    identifier: annotation.identifier,
    classWord: annotation.classWord,
    clip: s.clipFolder,
    layer: s.layer,
    dense: s.dense,
    sigma: s.sigma,
    dilate: s.dilate,
    rule: s.rule,
    refine: s.refine,
    clickRadius: s.clickRadius,
  });
  return { results, summary, summaryPath: join(s.outDir, 'summary.json') };
}
