// Stateless neural-network functions on top of the generated operators, with PyTorch's names
// and defaults. Models call these; modules hold parameters and call these.
import { Tensor } from '../engine/tensor.js';
import * as ops from '../engine/ops.generated.js';
import { call, hasOp } from '../engine/ops.js';
import type { Generator } from '../engine/random.js';

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
 * Attention softmax(q kᵀ · scale + mask) v over (B, heads, L, D) inputs. Uses libtorch's fused
 * kernel where it exists (torch >= 2.0) and the plain formulation otherwise. The mask is added
 * to the scores (use -inf to block).
 */
export function scaledDotProductAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  options: { mask?: Tensor | null; scale?: number; dropout?: number; generator?: Generator } = {},
): Tensor {
  const d = q.shape[q.ndim - 1]!;
  const scale = options.scale ?? 1 / Math.sqrt(d);
  if (HAS_SDPA && options.scale === undefined && !options.dropout) {
    return call(
      'aten::scaled_dot_product_attention',
      '',
      q,
      k,
      v,
      options.mask ?? null,
      0,
      false,
    ) as Tensor;
  }
  const probs = attentionProbs(q, k, scale, options.mask ?? null);
  const out = ops.matmul(probs, v);
  probs.dispose();
  return out;
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
