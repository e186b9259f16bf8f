// diffusers' ResnetBlock2D, Downsample2D and Upsample2D (UNet and VAE building blocks).
import { Tensor } from '../engine/tensor.js';
import { Module } from '../nn/module.js';
import { Conv2d, GroupNorm, Linear } from '../nn/layers.js';
import * as F from '../nn/functional.js';
import * as ops from '../engine/ops.generated.js';

export interface ResnetBlock2DOptions {
  inChannels: number;
  outChannels?: number;
  /** Time-embedding width; null for blocks without one (the VAE). */
  tembChannels?: number | null;
  groups?: number;
  eps?: number;
  dropout?: number;
  outputScaleFactor?: number;
  timeEmbeddingNorm?: 'default' | 'scale_shift';
}

export class ResnetBlock2D extends Module {
  readonly norm1: GroupNorm;
  readonly conv1: Conv2d;
  readonly timeEmbProj: Linear | null;
  readonly norm2: GroupNorm;
  readonly conv2: Conv2d;
  readonly convShortcut: Conv2d | null;
  readonly outputScaleFactor: number;
  readonly dropout: number;
  readonly scaleShift: boolean;

  constructor(options: ResnetBlock2DOptions) {
    super();
    const inC = options.inChannels;
    const outC = options.outChannels ?? inC;
    const groups = options.groups ?? 32;
    const eps = options.eps ?? 1e-6;
    this.scaleShift = (options.timeEmbeddingNorm ?? 'default') === 'scale_shift';
    this.norm1 = this.registerModule('norm1', new GroupNorm(groups, inC, eps));
    this.conv1 = this.registerModule('conv1', new Conv2d(inC, outC, 3, { padding: 1 }));
    this.timeEmbProj =
      options.tembChannels != null
        ? this.registerModule(
            'time_emb_proj',
            new Linear(options.tembChannels, this.scaleShift ? 2 * outC : outC),
          )
        : null;
    this.norm2 = this.registerModule('norm2', new GroupNorm(groups, outC, eps));
    this.conv2 = this.registerModule('conv2', new Conv2d(outC, outC, 3, { padding: 1 }));
    this.convShortcut =
      inC !== outC ? this.registerModule('conv_shortcut', new Conv2d(inC, outC, 1)) : null;
    this.outputScaleFactor = options.outputScaleFactor ?? 1;
    this.dropout = options.dropout ?? 0;
  }

  forward(x: Tensor, temb: Tensor | null = null): Tensor {
    let h = this.conv1.forward(F.silu(this.norm1.forward(x)));
    let scaleShift: Tensor[] | null = null;
    if (this.timeEmbProj && temb) {
      const t = this.timeEmbProj.forward(F.silu(temb)).unsqueeze(-1).unsqueeze(-1); // (B, C, 1, 1)
      if (this.scaleShift) scaleShift = t.chunk(2, 1);
      else h = h.add(t);
    }
    h = this.norm2.forward(h);
    if (scaleShift) h = h.mul(scaleShift[0]!.add(1)).add(scaleShift[1]!);
    h = F.dropout(F.silu(h), this.dropout, this.training);
    h = this.conv2.forward(h);
    const skip = this.convShortcut ? this.convShortcut.forward(x) : x;
    const out = skip.add(h);
    return this.outputScaleFactor === 1 ? out : out.div(this.outputScaleFactor);
  }
}

/** Stride-2 3×3 convolution; padding 0 pads right/bottom by one first, as SD's VAE does. */
export class Downsample2D extends Module {
  readonly conv: Conv2d;
  constructor(
    channels: number,
    outChannels: number = channels,
    readonly padding = 1,
  ) {
    super();
    this.conv = this.registerModule(
      'conv',
      new Conv2d(channels, outChannels, 3, { stride: 2, padding }),
    );
  }
  forward(x: Tensor): Tensor {
    if (this.padding === 0) x = ops.constantPadNd(x, [0, 1, 0, 1], 0);
    return this.conv.forward(x);
  }
}

/** Nearest 2× (or to a given size) upsampling followed by a 3×3 convolution. */
export class Upsample2D extends Module {
  readonly conv: Conv2d;
  constructor(channels: number, outChannels: number = channels) {
    super();
    this.conv = this.registerModule('conv', new Conv2d(channels, outChannels, 3, { padding: 1 }));
  }
  forward(x: Tensor, outputSize?: [number, number]): Tensor {
    const up = outputSize
      ? F.interpolate(x, { size: outputSize, mode: 'nearest' })
      : F.interpolate(x, { scaleFactor: 2, mode: 'nearest' });
    return this.conv.forward(up);
  }
}
