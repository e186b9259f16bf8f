// Timestep embeddings of diffusers' UNet: sinusoidal features, then a two-layer MLP.
import { Tensor } from '../engine/tensor.js';
import { arange } from '../engine/creation.js';
import { Module } from '../nn/module.js';
import { Linear } from '../nn/layers.js';
import * as F from '../nn/functional.js';
import * as ops from '../engine/ops.generated.js';

/**
 * Sinusoidal embedding of timesteps (B,) -> (B, dim), as diffusers' get_timestep_embedding:
 * frequencies exp(-ln(maxPeriod)·i / (dim/2 - shift)), [sin, cos] (or [cos, sin] when flipped).
 */
export function timestepEmbedding(
  timesteps: Tensor,
  dim: number,
  options: {
    flipSinToCos?: boolean;
    downscaleFreqShift?: number;
    scale?: number;
    maxPeriod?: number;
  } = {},
): Tensor {
  const half = Math.floor(dim / 2);
  const shift = options.downscaleFreqShift ?? 1;
  const maxPeriod = options.maxPeriod ?? 10000;
  // Multiply, then divide, in float32 as diffusers does: folding both into one constant moves
  // some frequencies by an ulp, which timesteps near 999 turn into 3e-5 in sin/cos (320 dims).
  const exponent = arange(0, half, 1, { dtype: 'float32', device: timesteps.device })
    .mul(-Math.log(maxPeriod))
    .div(half - shift);
  let args = timesteps.float().unsqueeze(1).mul(exponent.exp().unsqueeze(0)); // (B, half)
  if ((options.scale ?? 1) !== 1) args = args.mul(options.scale!);
  const sin = ops.sin(args);
  const cos = ops.cos(args);
  let emb = options.flipSinToCos ? ops.cat([cos, sin], -1) : ops.cat([sin, cos], -1);
  if (dim % 2 === 1) emb = ops.constantPadNd(emb, [0, 1], 0);
  return emb;
}

export class TimestepEmbedding extends Module {
  readonly linear1: Linear;
  readonly linear2: Linear;
  constructor(inChannels: number, timeEmbedDim: number) {
    super();
    this.linear1 = this.registerModule('linear_1', new Linear(inChannels, timeEmbedDim));
    this.linear2 = this.registerModule('linear_2', new Linear(timeEmbedDim, timeEmbedDim));
  }
  forward(x: Tensor): Tensor {
    return this.linear2.forward(F.silu(this.linear1.forward(x)));
  }
}
