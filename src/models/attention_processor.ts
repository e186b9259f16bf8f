// diffusers' `Attention` layer and its processors.
//
// The layer holds the projections (to_q, to_k, to_v, to_out.0 and an optional group_norm, the
// checkpoint's key names) and does no arithmetic itself: `forward` hands everything to its
// processor. Changing what an attention layer computes — capturing its probabilities, or
// appending a trainable copy's features to its keys and values (P3S Eq. 7–8) — means swapping
// the processor, addressed by module path (see UNet2DConditionModel.attnProcessors()). What a
// processor needs per call (those features) arrives with the call, in AttentionCall.context,
// so a processor holds no state that one forward pass could leave behind for the next.
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
  /** Scores q·kᵀ in float32 for half-precision inputs (diffusers' upcast_attention). */
  upcastAttention?: boolean;
  /** Softmax in float32 for half-precision inputs (diffusers' upcast_softmax). */
  upcastSoftmax?: boolean;
  residualConnection?: boolean;
  rescaleOutputFactor?: number;
  normNumGroups?: number | null;
  eps?: number;
}

/**
 * Per-call state a forward pass hands to every attention processor, as diffusers passes
 * cross_attention_kwargs: an open record each processor reads by its own key, so the models
 * need not know what a processor wants (P3S: the trainable copy's features of this call).
 * State that travels with the call cannot outlive it or leak into the next one.
 */
export type AttentionContext = Readonly<Record<string, unknown>>;

/** What a processor receives besides the layer and its input. */
export interface AttentionCall {
  /** The context for cross-attention; null for self-attention. */
  encoderHiddenStates: Tensor | null;
  /** This forward pass's per-call state for processors, or null. */
  context: AttentionContext | null;
}

/**
 * A typed key of AttentionContext: the one place that names an entry and its type, so the
 * code that fills a context and the processor that reads it agree without casts of their own.
 *   const FEATURES = new AttentionContextKey<ReadonlyMap<string, Tensor>>('features');
 *   unet.forward(x, t, c, { attentionContext: FEATURES.entry(features) });
 *   FEATURES.read(call)?.get(path) // in a processor
 */
export class AttentionContextKey<T> {
  constructor(readonly name: string) {}
  /** A context holding value under this key; spread several to combine them. */
  entry(value: T): AttentionContext {
    return { [this.name]: value };
  }
  /** The call's value under this key, or undefined when the call carries none. */
  read(call: AttentionCall): T | undefined {
    return call.context?.[this.name] as T | undefined;
  }
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
  readonly upcastAttention: boolean;
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
    this.upcastAttention = options.upcastAttention ?? false;
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

  forward(
    hiddenStates: Tensor,
    encoderHiddenStates: Tensor | null = null,
    context: AttentionContext | null = null,
  ): Tensor {
    return this.processor.process(this, hiddenStates, { encoderHiddenStates, context });
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

  /**
   * softmax(q kᵀ / √d) over (B, heads, Lq, Lk) as diffusers' get_attention_scores: q and k in
   * float32 with upcastAttention, the scores in float32 with upcastSoftmax; probs in q's dtype.
   */
  attentionProbs(q: Tensor, k: Tensor): Tensor {
    const dtype = q.dtype;
    if (dtype === 'float32' || (!this.upcastAttention && !this.upcastSoftmax)) {
      return F.attentionProbs(q, k, this.scale);
    }
    if (this.upcastAttention) {
      q = q.float();
      k = k.float();
    }
    let scores = ops.matmul(q, k.transpose(-2, -1)).mul(this.scale); // (B, heads, Lq, Lk)
    if (this.upcastSoftmax) scores = scores.float();
    return ops.softmax(scores, -1).to(dtype);
  }

  /**
   * softmax(q kᵀ / √d) v for (B, heads, L, d) inputs: libtorch's fused kernel where it has one
   * and no upcasting is asked for, else attentionProbs() then the product with v.
   */
  attend(q: Tensor, k: Tensor, v: Tensor): Tensor {
    if (q.dtype === 'float32' || (!this.upcastAttention && !this.upcastSoftmax)) {
      return F.scaledDotProductAttention(q, k, v); // scale 1/√d, d = dimHead
    }
    return ops.matmul(this.attentionProbs(q, k), v);
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

/** Q from x, K and V from the given inputs (B, L, C): softmax(QKᵀ/√d)V as (B, Lq, heads·d). */
export function attendInputs(attn: Attention, x: Tensor, keyInput: Tensor, valueInput: Tensor): Tensor {
  const q = attn.splitHeads(attn.toQ.forward(x)); // (B, heads, Lq, d)
  const k = attn.splitHeads(attn.toK.forward(keyInput)); // (B, heads, Lk, d)
  const v = attn.splitHeads(attn.toV.forward(valueInput)); // (B, heads, Lk, d)
  return attn.mergeHeads(attn.attend(q, k, v)); // (B, Lq, heads·d)
}

/** The plain computation: softmax(QKᵀ/√d)V with the fused kernel where libtorch has one. */
export class AttnProcessor implements AttentionProcessor {
  process(attn: Attention, hiddenStates: Tensor, call: AttentionCall): Tensor {
    const { x, residual, spatial } = attn.prepare(hiddenStates);
    const context = call.encoderHiddenStates ?? x;
    return attn.finish(attendInputs(attn, x, context, context), residual, spatial);
  }
}

const DEFAULT_PROCESSOR = new AttnProcessor();

/**
 * Computes attention like AttnProcessor and stores the probabilities (B, heads, Lq, Lk) of each
 * call under its name, in float32. Stored tensors outlive tidy() scopes (and keep their autograd graph, so a
 * loss on them trains what produced them); call clear() to free them. Several processors may
 * share one store: `new AttnCaptureProcessor(path, store)`.
 */
export class AttnCaptureProcessor implements AttentionProcessor {
  constructor(
    readonly name: string,
    readonly captured: Map<string, Tensor> = new Map(),
  ) {}
  process(attn: Attention, hiddenStates: Tensor, call: AttentionCall): Tensor {
    const { x, residual, spatial } = attn.prepare(hiddenStates);
    const context = call.encoderHiddenStates ?? x;
    const q = attn.splitHeads(attn.toQ.forward(x)); // (B, heads, Lq, d)
    const k = attn.splitHeads(attn.toK.forward(context)); // (B, heads, Lk, d)
    const v = attn.splitHeads(attn.toV.forward(context));
    const probs = attn.attentionProbs(q, k); // (B, heads, Lq, Lk)
    this.captured.get(this.name)?.dispose();
    // Stored in float32 even from a layer held in 16 bits (models/precision.ts): a loss compares
    // them with a float32 model's, and libtorch's losses need equal dtypes in backward.
    this.captured.set(this.name, keep(probs.dtype === 'float32' ? probs : probs.float()));
    return attn.finish(attn.mergeHeads(ops.matmul(probs, v)), residual, spatial);
  }
  /** Frees every tensor in the store (shared stores included) and empties it. */
  clear(): void {
    for (const t of this.captured.values()) t.dispose();
    this.captured.clear();
  }
}

/** What an ExtraKVProcessor's source gives a layer for one call; every field is optional. */
export interface ExtraKV {
  /** Replaces the layer's own input as the key input (B, L, C). */
  keyInput?: Tensor;
  /** Replaces the layer's own input as the value input (B, L, C). */
  valueInput?: Tensor;
  /** Extra key tokens (B, M, C), appended after the key input before W_K. */
  extraKey?: Tensor;
  /** Extra value tokens (B, M, C), appended after the value input before W_V. */
  extraValue?: Tensor;
}

/**
 * Called on each call of the layer with its normed input x (B, HW, C) and the call itself, whose
 * context carries the forward pass's per-call inputs (read them with an AttentionContextKey);
 * null (or {}) leaves the layer's computation unchanged. Tensors created inside the callback
 * belong to the layer call (a UNet frees them when the call ends): make lasting features
 * beforehand, or keep() them.
 */
export type ExtraKVSource = (x: Tensor, call: AttentionCall) => ExtraKV | null;

/**
 * Attention whose keys and values get extra features along the token axis:
 *   K = W_K [keyInput ?? c, extraKey],   V = W_V [valueInput ?? c, extraValue]
 * with c the layer's context (its own normed input x for self-attention). P3S's condition
 * injection, K = W_K[z, f] and V = W_V[z + λf, f] (Eq. 7–8), is keyInput = z (or omitted),
 * extraKey = f, valueInput = z + λf, extraValue = f. With no extras the result is bit-identical
 * to AttnProcessor's (same operations in the same order).
 */
export class ExtraKVProcessor implements AttentionProcessor {
  constructor(readonly source: ExtraKVSource) {}
  process(attn: Attention, hiddenStates: Tensor, call: AttentionCall): Tensor {
    const { x, residual, spatial } = attn.prepare(hiddenStates);
    const context = call.encoderHiddenStates ?? x;
    const extra = this.source(x, call);
    let keyInput = extra?.keyInput ?? context;
    let valueInput = extra?.valueInput ?? context;
    if (extra?.extraKey) keyInput = ops.cat([keyInput, extra.extraKey], 1); // (B, L + M, C)
    if (extra?.extraValue) valueInput = ops.cat([valueInput, extra.extraValue], 1);
    if (keyInput.ndim !== 3 || valueInput.ndim !== 3 || keyInput.shape[1] !== valueInput.shape[1]) {
      throw new RangeError(
        `ExtraKVProcessor needs keys and values of shape (B, tokens, C) with equal token counts but received keys [${keyInput.shape.join(', ')}] and values [${valueInput.shape.join(', ')}]`,
      );
    }
    return attn.finish(attendInputs(attn, x, keyInput, valueInput), residual, spatial);
  }
}
