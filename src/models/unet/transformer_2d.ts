// diffusers' Transformer2DModel as Stable Diffusion 1.x uses it (continuous input): GroupNorm,
// proj_in (1×1 conv, or linear with use_linear_projection), BasicTransformerBlocks — LayerNorm +
// self-attention, LayerNorm + cross-attention, LayerNorm + GEGLU feed-forward, each residual —
// then proj_out and the residual around it all.
import { Tensor } from '../../engine/tensor.js';
import { tidy } from '../../engine/scope.js';
import { Module, ModuleList } from '../../nn/module.js';
import { Conv2d, GroupNorm, LayerNorm, Linear } from '../../nn/layers.js';
import * as F from '../../nn/functional.js';
import { Attention, type AttentionContext } from '../attention_processor.js';

/** What onTransformerBlock sees of one BasicTransformerBlock call, all (B, HW, C). */
export interface TransformerBlockStates {
  /** The block's input hidden states. */
  input: Tensor;
  /** norm1(input): what the self-attention layer attn1 receives (P3S's z_i / f_i). */
  normed: Tensor;
  /** The block's output hidden states. */
  output: Tensor;
}

/** Called after each transformer block with its module path and states. */
export type TransformerBlockHook = (path: string, states: TransformerBlockStates) => void;

/**
 * What one forward call carries down through the blocks to every transformer block, beside the
 * hidden states: its observers and its attention processors' per-call state. One bundle, so a
 * block in between passes it on without knowing what it holds.
 */
export interface ForwardCall {
  /** A read-only observer of each block's states. */
  onTransformerBlock?: TransformerBlockHook;
  /** Handed to both attention layers of every block (see AttentionContext). */
  attentionContext?: AttentionContext;
}

class Dropout extends Module {
  constructor(readonly p: number) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.dropout(x, this.p, this.training);
  }
}

/** GELU-gated linear unit: proj to 2×inner, x·gelu(gate). */
export class GEGLU extends Module {
  readonly proj: Linear;
  constructor(dimIn: number, dimOut: number) {
    super();
    this.proj = this.registerModule('proj', new Linear(dimIn, dimOut * 2));
  }
  forward(x: Tensor): Tensor {
    const [h, gate] = this.proj.forward(x).chunk(2, -1) as [Tensor, Tensor];
    return h.mul(F.gelu(gate));
  }
}

/** diffusers' FeedForward with activation_fn "geglu": net.0 GEGLU, net.1 dropout, net.2 linear. */
export class FeedForward extends Module {
  readonly net: ModuleList;
  private readonly geglu: GEGLU;
  private readonly dropout: Dropout;
  private readonly out: Linear;
  constructor(dim: number, options: { mult?: number; dropout?: number } = {}) {
    super();
    const inner = Math.floor(dim * (options.mult ?? 4));
    this.geglu = new GEGLU(dim, inner);
    this.dropout = new Dropout(options.dropout ?? 0);
    this.out = new Linear(inner, dim);
    this.net = this.registerModule('net', new ModuleList([this.geglu, this.dropout, this.out]));
  }
  forward(x: Tensor): Tensor {
    return this.out.forward(this.dropout.forward(this.geglu.forward(x)));
  }
}

export interface BasicTransformerBlockOptions {
  dim: number;
  numAttentionHeads: number;
  attentionHeadDim: number;
  /** Context width of attn2; null gives a block without cross-attention (norm2/attn2 absent). */
  crossAttentionDim: number | null;
  upcastAttention?: boolean;
  dropout?: number;
}

/** SD's transformer block: self-attention, cross-attention and a GEGLU feed-forward. */
export class BasicTransformerBlock extends Module {
  readonly norm1: LayerNorm;
  readonly attn1: Attention;
  readonly norm2: LayerNorm | null;
  readonly attn2: Attention | null;
  readonly norm3: LayerNorm;
  readonly ff: FeedForward;
  /** Module path reported to hooks; set by the enclosing model to its full path. */
  path = '';

  constructor(o: BasicTransformerBlockOptions) {
    super();
    const attention = (crossAttentionDim: number | null): Attention =>
      new Attention({
        queryDim: o.dim,
        crossAttentionDim,
        heads: o.numAttentionHeads,
        dimHead: o.attentionHeadDim,
        upcastAttention: o.upcastAttention ?? false,
      });
    this.norm1 = this.registerModule('norm1', new LayerNorm(o.dim, 1e-5));
    this.attn1 = this.registerModule('attn1', attention(null));
    if (o.crossAttentionDim != null) {
      this.norm2 = this.registerModule('norm2', new LayerNorm(o.dim, 1e-5));
      this.attn2 = this.registerModule('attn2', attention(o.crossAttentionDim));
    } else {
      this.norm2 = null;
      this.attn2 = null;
    }
    this.norm3 = this.registerModule('norm3', new LayerNorm(o.dim, 1e-5));
    this.ff = this.registerModule('ff', new FeedForward(o.dim, { dropout: o.dropout ?? 0 }));
  }

  /** x (B, HW, C), context (B, L, C_ctx) -> (B, HW, C). */
  forward(x: Tensor, encoderHiddenStates: Tensor | null, call: ForwardCall = {}): Tensor {
    // Each residual branch in its own scope: its internals (up to B·heads·HW² attention
    // scores, and the 8·C-wide GEGLU) are freed as soon as it is done.
    const normed = this.norm1.forward(x);
    const context = call.attentionContext ?? null;
    const a = tidy(() => this.attn1.forward(normed, null, context).add(x));
    const { attn2, norm2 } = this;
    const b =
      attn2 && norm2
        ? tidy(() => attn2.forward(norm2.forward(a), encoderHiddenStates, context).add(a))
        : a;
    const h = tidy(() => this.ff.forward(this.norm3.forward(b)).add(b));
    call.onTransformerBlock?.(this.path, { input: x, normed, output: h });
    return h;
  }
}

export interface Transformer2DModelOptions {
  numAttentionHeads: number;
  /** Channels per head (diffusers computes it as channels // heads). */
  attentionHeadDim: number;
  inChannels: number;
  numLayers?: number;
  crossAttentionDim: number | null;
  normNumGroups?: number;
  useLinearProjection?: boolean;
  upcastAttention?: boolean;
  dropout?: number;
}

export class Transformer2DModel extends Module {
  readonly norm: GroupNorm;
  readonly projIn: Conv2d | Linear;
  readonly transformerBlocks: ModuleList<BasicTransformerBlock>;
  readonly projOut: Conv2d | Linear;
  readonly useLinearProjection: boolean;
  readonly innerDim: number;

  constructor(o: Transformer2DModelOptions) {
    super();
    this.innerDim = o.numAttentionHeads * o.attentionHeadDim;
    this.useLinearProjection = o.useLinearProjection ?? false;
    // The group norm's eps is fixed at 1e-6 in diffusers, whatever the UNet's norm_eps.
    this.norm = this.registerModule(
      'norm',
      new GroupNorm(o.normNumGroups ?? 32, o.inChannels, 1e-6),
    );
    const project = (from: number, to: number): Conv2d | Linear =>
      this.useLinearProjection ? new Linear(from, to) : new Conv2d(from, to, 1);
    this.projIn = this.registerModule('proj_in', project(o.inChannels, this.innerDim));
    const blocks = Array.from(
      { length: o.numLayers ?? 1 },
      () =>
        new BasicTransformerBlock({
          dim: this.innerDim,
          numAttentionHeads: o.numAttentionHeads,
          attentionHeadDim: o.attentionHeadDim,
          crossAttentionDim: o.crossAttentionDim,
          upcastAttention: o.upcastAttention ?? false,
          dropout: o.dropout ?? 0,
        }),
    );
    this.transformerBlocks = this.registerModule('transformer_blocks', new ModuleList(blocks));
    this.projOut = this.registerModule('proj_out', project(this.innerDim, o.inChannels));
    nameTransformerBlocks(this);
  }

  /** x (B, C, H, W), context (B, L, C_ctx) -> (B, C, H, W). */
  forward(x: Tensor, encoderHiddenStates: Tensor | null, call: ForwardCall = {}): Tensor {
    const [b, c, height, width] = x.shape as [number, number, number, number];
    let h = this.norm.forward(x);
    if (this.useLinearProjection) {
      h = h.permute(0, 2, 3, 1).reshape(b, height * width, c); // (B, HW, C)
      h = this.projIn.forward(h); // (B, HW, inner)
    } else {
      h = this.projIn.forward(h); // (B, inner, H, W)
      h = h.permute(0, 2, 3, 1).reshape(b, height * width, this.innerDim); // (B, HW, inner)
    }
    for (const block of this.transformerBlocks) h = block.forward(h, encoderHiddenStates, call);
    if (this.useLinearProjection) {
      h = this.projOut.forward(h); // (B, HW, C)
      h = h.reshape(b, height, width, c).permute(0, 3, 1, 2).contiguous(); // (B, C, H, W)
    } else {
      // (B, HW, inner) -> (B, inner, H, W)
      h = h.reshape(b, height, width, this.innerDim).permute(0, 3, 1, 2).contiguous();
      h = this.projOut.forward(h); // (B, C, H, W)
    }
    return h.add(x);
  }
}

/**
 * Sets each BasicTransformerBlock's hook path to its module path under root. Containers call this
 * at the end of their constructors, so the outermost one (the UNet) leaves full paths.
 */
export function nameTransformerBlocks(root: Module): void {
  for (const [path, m] of root.namedModules()) {
    if (m instanceof BasicTransformerBlock) m.path = path;
  }
}
