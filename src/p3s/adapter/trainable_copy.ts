// Eq. (6): the trainable copy — a simplified U-Net with one ResNet block per level and a
// transformer for each of the frozen U-Net's spatial-transformer layers. It runs on the noisy
// latent plus the subject input I'' and yields, for every self-attention layer i of the frozen
// U-Net, f_i = Z(F_i(x_t, c, t; θ_i); θ_i^z): the copy's hidden state at the matching layer
// through a zero-initialised projection Z.
//
// Its modules carry the frozen U-Net's names (down_blocks.0.attentions.1, ...), so it is
// initialised from the frozen weights by loading the frozen state dict where names and shapes
// match; the up-path ResNet blocks, which in the frozen U-Net also take skip connections, and
// the zero projections start fresh.
import { Tensor } from '../../engine/tensor.js';
import { keep } from '../../engine/scope.js';
import { noGrad } from '../../engine/autograd.js';
import * as ops from '../../engine/ops.generated.js';
import { Module, ModuleList } from '../../nn/module.js';
import { Linear, Conv2d } from '../../nn/layers.js';
import { ResnetBlock2D, Downsample2D, Upsample2D } from '../../models/resnet.js';
import { timestepEmbedding, TimestepEmbedding } from '../../models/embeddings.js';
import { AttnCaptureProcessor } from '../../models/attention_processor.js';
import {
  UNet2DConditionModel,
  type UNet2DConditionConfig,
} from '../../models/unet/unet_2d_condition.js';
import {
  Transformer2DModel,
  BasicTransformerBlock,
  nameTransformerBlocks,
} from '../../models/unet/transformer_2d.js';
import { zeroInit } from './subject_encoder.js';

/** One level of the copy: one ResNet block, the level's transformers, its resampler. */
class CopyLevel extends Module {
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly attentions: ModuleList<Transformer2DModel>;
  readonly downsamplers: ModuleList<Downsample2D> | null;
  readonly upsamplers: ModuleList<Upsample2D> | null;
  constructor(parts: {
    resnet: ResnetBlock2D;
    attentions: Transformer2DModel[];
    downsamplers?: ModuleList<Downsample2D> | null;
    upsamplers?: ModuleList<Upsample2D> | null;
  }) {
    super();
    this.resnets = this.registerModule('resnets', new ModuleList([parts.resnet]));
    this.attentions = this.registerModule('attentions', new ModuleList(parts.attentions));
    this.downsamplers = parts.downsamplers
      ? this.registerModule('downsamplers', parts.downsamplers)
      : null;
    this.upsamplers = parts.upsamplers ? this.registerModule('upsamplers', parts.upsamplers) : null;
  }
}

export interface CopyOutput {
  /** f_i by transformer-block path of the frozen U-Net, each (B, HW, C). Kept: dispose after use. */
  features: Map<string, Tensor>;
  /** The copy's last cross-attention probabilities (B, heads, HW, L): M_c of Eq. (13). Kept. */
  lastCrossAttention: Tensor | null;
}

/** The copy's down levels: each down block's first resnet, transformers and downsampler. */
function downLevels(donor: UNet2DConditionModel): CopyLevel[] {
  return [...donor.downBlocks].map((block) => {
    const b = block as unknown as {
      resnets: ModuleList<ResnetBlock2D>;
      attentions?: ModuleList<Transformer2DModel>;
      downsamplers: ModuleList<Downsample2D> | null;
    };
    return new CopyLevel({
      resnet: b.resnets.at(0),
      attentions: b.attentions ? [...b.attentions] : [],
      downsamplers: b.downsamplers,
    });
  });
}

/** The copy's up levels: a new resnet (no skip inputs), the block's transformers and upsampler. */
function upLevels(donor: UNet2DConditionModel, cfg: UNet2DConditionConfig): CopyLevel[] {
  const channels = cfg.block_out_channels;
  const reversed = [...channels].reverse();
  return [...donor.upBlocks].map((block, i) => {
    const b = block as unknown as {
      attentions?: ModuleList<Transformer2DModel>;
      upsamplers: ModuleList<Upsample2D> | null;
    };
    const resnet = new ResnetBlock2D({
      inChannels: i === 0 ? channels[channels.length - 1]! : reversed[i - 1]!,
      outChannels: reversed[i]!,
      tembChannels: channels[0]! * 4,
      groups: cfg.norm_num_groups,
      eps: cfg.norm_eps,
    });
    return new CopyLevel({
      resnet,
      attentions: b.attentions ? [...b.attentions] : [],
      upsamplers: b.upsamplers,
    });
  });
}

/** Z of Eq. (6): a zero-initialised projection, so an untrained copy injects nothing. */
function zeroLinear(dim: number): Linear {
  const z = new Linear(dim, dim);
  zeroInit(z);
  return z;
}

/** Initialises the copy from the frozen weights where names and shapes match. */
function copyMatchingWeights(frozen: Module, copy: Module): void {
  const own = copy.stateDict();
  const source = [...frozen.stateDict()].filter(
    ([k, v]) => own.has(k) && own.get(k)!.shape.join() === v.shape.join(),
  );
  noGrad(() => {
    for (const [k, v] of source) ops.copy_(own.get(k)!, v);
  });
}

export class TrainableCopy extends Module {
  readonly convIn: Conv2d;
  readonly timeEmbedding: TimestepEmbedding;
  readonly downBlocks: ModuleList<CopyLevel>;
  readonly midBlock: CopyLevel | null;
  readonly upBlocks: ModuleList<CopyLevel>;
  readonly zeroProjections: ModuleList<Linear>;
  /** Transformer-block paths, in the order of zeroProjections. */
  readonly blockPaths: string[];
  private readonly capture: AttnCaptureProcessor;
  private readonly timeConfig: { channels: number; flipSinToCos: boolean; freqShift: number };

  constructor(frozen: UNet2DConditionModel) {
    super();
    const cfg = frozen.config;
    // A donor with the frozen U-Net's architecture supplies modules of the right shapes.
    const donor = new UNet2DConditionModel(cfg);
    this.timeConfig = {
      channels: cfg.block_out_channels[0]!,
      flipSinToCos: cfg.flip_sin_to_cos,
      freqShift: cfg.freq_shift,
    };
    this.convIn = this.registerModule('conv_in', donor.convIn);
    this.timeEmbedding = this.registerModule('time_embedding', donor.timeEmbedding);
    this.downBlocks = this.registerModule('down_blocks', new ModuleList(downLevels(donor)));
    const mid = donor.midBlock;
    this.midBlock = mid
      ? this.registerModule(
          'mid_block',
          new CopyLevel({ resnet: mid.resnets.at(0), attentions: [...mid.attentions] }),
        )
      : null;
    this.upBlocks = this.registerModule('up_blocks', new ModuleList(upLevels(donor, cfg)));
    nameTransformerBlocks(this);
    const blocks = [...this.namedModules()].filter(
      ([, m]) => m instanceof BasicTransformerBlock,
    ) as [string, BasicTransformerBlock][];
    this.blockPaths = blocks.map(([p]) => p);
    this.zeroProjections = this.registerModule(
      'zero_projections',
      new ModuleList(blocks.map(([, blk]) => zeroLinear(blk.attn1.toQ.inFeatures))),
    );
    // The last transformer's cross-attention gives M_c (Eq. 13).
    const lastBlock = blocks[blocks.length - 1]?.[1];
    this.capture = new AttnCaptureProcessor('last');
    if (lastBlock?.attn2) lastBlock.attn2.processor = this.capture;
    copyMatchingWeights(frozen, this);
    // Free the donor's modules the copy did not take.
    const taken = new Set(this.parameters());
    for (const p of donor.parameters()) if (!taken.has(p)) p.dispose();
  }

  /** Paths of the frozen U-Net's self-attention layers the features feed ("...transformer_blocks.0.attn1"). */
  selfAttentionPaths(): string[] {
    return this.blockPaths.map((p) => `${p}.attn1`);
  }

  /** Eq. (6) for every layer: x = x_t + I'' (B, C, h, w), timesteps (B,), context (B, L, D). */
  forward(x: Tensor, timesteps: Tensor, context: Tensor): CopyOutput {
    const features = new Map<string, Tensor>();
    const index = new Map(this.blockPaths.map((p, i) => [p, i]));
    const hooks = {
      onTransformerBlock: (path: string, states: { normed: Tensor }): void => {
        const i = index.get(path);
        if (i === undefined) return;
        features.set(path, keep(this.zeroProjections.at(i).forward(states.normed))); // Eq. (6): f_i = Z(F_i(...))
      },
    };
    let temb = timestepEmbedding(timesteps, this.timeConfig.channels, {
      flipSinToCos: this.timeConfig.flipSinToCos,
      downscaleFreqShift: this.timeConfig.freqShift,
    });
    if (temb.dtype !== x.dtype) temb = temb.to(x.dtype);
    const emb = this.timeEmbedding.forward(temb);
    let h = this.convIn.forward(x);
    const run = (level: CopyLevel): void => {
      h = level.resnets.at(0).forward(h, emb);
      for (const t of level.attentions) h = t.forward(h, context, hooks);
    };
    const sizes: [number, number][] = [];
    for (const level of this.downBlocks) {
      run(level);
      sizes.push([h.shape[2]!, h.shape[3]!]);
      for (const d of level.downsamplers ?? []) h = d.forward(h);
    }
    if (this.midBlock) run(this.midBlock);
    for (let i = 0; i < this.upBlocks.length; i++) {
      const level = this.upBlocks.at(i);
      run(level);
      const target = sizes[sizes.length - 2 - i];
      for (const u of level.upsamplers ?? []) h = u.forward(h, target);
    }
    const last = this.capture.captured.get('last') ?? null;
    this.capture.captured.delete('last');
    return { features, lastCrossAttention: last };
  }
}
