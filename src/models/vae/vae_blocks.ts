// diffusers' DownEncoderBlock2D and UpDecoderBlock2D: the VAE's resnet stacks, without time
// embeddings or attention, with a stride-2 conv (encoder) or 2× nearest upsampling (decoder).
import { Tensor } from '../../engine/tensor.js';
import { Module, ModuleList } from '../../nn/module.js';
import { Downsample2D, ResnetBlock2D, Upsample2D } from '../resnet.js';
import { step } from './scoped.js';

export interface VaeBlockOptions {
  inChannels: number;
  outChannels: number;
  numLayers: number;
  groups: number;
  eps?: number;
  /** Downsample (encoder) or upsample (decoder) after the resnets; false for the last block. */
  resample: boolean;
}

export class DownEncoderBlock2D extends Module {
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly downsamplers: ModuleList<Downsample2D> | null;

  constructor(o: VaeBlockOptions) {
    super();
    const resnets = Array.from(
      { length: o.numLayers },
      (_, i) =>
        new ResnetBlock2D({
          inChannels: i === 0 ? o.inChannels : o.outChannels,
          outChannels: o.outChannels,
          tembChannels: null,
          groups: o.groups,
          eps: o.eps ?? 1e-6,
        }),
    );
    this.resnets = this.registerModule('resnets', new ModuleList(resnets));
    // padding 0: SD's VAE pads right/bottom by one and convolves without padding.
    this.downsamplers = o.resample
      ? this.registerModule(
          'downsamplers',
          new ModuleList([new Downsample2D(o.outChannels, o.outChannels, 0)]),
        )
      : null;
  }

  forward(x: Tensor): Tensor {
    let h = x;
    for (const resnet of this.resnets) h = step(h, x, (t) => resnet.forward(t));
    for (const down of this.downsamplers ?? []) h = step(h, x, (t) => down.forward(t));
    return h;
  }
}

export class UpDecoderBlock2D extends Module {
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly upsamplers: ModuleList<Upsample2D> | null;

  constructor(o: VaeBlockOptions) {
    super();
    const resnets = Array.from(
      { length: o.numLayers },
      (_, i) =>
        new ResnetBlock2D({
          inChannels: i === 0 ? o.inChannels : o.outChannels,
          outChannels: o.outChannels,
          tembChannels: null,
          groups: o.groups,
          eps: o.eps ?? 1e-6,
        }),
    );
    this.resnets = this.registerModule('resnets', new ModuleList(resnets));
    this.upsamplers = o.resample
      ? this.registerModule('upsamplers', new ModuleList([new Upsample2D(o.outChannels)]))
      : null;
  }

  forward(x: Tensor): Tensor {
    let h = x;
    for (const resnet of this.resnets) h = step(h, x, (t) => resnet.forward(t));
    for (const up of this.upsamplers ?? []) h = step(h, x, (t) => up.forward(t));
    return h;
  }
}
