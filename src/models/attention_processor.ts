// diffusers' `Attention` layer and its processors.
//
// The layer holds the projections (to_q, to_k, to_v, to_out.0 and an optional group_norm, the
// checkpoint's key names) and does no arithmetic itself: `forward` hands everything to its
// processor. Changing what an attention layer computes — capturing its probabilities, or
// appending a trainable copy's features to its keys and values (P3S Eq. 7–8) — means swapping
// the processor, addressed by module path (see UNet2DConditionModel.attnProcessors()).
import { Tensor } from '../engine/tensor.js';
import { keep } from '../engine/scope.js';
import { Module, ModuleList } from '../nn/module.js';
import { GroupNorm, Linear } from '../nn/layers.js';
import * as F from '../nn/functional.js';
import * as ops from '../engine/ops.generated.js';

export interface AttentionOptions {
  queryDim: number;
  crossAttentionDim?: number | null;
  heads?: number;
  dimHead?: number;
  bias?: boolean;
  outBias?: boolean;
  upcastSoftmax?: boolean;
  residualConnection?: boolean;
  rescaleOutputFactor?: number;
  normNumGroups?: number | null;
  eps?: number;
}

/** What a processor receives besides the layer and its input. */
export interface AttentionCall {
  /** The context for cross-attention; null for self-attention. */
  encoderHiddenStates: Tensor | null;
}

export interface AttentionProcessor {
  process(attn: Attention, hiddenStates: Tensor, call: AttentionCall): Tensor;
}

export class Attention extends Module {
  readonly heads: number;
  readonly dimHead: number;
  readonly innerDim: number;
  readonly scale: number;
  readonly isCrossAttention: boolean;
  readonly upcastSoftmax: boolean;
  readonly residualConnection: boolean;
  readonly rescaleOutputFactor: number;
  readonly toQ: Linear;
  readonly toK: Linear;
  readonly toV: Linear;
  readonly toOut: ModuleList<Linear>;
  readonly groupNorm: GroupNorm | null;
  processor: AttentionProcessor = DEFAULT_PROCESSOR;

  constructor(options: AttentionOptions) {
    super();
    this.heads = options.heads ?? 8;
    this.dimHead = options.dimHead ?? 64;
    this.innerDim = this.heads * this.dimHead;
    this.scale = 1 / Math.sqrt(this.dimHead);
    this.isCrossAttention = options.crossAttentionDim != null;
    this.upcastSoftmax = options.upcastSoftmax ?? false;
    this.residualConnection = options.residualConnection ?? false;
    this.rescaleOutputFactor = options.rescaleOutputFactor ?? 1;
    const contextDim = options.crossAttentionDim ?? options.queryDim;
    const bias = options.bias ?? false;
    this.groupNorm =
      options.normNumGroups != null
        ? this.registerModule(
            'group_norm',
            new GroupNorm(options.normNumGroups, options.queryDim, options.eps ?? 1e-5),
          )
        : null;
    this.toQ = this.registerModule('to_q', new Linear(options.queryDim, this.innerDim, bias));
    this.toK = this.registerModule('to_k', new Linear(contextDim, this.innerDim, bias));
    this.toV = this.registerModule('to_v', new Linear(contextDim, this.innerDim, bias));
    this.toOut = this.registerModule(
      'to_out',
      new ModuleList([new Linear(this.innerDim, options.queryDim, options.outBias ?? true)]),
    );
  }

  forward(hiddenStates: Tensor, encoderHiddenStates: Tensor | null = null): Tensor {
    return this.processor.process(this, hiddenStates, { encoderHiddenStates });
  }

  // ---- steps processors are built from ----

  /** (B, C, H, W) -> (B, HW, C) and the optional input group norm; returns what finish() needs. */
  prepare(hiddenStates: Tensor): {
    x: Tensor;
    residual: Tensor;
    spatial: readonly number[] | null;
  } {
    const residual = hiddenStates;
    let x = hiddenStates;
    const spatial = x.ndim === 4 ? x.shape : null;
    if (spatial) {
      const [b, c, h, w] = spatial as [number, number, number, number];
      x = x.view(b, c, h * w).transpose(1, 2); // (B, HW, C)
    }
    if (this.groupNorm) x = this.groupNorm.forward(x.transpose(1, 2)).transpose(1, 2);
    return { x, residual, spatial };
  }

  /** (B, L, heads·d) -> (B, heads, L, d) */
  splitHeads(t: Tensor): Tensor {
    const [b, l] = t.shape as [number, number, number];
    return t.view(b, l, this.heads, -1).transpose(1, 2);
  }

  /** (B, heads, L, d) -> (B, L, heads·d) */
  mergeHeads(t: Tensor): Tensor {
    const [b, , l] = t.shape as [number, number, number, number];
    return t.transpose(1, 2).reshape(b, l, -1);
  }

  /** softmax(q kᵀ / √d) over (B, heads, Lq, Lk), in float32 when upcasting half precision. */
  attentionProbs(q: Tensor, k: Tensor): Tensor {
    if (this.upcastSoftmax && q.dtype !== 'float32') {
      const probs = F.attentionProbs(q.float(), k.float(), this.scale);
      return probs.to(q.dtype);
    }
    return F.attentionProbs(q, k, this.scale);
  }

  /** Output projection, back to (B, C, H, W) if the input was spatial, residual and rescale. */
  finish(out: Tensor, residual: Tensor, spatial: readonly number[] | null): Tensor {
    let h = this.toOut.at(0).forward(out);
    if (spatial) {
      const [b, c, hh, ww] = spatial as [number, number, number, number];
      h = h.transpose(1, 2).reshape(b, c, hh, ww);
    }
    if (this.residualConnection) h = h.add(residual);
    if (this.rescaleOutputFactor !== 1) h = h.div(this.rescaleOutputFactor);
    return h;
  }
}

/** The plain computation: softmax(QKᵀ/√d)V with the fused kernel where libtorch has one. */
export class AttnProcessor implements AttentionProcessor {
  process(attn: Attention, hiddenStates: Tensor, call: AttentionCall): Tensor {
    const { x, residual, spatial } = attn.prepare(hiddenStates);
    const context = call.encoderHiddenStates ?? x;
    const q = attn.splitHeads(attn.toQ.forward(x)); // (B, heads, L, d)
    const k = attn.splitHeads(attn.toK.forward(context)); // (B, heads, Lk, d)
    const v = attn.splitHeads(attn.toV.forward(context));
    const out =
      attn.upcastSoftmax && q.dtype !== 'float32'
        ? ops.matmul(attn.attentionProbs(q, k), v)
        : F.scaledDotProductAttention(q, k, v);
    return attn.finish(attn.mergeHeads(out), residual, spatial);
  }
}

const DEFAULT_PROCESSOR = new AttnProcessor();

/**
 * Computes attention like AttnProcessor and stores the probabilities (B, heads, Lq, Lk) of each
 * call under the layer's name. Stored tensors outlive tidy() scopes; call clear() to free them.
 */
export class AttnCaptureProcessor implements AttentionProcessor {
  readonly captured = new Map<string, Tensor>();
  constructor(readonly name: string) {}
  process(attn: Attention, hiddenStates: Tensor, call: AttentionCall): Tensor {
    const { x, residual, spatial } = attn.prepare(hiddenStates);
    const context = call.encoderHiddenStates ?? x;
    const q = attn.splitHeads(attn.toQ.forward(x));
    const k = attn.splitHeads(attn.toK.forward(context));
    const v = attn.splitHeads(attn.toV.forward(context));
    const probs = attn.attentionProbs(q, k); // (B, heads, Lq, Lk)
    this.captured.get(this.name)?.dispose();
    this.captured.set(this.name, keep(probs));
    return attn.finish(attn.mergeHeads(ops.matmul(probs, v)), residual, spatial);
  }
  clear(): void {
    for (const t of this.captured.values()) t.dispose();
    this.captured.clear();
  }
}
