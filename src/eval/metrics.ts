// DreamBench's subject-fidelity and prompt-fidelity metrics (DreamBooth, Ruiz et al. 2023,
// Sec. 4.1; reported by P3S-Diffusion), as pure functions on embeddings already computed:
//   DINO    mean cosine of DINO ViT-S/16 CLS tokens over all generated × real pairs
//   CLIP-I  mean cosine of projected CLIP image embeddings over all generated × real pairs
//   CLIP-T  mean cosine of each generated image's projected CLIP image embedding with its
//           prompt's projected CLIP text embedding (identifier removed from the prompt)
//   DINO-v, CLIP-Iv  population variance over generated images of each one's mean score
//           against the real images
// Scores are cosines in [-1, 1], not multiplied by 100. Arithmetic is float64 in JavaScript.
import { Tensor } from '../engine/tensor.js';

/** N embeddings of dimension D: a (N, D) tensor of any float dtype, or N arrays of D numbers. */
export type Embeddings = Tensor | readonly (readonly number[])[];

/** Rows of a (N, D) tensor or array of arrays, checked to be N ≥ 1 rows of one length D ≥ 1. */
export function embeddingRows(embeddings: Embeddings, label = 'embeddings'): number[][] {
  const rows = embeddings instanceof Tensor ? tensorRows(embeddings, label) : [...embeddings];
  if (rows.length === 0) throw new RangeError(`Expected at least one row of ${label}`);
  const d = rows[0]!.length;
  rows.forEach((r, i) => {
    if (r.length !== d || d === 0)
      throw new RangeError(`Expected ${label} rows of one length ≥ 1 but row ${i} has ${r.length}`);
  });
  return rows.map((r) => [...r]);
}

function sameDimension(a: number[][], b: number[][], label: string): void {
  const [da, db] = [a[0]!.length, b[0]!.length];
  if (da !== db)
    throw new RangeError(`Expected ${label} of one dimension but received ${da} and ${db}`);
}

function tensorRows(t: Tensor, label: string): number[][] {
  if (t.ndim !== 2)
    throw new RangeError(`Expected ${label} of shape (N, D) but received [${t.shape.join(', ')}]`);
  const [n, d] = t.shape as [number, number];
  const flat = t.toArray();
  return Array.from({ length: n }, (_, i) => flat.slice(i * d, (i + 1) * d));
}

function norm(v: readonly number[]): number {
  return Math.sqrt(v.reduce((s, x) => s + x * x, 0));
}

/** Cosine similarity a·b / (‖a‖ ‖b‖); a zero vector has no direction and throws. */
export function cosine(a: readonly number[], b: readonly number[]): number {
  if (a.length !== b.length)
    throw new RangeError(`Expected vectors of one length but received ${a.length} and ${b.length}`);
  const na = norm(a);
  const nb = norm(b);
  if (na === 0 || nb === 0) throw new RangeError('Cosine similarity of a zero vector is undefined');
  return a.reduce((s, x, i) => s + x * b[i]!, 0) / (na * nb);
}

function mean(values: readonly number[]): number {
  return values.reduce((s, x) => s + x, 0) / values.length;
}

/** Population variance, Σ(x − mean)² / n (not the sample variance's n − 1). */
export function populationVariance(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError('Expected at least one value');
  const m = mean(values);
  return mean(values.map((x) => (x - m) ** 2));
}

/** Cosines of every generated × real pair and what DreamBench reports from them. */
export interface PairwiseSimilarity {
  /** cosines[i][j] = cos(generated i, real j). */
  cosines: number[][];
  /** perImage[i] = mean over real j of cosines[i][j]. */
  perImage: number[];
  /** Mean over all pairs (= mean of perImage, each row having as many pairs). */
  mean: number;
  /** Population variance of perImage. */
  variance: number;
}

/** All generated × real cosines, each generated image's mean, their mean and variance. */
export function pairwiseSimilarity(generated: Embeddings, real: Embeddings): PairwiseSimilarity {
  const g = embeddingRows(generated, 'generated embeddings');
  const r = embeddingRows(real, 'real embeddings');
  sameDimension(g, r, 'generated and real embeddings');
  // DreamBench DINO / CLIP-I: cosine of every generated × real pair, then means.
  const cosines = g.map((gi) => r.map((rj) => cosine(gi, rj)));
  const perImage = cosines.map(mean);
  return { cosines, perImage, mean: mean(perImage), variance: populationVariance(perImage) };
}

/**
 * DINO score: mean cosine of DINO CLS tokens (ViTModel lastHiddenState[:, 0] after the final
 * layernorm; `ViTModel.clsEmbeddings`) over all generated × real pairs.
 */
export function dinoScore(generatedCls: Embeddings, realCls: Embeddings): number {
  return pairwiseSimilarity(generatedCls, realCls).mean;
}

/** DINO-v: population variance over generated images of each one's mean DINO cosine to the real. */
export function dinoVariance(generatedCls: Embeddings, realCls: Embeddings): number {
  return pairwiseSimilarity(generatedCls, realCls).variance;
}

/**
 * CLIP-I: mean cosine of projected CLIP image embeddings (CLIPVisionModelWithProjection
 * imageEmbeds, unnormalised) over all generated × real pairs.
 */
export function clipImageScore(generatedEmbeds: Embeddings, realEmbeds: Embeddings): number {
  return pairwiseSimilarity(generatedEmbeds, realEmbeds).mean;
}

/** CLIP-Iv: population variance over generated images of each one's mean CLIP-I cosine. */
export function clipImageVariance(generatedEmbeds: Embeddings, realEmbeds: Embeddings): number {
  return pairwiseSimilarity(generatedEmbeds, realEmbeds).variance;
}

/**
 * CLIP-T: mean over generated images i of cos(image i, text), with projected CLIP embeddings
 * (imageEmbeds; CLIPTextModelWithProjection textEmbeds of `clipTextPrompt(...)`). `textEmbeds`
 * is one row shared by every image, or one row per image (row i is image i's prompt).
 */
export function clipTextScore(generatedEmbeds: Embeddings, textEmbeds: Embeddings): number {
  const g = embeddingRows(generatedEmbeds, 'generated image embeddings');
  const t = embeddingRows(textEmbeds, 'text embeddings');
  sameDimension(g, t, 'image and text embeddings');
  if (t.length !== 1 && t.length !== g.length)
    throw new RangeError(
      `Expected 1 text embedding or one per generated image (${g.length}) but received ${t.length}`,
    );
  // DreamBench CLIP-T: mean over generated images of cos(image, its prompt).
  return mean(g.map((gi, i) => cosine(gi, t[t.length === 1 ? 0 : i]!)));
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * The prompt CLIP-T scores against: the identifier replaced by the class noun, so
 * "a sks dog on the beach" (identifier "sks", class "dog") becomes "a dog on the beach". The
 * identifier followed by the class noun becomes the class noun once; a lone identifier becomes
 * the class noun. Whole words only (no letter or digit next to them); the rest is kept.
 */
export function clipTextPrompt(prompt: string, identifier: string, classWord: string): string {
  if (identifier.trim() === '') throw new RangeError('Expected a non-empty identifier');
  const id = escapeRegExp(identifier);
  const cls = escapeRegExp(classWord);
  // Word edges: no letter or digit on either side (Unicode-aware).
  const word = (re: string) => new RegExp(`(?<![\\p{L}\\p{N}])${re}(?![\\p{L}\\p{N}])`, 'gu');
  return prompt.replace(word(`${id}\\s+${cls}`), classWord).replace(word(id), classWord);
}
