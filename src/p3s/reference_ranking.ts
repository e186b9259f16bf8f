// Which reference conditions the images (p3s generate --reference best). An adapter draws the
// subject far better from some references than from others, and nothing in training says which
// (docs/toy.md). So each reference draws a few images first, in two contexts, and CLIP-I scores
// them against the other references, leaving its own out: the reference whose images look most
// like the rest of the set is the best. The ranking is kept beside the adapter, keyed by what
// decides its images, so that a later generation with the same settings reads it back.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { noGrad } from '../engine/autograd.js';
import { tidy } from '../engine/scope.js';
import type { Tensor } from '../engine/tensor.js';
import type { RgbImage } from '../io/image.js';
import { writeJsonAtomic } from '../io/json_file.js';
import { clipImageEncoder, type ClipImageTower } from '../eval/eval_models.js';
import { clipImageScore, embeddingRows } from '../eval/metrics.js';
import { modelFingerprint, type AdapterMetadata } from './adapter/adapter_io.js';

/** The contexts each reference draws in: with no context word, the images do not tell references apart. */
export const RANKING_PROMPTS: readonly string[] = ['a {} in the snow', 'a {} on the beach'];
/** Seeds of a reference's images in each context, apart from the generation's usual 0, 1, 2 .... */
export const RANKING_SEEDS: readonly number[] = [100, 101, 102];

export interface ReferenceRanking {
  /** The reference with the highest score (the first of equals). */
  best: number;
  /** Per reference: the mean cosine of its images to every other reference (CLIP-I). */
  scores: number[];
}

/** Draws the images of reference r for one prompt, one per seed. */
export type ReferenceSampler = (
  reference: number,
  prompt: string,
  seeds: readonly number[],
) => Promise<RgbImage[]>;

/** What a ranking depends on besides the adapter's weights: the sampler's settings, the tower. */
export type RankingKey = Record<string, string>;

/**
 * The references' embeddings in the tower's projected space, from the last hidden states the
 * adapter stores (c_s): the pooled CLS token, projected, as the tower would embed the crops.
 */
export function conditionEmbeddings(tower: ClipImageTower, clipStates: Tensor): number[][] {
  return noGrad(() =>
    tidy(() => {
      const cls = clipStates.select(1, 0); // (N, E)
      const pooled = tower.model.vision_model.post_layernorm.forward(cls);
      return embeddingRows(tower.model.visual_projection.forward(pooled));
    }),
  );
}

/** Each reference's score: CLIP-I of its images against the other references. */
export function leaveOneOutScores(
  images: readonly (readonly number[][])[],
  references: readonly number[][],
): number[] {
  if (images.length !== references.length || references.length < 2)
    throw new RangeError(
      `Expected images of each of at least 2 references but received ${images.length} sets for ${references.length} references`,
    );
  return images.map((own, r) =>
    clipImageScore(
      own,
      references.filter((_, k) => k !== r),
    ),
  );
}

/** The index of the highest score (the first of equals). */
export function bestOf(scores: readonly number[]): number {
  return scores.reduce((best, s, r) => (s > scores[best]! ? r : best), 0);
}

/** Ranks the references by drawing RANKING_PROMPTS × RANKING_SEEDS from each. */
export async function rankReferences(
  prompts: readonly string[],
  sample: ReferenceSampler,
  tower: ClipImageTower,
  clipStates: Tensor,
): Promise<ReferenceRanking> {
  const references = conditionEmbeddings(tower, clipStates);
  const images: number[][][] = [];
  for (let r = 0; r < references.length; r++) {
    const own: number[][] = [];
    for (const prompt of prompts) own.push(...tower.embed(await sample(r, prompt, RANKING_SEEDS)));
    images.push(own);
  }
  const scores = leaveOneOutScores(images, references);
  return { best: bestOf(scores), scores };
}

/** The CLIP tower the adapter was trained with, checked by its fingerprint. */
export function rankingTower(
  given: string | null,
  baseModel: string,
  metadata: AdapterMetadata,
): ClipImageTower {
  const folder =
    given ?? [metadata.clipModel, 'image_encoder'].map((c) => join(baseModel, c)).find(existsSync);
  if (folder === undefined || !existsSync(folder)) {
    const missing = given
      ? `${given} does not exist`
      : `${baseModel} holds neither ${metadata.clipModel}/ nor image_encoder/`;
    throw new Error(
      `--reference best scores images with the CLIP tower the adapter was trained with ("${metadata.clipModel}"), and ${missing}: give --clip-model <folder>`,
    );
  }
  const tower = clipImageEncoder(folder);
  const fingerprint = modelFingerprint(
    tower.model,
    tower.model.config,
    (key) => !key.startsWith('visual_projection.'),
  );
  if (fingerprint !== metadata.clipFingerprint) {
    tower.dispose();
    throw new Error(
      `${folder} is not the CLIP tower the adapter was trained with ("${metadata.clipModel}", fingerprint ${metadata.clipFingerprint}; this one ${fingerprint}): give that one as --clip-model`,
    );
  }
  return tower;
}

/** Where an adapter's ranking is kept: adapter.safetensors → adapter.ranking.json. */
export function rankingPath(adapter: string): string {
  return join(dirname(adapter), `${basename(adapter).replace(/\.safetensors$/, '')}.ranking.json`);
}

/** The adapter file as it is now: a retrained or replaced adapter gets a new ranking. */
export function adapterStamp(adapter: string): RankingKey {
  const stat = statSync(adapter);
  return { adapter_bytes: String(stat.size), adapter_modified: String(stat.mtimeMs) };
}

/** A kept ranking made with this key for this many references, or null. */
export function readRanking(path: string, key: RankingKey, count: number): ReferenceRanking | null {
  try {
    const kept = JSON.parse(readFileSync(path, 'utf8')) as {
      key?: RankingKey;
      ranking?: ReferenceRanking;
    };
    const { ranking } = kept;
    const sameKey = JSON.stringify(kept.key) === JSON.stringify(key);
    const valid =
      ranking !== undefined &&
      Array.isArray(ranking.scores) &&
      ranking.scores.length === count &&
      ranking.scores.every(Number.isFinite) &&
      Number.isSafeInteger(ranking.best) &&
      ranking.best >= 0 &&
      ranking.best < count;
    return sameKey && valid ? { best: ranking.best, scores: [...ranking.scores] } : null;
  } catch {
    // missing, unreadable or not JSON: ranked again
    return null;
  }
}

/** Keeps a ranking beside the adapter (atomically). */
export function writeRanking(path: string, key: RankingKey, ranking: ReferenceRanking): void {
  writeJsonAtomic(path, { key, ranking });
}
