// scoreImages: generated images + real photos of the subject -> DreamBench's CLIP-I, CLIP-Iv,
// CLIP-T and (with a DINO ViT) DINO, DINO-v, overall and per prompt. The images are read and
// embedded a batch at a time; the scores are src/eval/metrics.ts on the embeddings.
import { resolveSettings } from '../settings/table.js';
import type { RgbImage } from '../io/image.js';
import { EVAL_SETTINGS, type EvalConfig, type EvalSettings } from './eval_settings.js';
import {
  EvalInputError,
  readEvalImage,
  readGenerated,
  realPaths,
  type GeneratedImage,
} from './eval_inputs.js';
import { selectiveScores, type SelectiveScores } from './probe_fidelity.js';
import type { ObjectAttributes } from '../toyworld/attributes.js';
import { parseObject } from '../toyworld/captions.js';
import { DEFAULT_SIZE as TOY_IMAGE_SIDE } from '../toyworld/scene.js';
import {
  clipImageEncoder,
  clipTextEncoder,
  dinoEncoder,
  evalModelFolders,
  type EvalModelFolders,
  type ImageEncoder,
} from './eval_models.js';
import { clipTextScore, cosine, pairwiseSimilarity } from './metrics.js';

/** The five numbers DreamBench reports; DINO's are null when no DINO model was given. */
export interface MetricScores {
  clipI: number;
  clipIv: number;
  clipT: number;
  dino: number | null;
  dinoV: number | null;
}

export interface PromptScores {
  prompt: string;
  /** What CLIP-T compared with: the prompt with the identifier replaced by the class word. */
  clipPrompt: string;
  images: number;
  scores: MetricScores;
}

/** One generated image's share: its mean cosine to the real photos, its CLIP-T cosine. */
export interface ImageScores {
  path: string;
  prompt: string;
  clipI: number;
  clipT: number;
  dino: number | null;
}

export interface EvalResult {
  scores: MetricScores;
  perPrompt: PromptScores[];
  perImage: ImageScores[];
  counts: { images: number; references: number; prompts: number };
  references: string[];
  models: EvalModelFolders;
  /** The metrics left out (DINO and DINO-v without a DINO model): null, never 0. */
  notMeasured: string[];
  /** The probe's selective columns (toy world, --probe); null when not asked for. */
  selective: SelectiveScores | null;
}

/** Batches of model forwards done, over everything the run embeds. */
export interface EvalProgress {
  done: number;
  total: number;
  detail: string;
}

export interface ScoreOptions {
  onProgress?: (p: EvalProgress) => void;
}

/** Embedding rows of generated and real images, per encoder. */
interface Embedded {
  clip: { generated: number[][]; real: number[][] };
  dino: { generated: number[][]; real: number[][] } | null;
  /** Row i: the text embedding of generated image i's clipPrompt. */
  text: number[][];
}

/** Scores the generated images of `config.generated` against the photos of `config.real`. */
export async function scoreImages(
  config: EvalConfig,
  options: ScoreOptions = {},
): Promise<EvalResult> {
  const s = resolveSettings(EVAL_SETTINGS, config);
  const looks = probeLooks(s);
  const generated = await readGenerated(s.generated, s);
  const references = realPaths(s.real);
  const models = evalModelFolders(s);
  // the probe reads the images the embedding pass has read, not the files again
  const seen: RgbImage[] = [];
  const keep = looks ? (images: RgbImage[]) => void seen.push(...images) : undefined;
  const embedded = await embedAll(generated, references, models, s.batchSize, options, keep);
  const perImage = imageScores(generated, embedded);
  return {
    scores: metricScores(embedded, allIndices(generated.length)),
    perPrompt: promptScores(generated, embedded),
    perImage,
    counts: {
      images: generated.length,
      references: references.length,
      prompts: new Set(generated.map((g) => g.prompt)).size,
    },
    references,
    models,
    notMeasured: embedded.dino === null ? ['dino', 'dinoV'] : [],
    selective: looks && probeGenerated(s.probe!, generated, seen, looks),
  };
}

/** The subject's and look-alikes' attributes for --probe, checked before any model runs. */
function probeLooks(
  s: EvalSettings,
): { subject: ObjectAttributes; lookalikes: ObjectAttributes[] } | null {
  if (s.probe === null) {
    if (s.subjectLook !== null || s.lookalikes.length > 0)
      throw new EvalInputError('--subject-look and --look-alike need --probe <folder>');
    return null;
  }
  if (s.subjectLook === null)
    throw new EvalInputError(
      '--probe needs --subject-look, e.g. --subject-look "blue striped circle"',
    );
  try {
    return { subject: parseObject(s.subjectLook), lookalikes: s.lookalikes.map(parseObject) };
  } catch (err) {
    throw new EvalInputError((err as Error).message);
  }
}

/** The probe on every generated image (the toy world's 64-px scenes), given in their order. */
function probeGenerated(
  folder: string,
  generated: readonly GeneratedImage[],
  images: readonly RgbImage[],
  looks: { subject: ObjectAttributes; lookalikes: ObjectAttributes[] },
): SelectiveScores {
  const read = generated.map((g, i) => {
    const image = images[i]!;
    if (image.width !== TOY_IMAGE_SIDE || image.height !== TOY_IMAGE_SIDE)
      throw new EvalInputError(
        `The probe reads the toy world's ${TOY_IMAGE_SIDE}-px images; ${g.path} is ${image.width}×${image.height}`,
      );
    return { path: g.path, prompt: g.prompt, image };
  });
  return selectiveScores(folder, read, looks.subject, looks.lookalikes);
}

const allIndices = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

function batchesOf<T>(items: readonly T[], size: number): T[][] {
  return Array.from({ length: Math.ceil(items.length / size) }, (_, b) =>
    items.slice(b * size, (b + 1) * size),
  );
}

/** Loads the encoders, embeds every image once per encoder and every distinct prompt once. */
async function embedAll(
  generated: readonly GeneratedImage[],
  references: readonly string[],
  models: EvalModelFolders,
  batchSize: number,
  options: ScoreOptions,
  keepGenerated?: (images: RgbImage[]) => void,
): Promise<Embedded> {
  const prompts = [...new Set(generated.map((g) => g.clipPrompt))];
  const imageBatches =
    batchesOf(generated, batchSize).length + batchesOf(references, batchSize).length;
  const total = imageBatches + batchesOf(prompts, batchSize).length;
  let done = 0;
  const step = (detail: string) => options.onProgress?.({ done: ++done, total, detail });
  const encoders: ImageEncoder[] = [];
  try {
    encoders.push(clipImageEncoder(models.clipImage));
    if (models.dino !== null) encoders.push(dinoEncoder(models.dino));
    const gen = await embedImages(
      generated.map((g) => g.path),
      encoders,
      batchSize,
      (images) => {
        keepGenerated?.(images);
        step('generated images');
      },
    );
    const real = await embedImages(references, encoders, batchSize, () => step('real photos'));
    const text = embedPrompts(prompts, models, batchSize, () => step('prompts'));
    return {
      clip: { generated: gen[0]!, real: real[0]! },
      dino: models.dino === null ? null : { generated: gen[1]!, real: real[1]! },
      text: generated.map((g) => text.get(g.clipPrompt)!),
    };
  } finally {
    for (const e of encoders) e.dispose();
  }
}

/** Rows per encoder (encoders[k] -> result[k]), each image read once. */
async function embedImages(
  paths: readonly string[],
  encoders: readonly ImageEncoder[],
  batchSize: number,
  onBatch: (images: RgbImage[]) => void,
): Promise<number[][][]> {
  const rows: number[][][] = encoders.map(() => []);
  for (const batch of batchesOf(paths, batchSize)) {
    const images: RgbImage[] = [];
    for (const path of batch) images.push(await readEvalImage(path));
    encoders.forEach((e, k) => rows[k]!.push(...e.embed(images)));
    onBatch(images);
  }
  return rows;
}

/** Each distinct prompt's text embedding. */
function embedPrompts(
  prompts: readonly string[],
  models: EvalModelFolders,
  batchSize: number,
  onBatch: () => void,
): Map<string, number[]> {
  const encoder = clipTextEncoder(models.clipText, models.tokenizer);
  try {
    const out = new Map<string, number[]>();
    for (const batch of batchesOf(prompts, batchSize)) {
      encoder.embed(batch).forEach((row, i) => out.set(batch[i]!, row));
      onBatch();
    }
    return out;
  } finally {
    encoder.dispose();
  }
}

const pick = (rows: number[][], indices: readonly number[]) => indices.map((i) => rows[i]!);

/** The five metrics over the generated images `indices` (all real photos each time). */
function metricScores(e: Embedded, indices: readonly number[]): MetricScores {
  // clipImageScore / clipImageVariance are this mean and variance (metrics.ts).
  const clip = pairwiseSimilarity(pick(e.clip.generated, indices), e.clip.real);
  const dino = e.dino && pairwiseSimilarity(pick(e.dino.generated, indices), e.dino.real);
  return {
    clipI: clip.mean,
    clipIv: clip.variance,
    clipT: clipTextScore(pick(e.clip.generated, indices), pick(e.text, indices)),
    dino: dino ? dino.mean : null,
    dinoV: dino ? dino.variance : null,
  };
}

/** Scores per prompt, in the order the prompts first appear. */
function promptScores(generated: readonly GeneratedImage[], e: Embedded): PromptScores[] {
  const groups = new Map<string, number[]>();
  generated.forEach((g, i) => groups.set(g.prompt, [...(groups.get(g.prompt) ?? []), i]));
  return [...groups].map(([prompt, indices]) => ({
    prompt,
    clipPrompt: generated[indices[0]!]!.clipPrompt,
    images: indices.length,
    scores: metricScores(e, indices),
  }));
}

function imageScores(generated: readonly GeneratedImage[], e: Embedded): ImageScores[] {
  const clip = pairwiseSimilarity(e.clip.generated, e.clip.real);
  const dino = e.dino && pairwiseSimilarity(e.dino.generated, e.dino.real);
  return generated.map((g, i) => ({
    path: g.path,
    prompt: g.prompt,
    clipI: clip.perImage[i]!,
    clipT: cosine(e.clip.generated[i]!, e.text[i]!),
    dino: dino ? dino.perImage[i]! : null,
  }));
}
