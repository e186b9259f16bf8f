// Local injection (not in the paper): the trainable copy's features reach the frozen U-Net only
// where the frozen U-Net draws the subject, read from its cross-attention to the subject's words
// (identifier and class word) at the previous denoising step. Why: the copy carries its whole
// condition in at every position, background and look-alikes included, so a stronger injection
// buys the subject's look with the prompted context (docs/toy.md has the measurements); kept to
// the subject's region, the prompt keeps the rest of the image.
//
// The maps come from the first up block with cross-attention (up_blocks.1 in SD 1.5, at a quarter
// of the latent's side, the resolution at which Prompt-to-Prompt reads its word maps; in the toy
// U-Net at half of it): the last layers' maps are too diffuse to outline anything.
import { ones, tensor } from '../../engine/creation.js';
import { tidy } from '../../engine/scope.js';
import type { Tensor } from '../../engine/tensor.js';
import * as ops from '../../engine/ops.generated.js';
import * as F from '../../nn/functional.js';
import type { CLIPTokenizer } from '../../tokenizers/clip_tokenizer.js';

/** The cross-attention processor keys of the first up block that has cross-attention. */
export function regionLayerKeys(processorKeys: Iterable<string>): string[] {
  const byBlock = new Map<number, string[]>();
  for (const key of processorKeys) {
    const m = /^up_blocks\.(\d+)\..*\.attn2\.processor$/.exec(key);
    if (!m) continue;
    const block = Number(m[1]);
    byBlock.set(block, [...(byBlock.get(block) ?? []), key]);
  }
  if (byBlock.size === 0)
    throw new Error('Local injection needs a U-Net with cross-attention in its up blocks');
  return byBlock.get(Math.min(...byBlock.keys()))!;
}

/**
 * Positions in the encoded prompt (counting the start token) of every token of the words, as
 * whole words: "a sks dog on the beach" with words ["sks", "dog"] gives [2, 3].
 */
export function wordTokenPositions(
  tokenizer: CLIPTokenizer,
  prompt: string,
  words: readonly string[],
): number[] {
  const ids = tokenizer.encode(prompt);
  const positions = new Set<number>();
  for (const word of words) {
    const piece = tokenizer.encode(word);
    // a word outside a small vocabulary would match every other unknown word
    if (piece.length === 0 || piece.includes(tokenizer.unkTokenId)) continue;
    for (let i = 0; i + piece.length <= ids.length; i++) {
      if (piece.every((id, k) => ids[i + k] === id))
        for (let k = 0; k < piece.length; k++) positions.add(i + k + 1);
    }
  }
  return [...positions].sort((a, b) => a - b);
}

export interface RegionRequest {
  /** Token positions of the subject's words (wordTokenPositions). */
  tokens: readonly number[];
  /** The latent's (h, w). */
  latentSize: [number, number];
  /** Full weight from this share of the map's range up, linearly less below it. */
  share: number;
  /** Rows of the maps that hold the prompt's (the conditional half with guidance). */
  rows: [number, number];
  /** How many times to repeat the result along the batch (2 with guidance: both halves). */
  repeat: number;
}

/**
 * The subject's region (B, 1, h, w) in [0, 1] from cross-attention maps (B, heads, hw, L) of any
 * resolution: their attention to the subject's tokens, summed over tokens, averaged over heads
 * and layers (each resized to the latent), each image's map scaled to its own range [0, 1], and
 * divided by `share` (clamped at 1).
 */
export function subjectRegion(maps: readonly Tensor[], request: RegionRequest): Tensor {
  const [h, w] = request.latentSize;
  const [from, to] = request.rows;
  const tokens = request.tokens.filter((t) => t < maps[0]!.shape[3]!); // a truncated prompt's
  return tidy(() => {
    if (tokens.length === 0)
      return ones([(to - from) * request.repeat, 1, h, w], { device: maps[0]!.device });
    const index = tensor(tokens, [tokens.length], {
      dtype: 'int64',
      device: maps[0]!.device,
    });
    const perLayer = maps.map((m) => {
      const b = to - from;
      const s = Math.round(Math.sqrt((h * w) / m.shape[2]!));
      const words = ops
        .indexSelect(m.slice(0, from, to), 3, index)
        .sum([3])
        .mean([1]);
      const grid = words.reshape(b, 1, h / s, w / s);
      return s === 1 ? grid : F.interpolate(grid, { size: [h, w], mode: 'bilinear' });
    });
    const a = ops.stack(perLayer, 0).mean([0]).float(); // (B, 1, h, w)
    const low = ops.amin(a, [2, 3], true);
    const range = ops.amax(a, [2, 3], true).sub(low).clamp(1e-12, null);
    const region = a.sub(low).div(range).div(request.share).clamp(0, 1);
    return request.repeat === 1
      ? region
      : ops.cat(new Array<Tensor>(request.repeat).fill(region), 0);
  });
}

/** The region as a layer of `tokens` positions sees it: (B, tokens, 1), averaged over cells. */
export function regionAt(region: Tensor, tokens: number): Tensor {
  const [b, , h, w] = region.shape as [number, number, number, number];
  const stride = Math.round(Math.sqrt((h * w) / tokens));
  const pooled = stride === 1 ? region : F.avgPool2d(region, stride);
  return pooled.reshape(b, tokens, 1);
}
