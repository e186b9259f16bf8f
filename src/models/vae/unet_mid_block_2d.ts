// diffusers' UNetMidBlock2D as the VAE builds it: resnet, (self-attention, resnet) × numLayers,
// without time embeddings. The attention is one head over all channels: the VAE passes
// attention_head_dim = channels, and diffusers makes heads = channels // attention_head_dim.
import { Tensor } from '../../engine/tensor.js';
import { Module, ModuleList } from '../../nn/module.js';
import { ResnetBlock2D } from '../resnet.js';
import { Attention } from '../attention_processor.js';
import { step } from './scoped.js';

export interface UNetMidBlock2DOptions {
  inChannels: number;
  groups: number;
  eps?: number;
  numLayers?: number;
  /** mid_block_add_attention; false leaves resnets only (and no attention keys). */
  addAttention?: boolean;
  /** Channels per head; the VAE uses all channels (one head). */
  attentionHeadDim?: number;
}

export class UNetMidBlock2D extends Module {
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly attentions: ModuleList<Attention>;
  readonly addAttention: boolean;

  constructor(o: UNetMidBlock2DOptions) {
    super();
    const c = o.inChannels;
    const eps = o.eps ?? 1e-6;
    const numLayers = o.numLayers ?? 1;
    const headDim = o.attentionHeadDim ?? c;
    this.addAttention = o.addAttention ?? true;
    const resnet = (): ResnetBlock2D =>
      new ResnetBlock2D({
        inChannels: c,
        outChannels: c,
        tembChannels: null,
        groups: o.groups,
        eps,
      });
    this.resnets = this.registerModule(
      'resnets',
      new ModuleList(Array.from({ length: numLayers + 1 }, resnet)),
    );
    const attentions = this.addAttention
      ? Array.from(
          { length: numLayers },
          () =>
            new Attention({
              queryDim: c,
              heads: c / headDim,
              dimHead: headDim,
              bias: true,
              upcastSoftmax: true,
              residualConnection: true,
              rescaleOutputFactor: 1,
              normNumGroups: o.groups,
              eps,
            }),
        )
      : [];
    this.attentions = this.registerModule('attentions', new ModuleList(attentions));
  }

  forward(x: Tensor): Tensor {
    let h = step(x, x, (t) => this.resnets.at(0).forward(t));
    for (let i = 1; i < this.resnets.length; i++) {
      if (this.addAttention) {
        const attn = this.attentions.at(i - 1);
        h = step(h, x, (t) => attn.forward(t));
      }
      const resnet = this.resnets.at(i);
      h = step(h, x, (t) => resnet.forward(t));
    }
    return h;
  }
}
