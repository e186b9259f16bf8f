// diffusers' UNet blocks used by Stable Diffusion 1.x: CrossAttnDownBlock2D, DownBlock2D,
// UNetMidBlock2DCrossAttn, UpBlock2D and CrossAttnUpBlock2D, with the checkpoint's key names
// (resnets.M, attentions.M, downsamplers.0.conv, upsamplers.0.conv). Each resnet runs in its
// own tidy() scope, so its internals are freed as soon as it is done (autograd keeps what it
// saved for backward); the states between layers live until the caller's scope ends.
import { Tensor } from '../../engine/tensor.js';
import * as ops from '../../engine/ops.generated.js';
import { tidy } from '../../engine/scope.js';
import { Module, ModuleList } from '../../nn/module.js';
import { Downsample2D, ResnetBlock2D, Upsample2D } from '../resnet.js';
import { Transformer2DModel, nameTransformerBlocks, type ForwardCall } from './transformer_2d.js';

/** Settings every block shares (diffusers' resnet_* and attention arguments). */
export interface BlockOptions {
  numLayers: number;
  inChannels: number;
  outChannels: number;
  tembChannels: number;
  resnetEps?: number;
  resnetGroups?: number;
  resnetTimeScaleShift?: 'default' | 'scale_shift';
  dropout?: number;
}

/** Settings of the blocks with transformers. */
export interface CrossAttnOptions {
  /** Heads per attention layer (diffusers' attention_head_dim of the UNet config). */
  numAttentionHeads: number;
  crossAttentionDim: number;
  transformerLayersPerBlock?: number;
  useLinearProjection?: boolean;
  upcastAttention?: boolean;
}

export interface DownBlockOutput {
  hidden: Tensor;
  /** The states the up path concatenates: each resnet(+attention) output, then the downsample. */
  residuals: Tensor[];
}

/** A down block as the UNet drives it; blocks without attention ignore the context. */
export interface DownBlock extends Module {
  forward(
    x: Tensor,
    temb: Tensor | null,
    encoderHiddenStates: Tensor | null,
    call?: ForwardCall,
  ): DownBlockOutput;
}

/** An up block as the UNet drives it: residuals are consumed from the end. */
export interface UpBlock extends Module {
  readonly resnets: ModuleList<ResnetBlock2D>;
  forward(
    x: Tensor,
    residuals: readonly Tensor[],
    temb: Tensor | null,
    encoderHiddenStates: Tensor | null,
    upsampleSize?: [number, number] | null,
    call?: ForwardCall,
  ): Tensor;
}

function resnet(o: BlockOptions, inChannels: number, outputScaleFactor = 1): ResnetBlock2D {
  return new ResnetBlock2D({
    inChannels,
    outChannels: o.outChannels,
    tembChannels: o.tembChannels,
    groups: o.resnetGroups ?? 32,
    eps: o.resnetEps ?? 1e-6,
    dropout: o.dropout ?? 0,
    outputScaleFactor,
    timeEmbeddingNorm: o.resnetTimeScaleShift ?? 'default',
  });
}

function transformer(o: BlockOptions, a: CrossAttnOptions, channels: number): Transformer2DModel {
  return new Transformer2DModel({
    numAttentionHeads: a.numAttentionHeads,
    attentionHeadDim: Math.floor(channels / a.numAttentionHeads),
    inChannels: channels,
    numLayers: a.transformerLayersPerBlock ?? 1,
    crossAttentionDim: a.crossAttentionDim,
    normNumGroups: o.resnetGroups ?? 32,
    useLinearProjection: a.useLinearProjection ?? false,
    upcastAttention: a.upcastAttention ?? false,
  });
}

/** Resnets of a down block: the first takes inChannels, the rest outChannels. */
function downResnets(o: BlockOptions): ResnetBlock2D[] {
  return Array.from({ length: o.numLayers }, (_, i) =>
    resnet(o, i === 0 ? o.inChannels : o.outChannels),
  );
}

/**
 * Resnets of an up block: each takes the running state concatenated with one skip. The last
 * skip comes from the previous (wider) level: inChannels; the others carry outChannels.
 */
function upResnets(o: BlockOptions, prevOutputChannels: number): ResnetBlock2D[] {
  return Array.from({ length: o.numLayers }, (_, i) => {
    const skip = i === o.numLayers - 1 ? o.inChannels : o.outChannels;
    const running = i === 0 ? prevOutputChannels : o.outChannels;
    return resnet(o, running + skip);
  });
}

export interface DownBlock2DOptions extends BlockOptions {
  addDownsample?: boolean;
  downsamplePadding?: number;
}

/** Resnets, then an optional stride-2 downsample. */
export class DownBlock2D extends Module implements DownBlock {
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly downsamplers: ModuleList<Downsample2D> | null;

  constructor(o: DownBlock2DOptions) {
    super();
    this.resnets = this.registerModule('resnets', new ModuleList(downResnets(o)));
    const d = downsamplers(o);
    this.downsamplers = d && this.registerModule('downsamplers', d);
  }

  forward(x: Tensor, temb: Tensor | null): DownBlockOutput {
    const residuals: Tensor[] = [];
    let h = x;
    for (const r of this.resnets) {
      h = tidy(() => r.forward(h, temb));
      residuals.push(h);
    }
    return downsample(this.downsamplers, h, residuals);
  }
}

export type CrossAttnDownBlock2DOptions = DownBlock2DOptions & CrossAttnOptions;

/** (Resnet, Transformer2DModel) pairs, then an optional stride-2 downsample. */
export class CrossAttnDownBlock2D extends Module implements DownBlock {
  readonly attentions: ModuleList<Transformer2DModel>;
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly downsamplers: ModuleList<Downsample2D> | null;

  constructor(o: CrossAttnDownBlock2DOptions) {
    super();
    const attentions = Array.from({ length: o.numLayers }, () => transformer(o, o, o.outChannels));
    this.attentions = this.registerModule('attentions', new ModuleList(attentions));
    this.resnets = this.registerModule('resnets', new ModuleList(downResnets(o)));
    const d = downsamplers(o);
    this.downsamplers = d && this.registerModule('downsamplers', d);
    nameTransformerBlocks(this);
  }

  forward(
    x: Tensor,
    temb: Tensor | null,
    encoderHiddenStates: Tensor | null,
    call: ForwardCall = {},
  ): DownBlockOutput {
    const residuals: Tensor[] = [];
    let h = x;
    for (let i = 0; i < this.resnets.length; i++) {
      h = tidy(() => this.resnets.at(i).forward(h, temb));
      h = this.attentions.at(i).forward(h, encoderHiddenStates, call);
      residuals.push(h);
    }
    return downsample(this.downsamplers, h, residuals);
  }
}

function downsamplers(o: DownBlock2DOptions): ModuleList<Downsample2D> | null {
  if (!(o.addDownsample ?? true)) return null;
  return new ModuleList([new Downsample2D(o.outChannels, o.outChannels, o.downsamplePadding ?? 1)]);
}

function downsample(
  downsamplers: ModuleList<Downsample2D> | null,
  h: Tensor,
  residuals: Tensor[],
): DownBlockOutput {
  if (downsamplers) {
    for (const d of downsamplers) h = d.forward(h);
    residuals.push(h);
  }
  return { hidden: h, residuals };
}

export interface UNetMidBlock2DCrossAttnOptions extends CrossAttnOptions {
  inChannels: number;
  tembChannels: number;
  numLayers?: number;
  resnetEps?: number;
  resnetGroups?: number;
  resnetTimeScaleShift?: 'default' | 'scale_shift';
  /** mid_block_scale_factor: every resnet's output is divided by it. */
  outputScaleFactor?: number;
  dropout?: number;
}

/** Resnet, then (Transformer2DModel, resnet) × numLayers, at constant width. */
export class UNetMidBlock2DCrossAttn extends Module {
  readonly attentions: ModuleList<Transformer2DModel>;
  readonly resnets: ModuleList<ResnetBlock2D>;

  constructor(o: UNetMidBlock2DCrossAttnOptions) {
    super();
    const c = o.inChannels;
    const b: BlockOptions = { ...o, numLayers: o.numLayers ?? 1, outChannels: c };
    const attentions = Array.from({ length: b.numLayers }, () => transformer(b, o, c));
    const resnets = Array.from({ length: b.numLayers + 1 }, () =>
      resnet(b, c, o.outputScaleFactor ?? 1),
    );
    this.attentions = this.registerModule('attentions', new ModuleList(attentions));
    this.resnets = this.registerModule('resnets', new ModuleList(resnets));
    nameTransformerBlocks(this);
  }

  forward(
    x: Tensor,
    temb: Tensor | null,
    encoderHiddenStates: Tensor | null,
    call: ForwardCall = {},
  ): Tensor {
    let h = tidy(() => this.resnets.at(0).forward(x, temb));
    for (let i = 0; i < this.attentions.length; i++) {
      h = this.attentions.at(i).forward(h, encoderHiddenStates, call);
      h = tidy(() => this.resnets.at(i + 1).forward(h, temb));
    }
    return h;
  }
}

export interface UpBlock2DOptions extends BlockOptions {
  /** Channels of the state coming from the block below (the previous up block or the mid block). */
  prevOutputChannels: number;
  addUpsample?: boolean;
}

/** Resnets over [state, skip] concatenations, then an optional 2× upsample. */
export class UpBlock2D extends Module implements UpBlock {
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly upsamplers: ModuleList<Upsample2D> | null;

  constructor(o: UpBlock2DOptions) {
    super();
    this.resnets = this.registerModule(
      'resnets',
      new ModuleList(upResnets(o, o.prevOutputChannels)),
    );
    const u = upsamplers(o);
    this.upsamplers = u && this.registerModule('upsamplers', u);
  }

  forward(
    x: Tensor,
    residuals: readonly Tensor[],
    temb: Tensor | null,
    _encoderHiddenStates: Tensor | null = null,
    upsampleSize: [number, number] | null = null,
  ): Tensor {
    const skips = takeSkips(residuals, this.resnets.length);
    let h = x;
    for (let i = 0; i < this.resnets.length; i++) {
      // resnet over [state, skip]: (B, C + C_skip, H, W) -> (B, C_out, H, W)
      h = tidy(() => this.resnets.at(i).forward(ops.cat([h, skips[i]!], 1), temb));
    }
    return upsample(this.upsamplers, h, upsampleSize);
  }
}

export type CrossAttnUpBlock2DOptions = UpBlock2DOptions & CrossAttnOptions;

/** (Resnet over [state, skip], Transformer2DModel) pairs, then an optional 2× upsample. */
export class CrossAttnUpBlock2D extends Module implements UpBlock {
  readonly attentions: ModuleList<Transformer2DModel>;
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly upsamplers: ModuleList<Upsample2D> | null;

  constructor(o: CrossAttnUpBlock2DOptions) {
    super();
    const attentions = Array.from({ length: o.numLayers }, () => transformer(o, o, o.outChannels));
    this.attentions = this.registerModule('attentions', new ModuleList(attentions));
    this.resnets = this.registerModule(
      'resnets',
      new ModuleList(upResnets(o, o.prevOutputChannels)),
    );
    const u = upsamplers(o);
    this.upsamplers = u && this.registerModule('upsamplers', u);
    nameTransformerBlocks(this);
  }

  forward(
    x: Tensor,
    residuals: readonly Tensor[],
    temb: Tensor | null,
    encoderHiddenStates: Tensor | null,
    upsampleSize: [number, number] | null = null,
    call: ForwardCall = {},
  ): Tensor {
    const skips = takeSkips(residuals, this.resnets.length);
    let h = x;
    for (let i = 0; i < this.resnets.length; i++) {
      // resnet over [state, skip]: (B, C + C_skip, H, W) -> (B, C_out, H, W)
      h = tidy(() => this.resnets.at(i).forward(ops.cat([h, skips[i]!], 1), temb));
      h = this.attentions.at(i).forward(h, encoderHiddenStates, call);
    }
    return upsample(this.upsamplers, h, upsampleSize);
  }
}

/** The skips in the order the resnets use them: the last residual first. */
function takeSkips(residuals: readonly Tensor[], count: number): Tensor[] {
  if (residuals.length !== count) {
    throw new RangeError(
      `Expected ${count} residual states for an up block with ${count} resnets but received ${residuals.length}`,
    );
  }
  return [...residuals].reverse();
}

function upsamplers(o: UpBlock2DOptions): ModuleList<Upsample2D> | null {
  if (!(o.addUpsample ?? true)) return null;
  return new ModuleList([new Upsample2D(o.outChannels, o.outChannels)]);
}

function upsample(
  upsamplers: ModuleList<Upsample2D> | null,
  h: Tensor,
  size: [number, number] | null,
): Tensor {
  if (upsamplers) for (const u of upsamplers) h = u.forward(h, size ?? undefined);
  return h;
}
