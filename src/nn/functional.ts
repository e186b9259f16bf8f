// Stateless neural-network functions on top of the generated operators, with PyTorch's names
// and defaults. Models call these; modules hold parameters and call these.
import { Tensor } from '../engine/tensor.js';
import * as ops from '../engine/ops.generated.js';
import { call, hasOp } from '../engine/ops.js';
import type { Generator } from '../engine/random.js';
import { native } from '../engine/native.js';
import { ITEM_SIZE } from '../engine/dtype.js';

export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  return ops.linear(x, weight, bias);
}

export function conv2d(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null = null,
  options: {
    stride?: number | number[];
    padding?: number | number[];
    dilation?: number | number[];
    groups?: number;
  } = {},
): Tensor {
  return ops.conv2d(
    x,
    weight,
    bias,
    options.stride ?? 1,
    options.padding ?? 0,
    options.dilation ?? 1,
    options.groups ?? 1,
  );
}

export function groupNorm(
  x: Tensor,
  numGroups: number,
  weight: Tensor | null,
  bias: Tensor | null,
  eps = 1e-5,
): Tensor {
  return ops.groupNorm(x, numGroups, weight, bias, eps, true);
}

export function layerNorm(
  x: Tensor,
  normalizedShape: number[],
  weight: Tensor | null,
  bias: Tensor | null,
  eps = 1e-5,
): Tensor {
  return ops.layerNorm(x, normalizedShape, weight, bias, eps, true);
}

export function silu(x: Tensor): Tensor {
  return ops.silu(x);
}

/** GELU, exact (erf) by default or the tanh approximation. */
export function gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  return ops.gelu(x, approximate);
}

/** CLIP's quick GELU: x * sigmoid(1.702 x). */
export function quickGelu(x: Tensor): Tensor {
  const s = ops.mulScalar(x, 1.702);
  const g = ops.sigmoid(s);
  s.dispose();
  const out = ops.mul(x, g);
  g.dispose();
  return out;
}

export function softmax(x: Tensor, dim: number): Tensor {
  return ops.softmax(x, dim);
}

export function dropout(x: Tensor, p: number, training: boolean): Tensor {
  if (!training || p === 0) return x;
  return ops.dropout(x, p, training);
}

export function embedding(weight: Tensor, ids: Tensor): Tensor {
  return ops.embedding(weight, ids);
}

export type InterpolateMode = 'nearest' | 'bilinear' | 'bicubic';

/** Resizes (B, C, H, W) to a size or by a scale factor, as torch.nn.functional.interpolate. */
export function interpolate(
  x: Tensor,
  options: {
    size?: [number, number];
    scaleFactor?: number;
    mode?: InterpolateMode;
    alignCorners?: boolean;
  },
): Tensor {
  const mode = options.mode ?? 'nearest';
  const size = options.size ?? null;
  const scales =
    options.scaleFactor === undefined ? null : [options.scaleFactor, options.scaleFactor];
  if ((size === null) === (scales === null)) {
    throw new Error('interpolate needs exactly one of size and scaleFactor');
  }
  switch (mode) {
    case 'nearest':
      return ops.upsampleNearest2d(x, size, scales);
    case 'bilinear':
      return ops.upsampleBilinear2d(x, size, options.alignCorners ?? false, scales);
    case 'bicubic':
      return ops.upsampleBicubic2d(x, size, options.alignCorners ?? false, scales);
  }
  throw new Error(
    `Expected an interpolate mode (nearest, bilinear, bicubic) but received ${String(mode)}`,
  );
}

export function avgPool2d(x: Tensor, kernel: number, stride: number = kernel, padding = 0): Tensor {
  return ops.avgPool2d(x, kernel, stride, padding);
}

export function mseLoss(
  input: Tensor,
  target: Tensor,
  reduction: 'mean' | 'sum' | 'none' = 'mean',
): Tensor {
  return ops.mseLoss(input, target, reduction === 'none' ? 0 : reduction === 'mean' ? 1 : 2);
}

export function crossEntropy(logits: Tensor, target: Tensor): Tensor {
  return ops.crossEntropyLoss(logits, target);
}

const HAS_SDPA = hasOp('aten::scaled_dot_product_attention');

/**
 * Bytes of scores per block of query rows in the chunked attention, and the size above which a
 * call's full (B·heads, Nq, Nk) scores are chunked (two blocks). Below it — cross-attention to 77
 * tokens, self-attention at 16×16 latents and under — the scores are no larger than the layer's
 * other activations, and chunking would only add the backward's recomputation (one more q·kᵀ and
 * softmax per call). 32 MiB blocks keep ≥ 128 query rows per product for Nk ≤ 8192 at
 * B·heads = 8, where the per-block call overhead is negligible, while at 64×64 latents they
 * replace 0.5–1 GiB of kept probabilities per layer. P3S_ATTENTION_CHUNK_BYTES overrides it (the
 * fixture tests set it tiny to run the reference models through the chunked path).
 */
export const DEFAULT_ATTENTION_CHUNK_BYTES = 32 * 2 ** 20;
let attentionChunkBytes =
  Number(process.env.P3S_ATTENTION_CHUNK_BYTES ?? 0) || DEFAULT_ATTENTION_CHUNK_BYTES;

/** Sets the block size of chunked attention (Infinity: never chunk); returns the previous one. */
export function setAttentionChunkBytes(bytes: number): number {
  if (!(bytes > 0)) throw new RangeError(`Expected a positive chunk size but received ${bytes}`);
  const previous = attentionChunkBytes;
  attentionChunkBytes = bytes;
  return previous;
}

/** How scaledDotProductAttention computes a call; see DEFAULT_ATTENTION_CHUNK_BYTES for 'chunked'. */
export type AttentionPath = 'fused' | 'chunked' | 'plain';

/** The path scaledDotProductAttention takes for these inputs and options. */
export function attentionPath(
  q: Tensor,
  k: Tensor,
  options: { scale?: number; dropout?: number } = {},
): AttentionPath {
  if (options.dropout) return 'plain';
  if (HAS_SDPA && options.scale === undefined) return 'fused';
  return attentionChunkRows(q, k) < q.shape[q.ndim - 2]! ? 'chunked' : 'plain';
}

/** Query rows per block whose scores fit the chunk size (at least 16); all rows: no chunking. */
function attentionChunkRows(q: Tensor, k: Tensor): number {
  const batch = q.shape.slice(0, -2).reduce((a, b) => a * b, 1);
  const rowBytes = batch * k.shape[k.ndim - 2]! * ITEM_SIZE[q.dtype];
  const rows = Math.max(16, Math.floor(attentionChunkBytes / rowBytes));
  return q.shape[q.ndim - 2]! > 2 * rows ? rows : q.shape[q.ndim - 2]!;
}

/**
 * Attention softmax(q kᵀ · scale + mask) v over (B, heads, L, D) inputs. Uses libtorch's fused
 * kernel where it exists (torch >= 2.0); on 1.13, calls with large score matrices go through the
 * native core's chunked attention (query blocks, scores recomputed in backward, so the full
 * matrix is never held), the rest through the plain formulation. The mask is added to the
 * scores (use -inf to block).
 */
export function scaledDotProductAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options: { mask?: Tensor | null; scale?: number; dropout?: number; generator?: Generator } = {},
): Tensor {
  const d = q.shape[q.ndim - 1]!;
  const scale = options.scale ?? 1 / Math.sqrt(d);
  const mask = options.mask ?? null;
  const path = attentionPath(q, k, options);
  if (path === 'fused') {
    return call('aten::scaled_dot_product_attention', '', q, k, v, mask, 0, false) as Tensor;
  }
  if (path === 'chunked') {
    return chunkedAttention(q, k, v, { mask, scale, chunkRows: attentionChunkRows(q, k) });
  }
  const probs = attentionProbs(q, k, scale, mask);
  const out = ops.matmul(probs, v);
  probs.dispose();
  return out;
}

/**
 * softmax(q kᵀ · scale + mask) v by blocks of `chunkRows` query rows, differentiable in q, k and
 * v (not the mask): the native core's ChunkedAttention, which keeps only its inputs for backward.
 */
export function chunkedAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options: { mask?: Tensor | null; scale?: number; chunkRows: number },
): Tensor {
  const scale = options.scale ?? 1 / Math.sqrt(q.shape[q.ndim - 1]!);
  const mask = options.mask?.handle ?? null;
  return new Tensor(
    native.chunkedAttention(q.handle, k.handle, v.handle, mask, scale, options.chunkRows),
  );
}

/** softmax(q kᵀ · scale + mask) over the last dim: (B, heads, Lq, Lk). */
export function attentionProbs(
  q: Tensor,
  k: Tensor,
  scale: number,
  mask: Tensor | null = null,
): Tensor {
  const kt = ops.transpose(k, -2, -1);
  let scores = ops.matmul(q, kt);
  kt.dispose();
  const scaled = ops.mulScalar(scores, scale);
  scores.dispose();
  scores = scaled;
  if (mask !== null) {
    const masked = ops.add(scores, mask);
    scores.dispose();
    scores = masked;
  }
  const probs = ops.softmax(scores, -1);
  scores.dispose();
  return probs;
}
