// diffusers' VAE halves (models/autoencoders/vae.py): Encoder, Decoder and the diagonal
// Gaussian posterior the encoder's moments describe.
import { Tensor } from '../../engine/tensor.js';
import { randn } from '../../engine/creation.js';
import { Generator } from '../../engine/random.js';
import * as ops from '../../engine/ops.generated.js';
import { Module, ModuleList } from '../../nn/module.js';
import { Conv2d, GroupNorm } from '../../nn/layers.js';
import * as F from '../../nn/functional.js';
import { DownEncoderBlock2D, UpDecoderBlock2D } from './vae_blocks.js';
import { UNetMidBlock2D } from './unet_mid_block_2d.js';
import { step } from './scoped.js';

export interface VaeHalfOptions {
  inChannels: number;
  outChannels: number;
  blockOutChannels: readonly number[];
  layersPerBlock: number;
  normNumGroups: number;
  midBlockAddAttention: boolean;
}

/** Image (B, in, H, W) -> moments (B, 2·latent, H/2^(n-1), W/2^(n-1)) (double_z, as the KL VAE). */
export class Encoder extends Module {
  readonly convIn: Conv2d;
  readonly downBlocks: ModuleList<DownEncoderBlock2D>;
  readonly midBlock: UNetMidBlock2D;
  readonly convNormOut: GroupNorm;
  readonly convOut: Conv2d;

  constructor(o: VaeHalfOptions) {
    super();
    const ch = o.blockOutChannels;
    const last = ch[ch.length - 1]!;
    this.convIn = this.registerModule(
      'conv_in',
      new Conv2d(o.inChannels, ch[0]!, 3, { padding: 1 }),
    );
    const blocks = ch.map(
      (out, i) =>
        new DownEncoderBlock2D({
          inChannels: i === 0 ? ch[0]! : ch[i - 1]!,
          outChannels: out,
          numLayers: o.layersPerBlock,
          groups: o.normNumGroups,
          resample: i < ch.length - 1,
        }),
    );
    this.downBlocks = this.registerModule('down_blocks', new ModuleList(blocks));
    this.midBlock = this.registerModule(
      'mid_block',
      new UNetMidBlock2D({
        inChannels: last,
        groups: o.normNumGroups,
        addAttention: o.midBlockAddAttention,
      }),
    );
    this.convNormOut = this.registerModule(
      'conv_norm_out',
      new GroupNorm(o.normNumGroups, last, 1e-6),
    );
    this.convOut = this.registerModule(
      'conv_out',
      new Conv2d(last, 2 * o.outChannels, 3, { padding: 1 }),
    );
  }

  forward(x: Tensor): Tensor {
    let h = this.convIn.forward(x);
    for (const block of this.downBlocks) h = step(h, x, (t) => block.forward(t));
    h = step(h, x, (t) => this.midBlock.forward(t));
    return step(h, x, (t) => this.convOut.forward(F.silu(this.convNormOut.forward(t))));
  }
}

/** Latent (B, latent, h, w) -> image (B, out, h·2^(n-1), w·2^(n-1)). */
export class Decoder extends Module {
  readonly convIn: Conv2d;
  readonly midBlock: UNetMidBlock2D;
  readonly upBlocks: ModuleList<UpDecoderBlock2D>;
  readonly convNormOut: GroupNorm;
  readonly convOut: Conv2d;

  constructor(o: VaeHalfOptions) {
    super();
    const rev = [...o.blockOutChannels].reverse();
    this.convIn = this.registerModule(
      'conv_in',
      new Conv2d(o.inChannels, rev[0]!, 3, { padding: 1 }),
    );
    this.midBlock = this.registerModule(
      'mid_block',
      new UNetMidBlock2D({
        inChannels: rev[0]!,
        groups: o.normNumGroups,
        addAttention: o.midBlockAddAttention,
      }),
    );
    // Each up block has one resnet more than an encoder block (layers_per_block + 1).
    const blocks = rev.map(
      (out, i) =>
        new UpDecoderBlock2D({
          inChannels: i === 0 ? rev[0]! : rev[i - 1]!,
          outChannels: out,
          numLayers: o.layersPerBlock + 1,
          groups: o.normNumGroups,
          resample: i < rev.length - 1,
        }),
    );
    this.upBlocks = this.registerModule('up_blocks', new ModuleList(blocks));
    const first = o.blockOutChannels[0]!;
    this.convNormOut = this.registerModule(
      'conv_norm_out',
      new GroupNorm(o.normNumGroups, first, 1e-6),
    );
    this.convOut = this.registerModule(
      'conv_out',
      new Conv2d(first, o.outChannels, 3, { padding: 1 }),
    );
  }

  forward(z: Tensor): Tensor {
    let h = this.convIn.forward(z);
    h = step(h, z, (t) => this.midBlock.forward(t));
    // As diffusers: the up blocks may hold another dtype than the mid block (upcast decoding).
    const upDtype = this.upBlocks.at(0).resnets.at(0).conv1.weight.dtype;
    if (h.dtype !== upDtype) h = step(h, z, (t) => t.to(upDtype));
    for (const block of this.upBlocks) h = step(h, z, (t) => block.forward(t));
    return step(h, z, (t) => this.convOut.forward(F.silu(this.convNormOut.forward(t))));
  }
}

/**
 * The posterior N(mean, exp(logvar)) from the encoder's moments (B, 2·C, h, w): the first C
 * channels are the mean, the rest the log-variance, clamped to [-30, 20] as diffusers does.
 *
 * tidy() keeps tensors returned in arrays, Maps and plain objects, not inside class instances:
 * return `dist.mean`, `dist.sample(g)` or `{ mean: dist.mean, std: dist.std }` from a tidy
 * scope, not the distribution itself (its tensors would be freed; using it then throws).
 */
export class DiagonalGaussianDistribution {
  readonly #parameters: Tensor;
  readonly #mean: Tensor;
  readonly #logvar: Tensor;
  readonly #std: Tensor;
  readonly #var: Tensor;

  constructor(
    parameters: Tensor,
    readonly deterministic = false,
  ) {
    if (parameters.ndim < 2 || parameters.shape[1]! % 2 !== 0) {
      throw new RangeError(
        `Expected moments (B, 2·C, ...) with an even channel count but received [${parameters.shape.join(', ')}]`,
      );
    }
    this.#parameters = parameters;
    const [mean, logvar] = parameters.chunk(2, 1) as [Tensor, Tensor];
    this.#mean = mean;
    this.#logvar = logvar.clamp(-30, 20);
    if (deterministic) {
      this.#std = ops.zerosLike(mean);
      this.#var = ops.zerosLike(mean);
    } else {
      this.#std = this.#logvar.mul(0.5).exp();
      this.#var = this.#logvar.exp();
    }
  }

  #alive(t: Tensor): Tensor {
    if (t.isDisposed) {
      throw new Error(
        'DiagonalGaussianDistribution used after its tensors were freed (was it returned from ' +
          'tidy()? tidy keeps tensors in arrays, Maps and plain objects only: return dist.mean, ' +
          'dist.sample(generator) or a plain object of its tensors instead)',
      );
    }
    return t;
  }

  /** The encoder's moments, concat(mean, logvar) before clamping: (B, 2·C, h, w). */
  get parameters(): Tensor {
    return this.#alive(this.#parameters);
  }
  get mean(): Tensor {
    return this.#alive(this.#mean);
  }
  get logvar(): Tensor {
    return this.#alive(this.#logvar);
  }
  get std(): Tensor {
    return this.#alive(this.#std);
  }
  get var(): Tensor {
    return this.#alive(this.#var);
  }

  /**
   * mean + std · ε, ε ~ N(0, I) drawn in the mean's dtype. One generator draws the whole batch;
   * a list of B generators draws sample i from generator i (as diffusers' randn_tensor).
   */
  sample(generator?: Generator | Generator[]): Tensor {
    const mean = this.mean;
    const shape = mean.shape;
    let eps: Tensor;
    if (Array.isArray(generator)) {
      if (generator.length !== shape[0]) {
        throw new RangeError(
          `Expected ${shape[0]} generators (one per sample) but received ${generator.length}`,
        );
      }
      const one = [1, ...shape.slice(1)];
      const parts = generator.map((g) => this.#noise(one, g));
      eps = ops.cat(parts, 0);
      for (const p of parts) p.dispose();
    } else {
      eps = this.#noise(shape, generator);
    }
    const out = mean.add(this.std.mul(eps));
    eps.dispose();
    return out;
  }

  /** Noise on the generator's device (CPU by default), moved to the mean's device. */
  #noise(shape: readonly number[], generator: Generator | undefined): Tensor {
    const device = generator?.device ?? this.#mean.device;
    const eps = randn(shape, { generator, dtype: this.#mean.dtype, device });
    if (eps.device === this.#mean.device) return eps;
    const moved = eps.to(this.#mean.device);
    eps.dispose();
    return moved;
  }

  /** The distribution's mode: its mean. */
  mode(): Tensor {
    return this.mean;
  }

  /** KL(this ‖ other), or KL(this ‖ N(0, I)) without other, summed over (C, h, w): (B,). */
  kl(other?: DiagonalGaussianDistribution): Tensor {
    if (this.deterministic) return ops.zeros([1], 'float32');
    const dims = [1, 2, 3];
    if (!other) {
      // 0.5 · Σ (μ² + σ² − 1 − log σ²)
      return this.mean.square().add(this.var).sub(1).sub(this.logvar).sum(dims).mul(0.5);
    }
    // 0.5 · Σ ((μ − μ₀)² / σ₀² + σ² / σ₀² − 1 − log σ² + log σ₀²)
    return this.mean
      .sub(other.mean)
      .square()
      .div(other.var)
      .add(this.var.div(other.var))
      .sub(1)
      .sub(this.logvar)
      .add(other.logvar)
      .sum(dims)
      .mul(0.5);
  }

  /** Negative log-likelihood of a sample, summed over dims: 0.5 · Σ (log 2π + log σ² + (x − μ)² / σ²). */
  nll(sample: Tensor, dims: number[] = [1, 2, 3]): Tensor {
    if (this.deterministic) return ops.zeros([1], 'float32');
    return sample
      .sub(this.mean)
      .square()
      .div(this.var)
      .add(this.logvar)
      .add(Math.log(2 * Math.PI))
      .sum(dims)
      .mul(0.5);
  }

  /** Frees the distribution's tensors now (they are views of, or computed from, the moments). */
  dispose(): void {
    for (const t of [this.#parameters, this.#mean, this.#logvar, this.#std, this.#var]) t.dispose();
  }
}
