// The shipped models' quality on held-out scenes, written to quality.json: what the model card
// reports and the tests keep as floors.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLIPTextModelWithProjection } from '../../src/models/clip/clip_text_model.js';
import { CLIPVisionModelWithProjection } from '../../src/models/clip/clip_vision_model.js';
import { DensePatchExtractor } from '../../src/p3s/supervision/dense_features.js';
import { loadClipExtractor } from '../../src/p3s/supervision/mask_job.js';
import type { SuppressionRule } from '../../src/p3s/supervision/mask/index.js';
import type { MaskRefinement } from '../../src/p3s/supervision/rngr.js';
import { StableDiffusionPipeline } from '../../src/pipelines/stable_diffusion.js';
import { CLIPTokenizer } from '../../src/tokenizers/clip_tokenizer.js';
import { AttributeProbe } from './probe.js';
import { runSubjectExperiment, type ExperimentResult } from './experiment.js';
import type { ChildExperimentOptions } from './experiment_process.js';
import { EVALUATION_SUBJECTS, recipeExperimentSettings, type AdapterRecipe } from './recipes.js';
import { describeObject } from '../../src/toyworld/captions.js';
import {
  clipRetrieval,
  generationAccuracy,
  probeAccuracy,
  rngrQuality,
  type AttributeAccuracy,
  type RetrievalResult,
  type RngrQuality,
  type RoundTripAccuracy,
  vaeRoundTripAccuracy,
} from './quality.js';

export interface ToyQuality {
  clipRetrieval: RetrievalResult;
  probe: AttributeAccuracy;
  /** The probe on VAE round trips: roughly the decoder's ceiling on generated images. */
  vaeRoundTrip?: RoundTripAccuracy;
  generation: AttributeAccuracy & { steps: number; guidanceScale: number };
  /**
   * RNGR on look-alike pairs per CLIP hidden state and grid density, with p3s's default masks
   * (compare rule, guided refinement) and with Eq. (2) as the paper writes it (product, patch
   * level); the best default entry sets the demo's mask layer and density.
   */
  rngr: (RngrQuality & RngrVariant)[];
  maskLayer: number;
  maskDense: number;
  /** P3S fine-tuning on look-alike references, with and without the negative point. */
  selective?: SelectiveQuality;
  /** The same with p3s demo's recipe (TOY_RECIPE) instead of the paper's adapter. */
  selectiveRecipe?: SelectiveQuality;
}

export interface SelectiveQuality {
  /** How many subjects. */
  subjects: number;
  /** Their reference-set seeds (EVALUATION_SUBJECTS unless told otherwise). */
  subjectSeeds: number[];
  steps: number;
  imagesPerSubject: number;
  /** Means over subjects, with the negative click and with the positive click only. */
  withNegative: SelectiveNumbers;
  positiveOnly: SelectiveNumbers;
  /** The adapter settings, when not the paper's. */
  recipe?: AdapterRecipe;
}

/** One subject's run: what the probe read in its generated images. */
export interface SubjectNumbers {
  seed: number;
  /** "red striped star". */
  subject: string;
  /** The subject's colour, pattern and shape. */
  fidelity: number;
  /** A look-alike's colour and pattern. */
  lookalikeRate: number;
  /** The prompted background. */
  contextAccuracy: number;
  maskIoU: number;
}

export interface SelectiveNumbers {
  fidelity: number;
  lookalikeRate: number;
  contextAccuracy: number;
  colourFidelity: number;
  lookalikeColourRate: number;
  maskIoU: number;
  perSubject: SubjectNumbers[];
}

/** Runs one experiment somewhere: in a child process, through a TaskPool, … */
export type ExperimentRunner = (options: ChildExperimentOptions) => Promise<ExperimentResult>;

/** Options of selectiveQuality. */
export interface SelectiveQualityOptions {
  /** Reference-set seeds (default EVALUATION_SUBJECTS). */
  subjects?: readonly number[];
  steps?: number;
  maskLayer?: number;
  maskDense?: number;
  /** Adapter settings (default: the paper's adapter at lr 1e-4, `steps` steps). */
  recipe?: AdapterRecipe;
  /** Where the runs go (default: one after another in this process). */
  run?: ExperimentRunner;
  /** Called after each finished run with (done, total). */
  onRunDone?: (done: number, total: number) => void;
}

/** The selective-fidelity experiment over several subjects (minutes per subject on 2 cores). */
export async function selectiveQuality(
  folder: string,
  workDir: string,
  options: SelectiveQualityOptions = {},
): Promise<SelectiveQuality> {
  const subjects = options.subjects ?? EVALUATION_SUBJECTS;
  const recipe = options.recipe;
  const steps = recipe?.steps ?? options.steps ?? 200;
  const runs: ChildExperimentOptions[] = [];
  for (const subject of subjects) {
    for (const negativePoint of [true, false]) {
      runs.push({
        modelFolder: folder,
        outDir: join(workDir, `subject-${subject}`, negativePoint ? 'selective' : 'baseline'),
        subjectSeed: subject,
        negativePoint,
        steps,
        maskLayer: options.maskLayer,
        maskDense: options.maskDense,
        ...(recipe ? recipeExperimentSettings(recipe) : {}),
      });
    }
  }
  const results = await runSelective(folder, runs, options);
  const images = results.at(-1)?.generated.length ?? 0;
  return {
    subjects: subjects.length,
    subjectSeeds: [...subjects],
    steps,
    imagesPerSubject: images,
    withNegative: meanShares(results.filter((_, i) => runs[i]!.negativePoint)),
    positiveOnly: meanShares(results.filter((_, i) => !runs[i]!.negativePoint)),
    ...(recipe ? { recipe } : {}),
  };
}

/** Every run, through the given runner or one after another here with one probe. */
async function runSelective(
  folder: string,
  runs: ChildExperimentOptions[],
  options: SelectiveQualityOptions,
): Promise<ExperimentResult[]> {
  let done = 0;
  const counted = async (run: ExperimentRunner, o: ChildExperimentOptions) => {
    const result = await run(o);
    options.onRunDone?.(++done, runs.length);
    return result;
  };
  if (options.run) {
    const run = options.run;
    return Promise.all(runs.map((o) => counted(run, o))); // the runner paces them
  }
  const probe = AttributeProbe.load(join(folder, 'probe'));
  try {
    const results: ExperimentResult[] = [];
    for (const o of runs)
      results.push(await counted((x) => runSubjectExperiment({ ...x, probe }), o));
    return results;
  } finally {
    probe.dispose();
  }
}

/** Each subject's numbers and their means over subjects (one run per subject). */
function meanShares(results: readonly ExperimentResult[]): SelectiveNumbers {
  const perSubject = results.map((r): SubjectNumbers => ({
    seed: r.subjectSeed,
    subject: describeObject(r.subject),
    fidelity: r.fidelity,
    lookalikeRate: r.lookalikeRate,
    contextAccuracy: r.backgroundAccuracy,
    maskIoU: r.masks.reduce((a, m) => a + m.subjectIoU, 0) / r.masks.length,
  }));
  const mean = (f: (r: ExperimentResult) => number) =>
    results.reduce((a, r) => a + f(r), 0) / Math.max(1, results.length);
  return {
    fidelity: mean((r) => r.fidelity),
    lookalikeRate: mean((r) => r.lookalikeRate),
    contextAccuracy: mean((r) => r.backgroundAccuracy),
    colourFidelity: mean((r) => r.colourFidelity),
    lookalikeColourRate: mean((r) => r.lookalikeColourRate),
    maskIoU: perSubject.reduce((a, s) => a + s.maskIoU, 0) / Math.max(1, results.length),
    perSubject,
  };
}

export interface RngrVariant {
  layer: number;
  dense: number;
  rule: SuppressionRule;
  refine: MaskRefinement;
}

/** p3s's default masks, and Eq. (2) as written for comparison. */
export const QUALITY_MASK_RULES: Pick<RngrVariant, 'rule' | 'refine'>[] = [
  { rule: 'compare', refine: 'guided' },
  { rule: 'product', refine: 'none' },
];

/** Whether an RNGR entry used p3s's default masks (the first of QUALITY_MASK_RULES). */
export function isDefaultMask(r: Pick<RngrVariant, 'rule' | 'refine'>): boolean {
  const [defaults] = QUALITY_MASK_RULES;
  return r.rule === defaults!.rule && r.refine === defaults!.refine;
}

/** CLIP hidden states (0: the embeddings) and grid densities tried for RNGR masks. */
export const QUALITY_LAYERS = [-1, 0, 1, 2];
export const QUALITY_DENSITIES = [1, 4];

export interface EvaluationOptions {
  generationCount?: number;
  rngrCount?: number;
  retrievalCount?: number;
  /** Called after each measurement with (done, total, what was measured). */
  onPartDone?: (done: number, total: number, part: string) => void;
}

/** CLIP's text↔image retrieval on held-out scenes. */
function measureRetrieval(folder: string, count: number): RetrievalResult {
  const tokenizer = CLIPTokenizer.fromPretrained(join(folder, 'tokenizer'));
  const text = CLIPTextModelWithProjection.fromPretrained(join(folder, 'text_encoder')).eval();
  const vision = CLIPVisionModelWithProjection.fromPretrained(join(folder, 'image_encoder')).eval();
  try {
    return clipRetrieval(text, vision, tokenizer, count);
  } finally {
    text.dispose();
    vision.dispose();
  }
}

/** The probe on VAE round trips (the decoder's ceiling) and on the base model's own images. */
async function measurePipeline(
  folder: string,
  probe: AttributeProbe,
  count: number,
  partDone: (part: string) => void,
): Promise<Pick<ToyQuality, 'vaeRoundTrip' | 'generation'>> {
  const pipeline = StableDiffusionPipeline.fromPretrained(folder, { scheduler: 'ddim' });
  try {
    const vaeRoundTrip = vaeRoundTripAccuracy(pipeline.vae, probe);
    partDone('VAE round trips');
    const steps = 25;
    const guidanceScale = 5;
    const g = await generationAccuracy(pipeline, probe, { count, steps, guidanceScale });
    const numbers: Partial<typeof g> = { ...g };
    delete numbers.images;
    delete numbers.prompts;
    partDone('text-to-image');
    return {
      vaeRoundTrip,
      generation: { ...(numbers as AttributeAccuracy), steps, guidanceScale },
    };
  } finally {
    pipeline.dispose();
  }
}

/** RNGR masks on look-alike pairs for every CLIP layer, grid density and mask rule. */
async function measureRngr(
  folder: string,
  count: number,
  partDone: (part: string) => void,
): Promise<ToyQuality['rngr']> {
  const rngr: ToyQuality['rngr'] = [];
  for (const layer of QUALITY_LAYERS) {
    const extractor = loadClipExtractor(join(folder, 'image_encoder'), layer);
    try {
      for (const dense of QUALITY_DENSITIES) {
        for (const variant of QUALITY_MASK_RULES) {
          const extractorAt = new DensePatchExtractor(extractor, dense);
          rngr.push({
            layer,
            dense,
            ...variant,
            ...(await rngrQuality(extractorAt, count, variant)),
          });
          partDone(`RNGR layer ${layer} dense ${dense} ${variant.rule}`);
        }
      }
    } finally {
      extractor.model.dispose();
    }
  }
  return rngr;
}

export async function evaluateToyModels(
  folder: string,
  options: EvaluationOptions = {},
): Promise<ToyQuality> {
  const rngrParts = QUALITY_LAYERS.length * QUALITY_DENSITIES.length * QUALITY_MASK_RULES.length;
  const total = 4 + rngrParts; // retrieval, probe, round trips, text-to-image, RNGR variants
  let done = 0;
  const partDone = (part: string) => options.onPartDone?.(++done, total, part);
  const clipRetrievalResult = measureRetrieval(folder, options.retrievalCount ?? 200);
  partDone('CLIP retrieval');
  const probe = AttributeProbe.load(join(folder, 'probe'));
  try {
    const probeAcc = probeAccuracy(probe);
    partDone('probe');
    const measured = await measurePipeline(folder, probe, options.generationCount ?? 128, partDone);
    const rngr = await measureRngr(folder, options.rngrCount ?? 50, partDone);
    const best = rngr.filter(isDefaultMask).sort((a, b) => b.subjectIoU - a.subjectIoU)[0]!;
    return {
      clipRetrieval: clipRetrievalResult,
      probe: probeAcc,
      ...measured,
      rngr,
      maskLayer: best.layer,
      maskDense: best.dense,
    };
  } finally {
    probe.dispose();
  }
}

export function writeQuality(folder: string, quality: ToyQuality): void {
  writeFileSync(join(folder, 'quality.json'), `${JSON.stringify(quality, null, 2)}\n`);
}
