// diffusers' AutoencoderKL (0.27.2): Stable Diffusion's VAE. Images in [-1, 1] are encoded to a
// diagonal Gaussian over latents 8× smaller (for 4 blocks); latents decode back to images.
// Loads diffusers folders unchanged (vae/config.json + diffusion_pytorch_model.safetensors),
// including SD 1.5's published file with the older attention key names.
import { Tensor } from '../../engine/tensor.js';
import type { DType } from '../../engine/dtype.js';
import { Generator } from '../../engine/random.js';
import { disposeAll } from '../../engine/scope.js';
import { Module, type LoadResult } from '../../nn/module.js';
import { Conv2d } from '../../nn/layers.js';
import {
  ConfigKeyError,
  ModelLoadError,
  loadPretrained,
  readConfig,
  reportingMissing,
  type KeyRename,
} from '../loading.js';
import { Decoder, DiagonalGaussianDistribution, Encoder } from './vae.js';

/** config.json of an AutoencoderKL, with diffusers' key names. */
export interface AutoencoderKLConfig {
  in_channels: number;
  out_channels: number;
  down_block_types: string[];
  up_block_types: string[];
  block_out_channels: number[];
  layers_per_block: number;
  act_fn: string;
  latent_channels: number;
  norm_num_groups: number;
  sample_size: number | number[];
  scaling_factor: number;
  /** Per-channel latent statistics some VAEs publish (SDXL pipelines); the model ignores them. */
  latents_mean: number[] | null;
  latents_std: number[] | null;
  /** Pipelines decode in float32 when true (SDXL's fp16 overflow); the model ignores it. */
  force_upcast: boolean;
  /** Newer diffusers key; false drops the mid blocks' attention. */
  mid_block_add_attention: boolean;
}

/** diffusers' defaults (AutoencoderKL.__init__), used for keys a config leaves out. */
const DEFAULTS: AutoencoderKLConfig = {
  in_channels: 3,
  out_channels: 3,
  down_block_types: ['DownEncoderBlock2D'],
  up_block_types: ['UpDecoderBlock2D'],
  block_out_channels: [64],
  layers_per_block: 1,
  act_fn: 'silu',
  latent_channels: 4,
  norm_num_groups: 32,
  sample_size: 32,
  scaling_factor: 0.18215,
  latents_mean: null,
  latents_std: null,
  force_upcast: true,
  mid_block_add_attention: true,
};

/**
 * Old diffusers VAE attention names (SD 1.5's published vae file) -> diffusers 0.27's.
 * Applied to checkpoint keys on load; new-style keys pass through unchanged.
 */
export const VAE_KEY_RENAMES: KeyRename[] = [
  [/(\.attentions\.\d+)\.query\./, '$1.to_q.'],
  [/(\.attentions\.\d+)\.key\./, '$1.to_k.'],
  [/(\.attentions\.\d+)\.value\./, '$1.to_v.'],
  [/(\.attentions\.\d+)\.proj_attn\./, '$1.to_out.0.'],
];

/**
 * Attention projections that some checkpoints store as 1×1 convolutions, [C, C, 1, 1]; they
 * load as the [C, C] linear weights they are (the same numbers).
 */
const CONV_SHAPED_LINEAR_WEIGHTS: RegExp[] = [
  /\.attentions\.\d+\.(to_q|to_k|to_v|to_out\.0)\.weight$/,
];

export interface FromPretrainedOptions {
  /** Weight file variant, e.g. 'fp16' for diffusion_pytorch_model.fp16.safetensors. */
  variant?: string;
  /** Convert the weights after loading, e.g. 'float16'. */
  dtype?: DType;
  /** Move the weights after loading, e.g. 'cuda'. */
  device?: string;
}

export class AutoencoderKL extends Module {
  readonly config: Readonly<AutoencoderKLConfig>;
  readonly encoder: Encoder;
  readonly decoder: Decoder;
  readonly quantConv: Conv2d;
  readonly postQuantConv: Conv2d;

  constructor(config: Partial<AutoencoderKLConfig> & Record<string, unknown> = {}) {
    super();
    const c = resolveConfig(config);
    this.config = c;
    const half = {
      blockOutChannels: c.block_out_channels,
      layersPerBlock: c.layers_per_block,
      normNumGroups: c.norm_num_groups,
      midBlockAddAttention: c.mid_block_add_attention,
    };
    const z = c.latent_channels;
    this.encoder = this.registerModule(
      'encoder',
      new Encoder({ ...half, inChannels: c.in_channels, outChannels: z }),
    );
    this.decoder = this.registerModule(
      'decoder',
      new Decoder({ ...half, inChannels: z, outChannels: c.out_channels }),
    );
    this.quantConv = this.registerModule('quant_conv', new Conv2d(2 * z, 2 * z, 1));
    this.postQuantConv = this.registerModule('post_quant_conv', new Conv2d(z, z, 1));
  }

  /** Latents are multiplied by this before the UNet sees them (SD 1.5: 0.18215). */
  get scalingFactor(): number {
    return this.config.scaling_factor;
  }

  /** Images (B, in_channels, H, W) in [-1, 1] -> the posterior over latents (B, latent, H/8, W/8). */
  encode(images: Tensor): DiagonalGaussianDistribution {
    checkInput('images', images, this.config.in_channels);
    const h = this.encoder.forward(images);
    const moments = this.quantConv.forward(h); // (B, 2·latent, h, w)
    h.dispose();
    return new DiagonalGaussianDistribution(moments);
  }

  /** Latents (B, latent, h, w), unscaled -> images (B, out_channels, 8h, 8w), roughly [-1, 1]. */
  decode(latents: Tensor): Tensor {
    checkInput('latents', latents, this.config.latent_channels);
    const z = this.postQuantConv.forward(latents);
    const images = this.decoder.forward(z);
    z.dispose();
    return images;
  }

  /** Encode and decode: the posterior's mode, or a sample with samplePosterior. */
  forward(
    images: Tensor,
    options: { samplePosterior?: boolean; generator?: Generator | Generator[] } = {},
  ): Tensor {
    const posterior = this.encode(images);
    const z = options.samplePosterior ? posterior.sample(options.generator) : posterior.mode();
    const out = this.decode(z);
    if (z !== posterior.mean) z.dispose();
    posterior.dispose();
    return out;
  }

  /** What the UNet works on: a posterior sample × scaling_factor. */
  encodeToLatents(images: Tensor, generator?: Generator | Generator[]): Tensor {
    const posterior = this.encode(images);
    const z = posterior.sample(generator);
    const latents = z.mul(this.scalingFactor);
    z.dispose();
    posterior.dispose();
    return latents;
  }

  /** The inverse: latents ÷ scaling_factor, decoded (as the SD pipeline decodes). */
  decodeLatents(latents: Tensor): Tensor {
    const z = latents.div(this.scalingFactor);
    const images = this.decode(z);
    z.dispose();
    return images;
  }

  /**
   * As Module.loadStateDict, also accepting attention projections stored as 1×1 convolutions
   * ([C, C, 1, 1], see CONV_SHAPED_LINEAR_WEIGHTS), which load as [C, C].
   */
  override loadStateDict(
    state: Map<string, Tensor> | Record<string, Tensor>,
    options: { strict?: boolean } = {},
  ): LoadResult {
    const source = state instanceof Map ? state : new Map(Object.entries(state));
    const fixed = new Map(source);
    const views: Tensor[] = [];
    for (const [key, value] of source) {
      const [o, i, kh, kw] = value.shape;
      if (
        value.ndim === 4 &&
        kh === 1 &&
        kw === 1 &&
        CONV_SHAPED_LINEAR_WEIGHTS.some((re) => re.test(key))
      ) {
        const view = value.view(o!, i!); // (C_out, C_in)
        views.push(view);
        fixed.set(key, view);
      }
    }
    try {
      return super.loadStateDict(fixed, options);
    } finally {
      disposeAll(views);
    }
  }

  /**
   * Loads a diffusers VAE folder (a pipeline's `vae/`): config.json and
   * diffusion_pytorch_model[.variant].safetensors, old or new attention key names. Eval mode.
   */
  static fromPretrained(folder: string, options: FromPretrainedOptions = {}): AutoencoderKL {
    const config = readConfig(folder);
    const className = config._class_name;
    if (className !== undefined && className !== 'AutoencoderKL') {
      throw new ModelLoadError(
        `${folder}/config.json describes a ${String(className)}, not an AutoencoderKL (key "_class_name")`,
      );
    }
    const model = loadPretrained(() => new AutoencoderKL(config), folder, options, {
      renames: VAE_KEY_RENAMES,
    });
    return model;
  }
}

function checkInput(name: string, x: Tensor, channels: number): void {
  if (x.ndim !== 4 || x.shape[1] !== channels) {
    throw new RangeError(
      `Expected ${name} of shape (B, ${channels}, H, W) but received [${x.shape.join(', ')}]`,
    );
  }
}

/** `relatedTo`: the key whose value decided what is allowed (see reportingMissing). */
function unsupported(key: string, value: unknown, allowed: string, relatedTo?: string): never {
  throw new ConfigKeyError(key, value, allowed, { relatedTo });
}

function isPositiveInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v > 0;
}

/** Fills in diffusers' defaults and rejects what this implementation does not build. */
function resolveConfig(raw: Record<string, unknown>): AutoencoderKLConfig {
  const pick = <K extends keyof AutoencoderKLConfig>(key: K): AutoencoderKLConfig[K] =>
    (key in raw && raw[key] !== undefined ? raw[key] : DEFAULTS[key]) as AutoencoderKLConfig[K];
  const c: AutoencoderKLConfig = {
    in_channels: pick('in_channels'),
    out_channels: pick('out_channels'),
    down_block_types: pick('down_block_types'),
    up_block_types: pick('up_block_types'),
    block_out_channels: pick('block_out_channels'),
    layers_per_block: pick('layers_per_block'),
    act_fn: pick('act_fn'),
    latent_channels: pick('latent_channels'),
    norm_num_groups: pick('norm_num_groups'),
    sample_size: pick('sample_size'),
    scaling_factor: pick('scaling_factor'),
    latents_mean: pick('latents_mean') ?? null,
    latents_std: pick('latents_std') ?? null,
    force_upcast: pick('force_upcast'),
    mid_block_add_attention: pick('mid_block_add_attention'),
  };
  return reportingMissing(raw, () => checkConfig(c, raw));
}

/** Rejects what this implementation does not build; `raw` is the file's own keys. */
function checkConfig(c: AutoencoderKLConfig, raw: Record<string, unknown>): AutoencoderKLConfig {
  for (const key of [
    'in_channels',
    'out_channels',
    'latent_channels',
    'layers_per_block',
    'norm_num_groups',
  ] as const) {
    if (!isPositiveInt(c[key])) unsupported(key, c[key], 'a positive integer');
  }
  const ch = c.block_out_channels;
  if (!Array.isArray(ch) || ch.length === 0 || !ch.every(isPositiveInt)) {
    unsupported('block_out_channels', ch, 'a non-empty list of positive integers');
  }
  if (!ch.every((n) => n % c.norm_num_groups === 0)) {
    unsupported(
      'block_out_channels',
      ch,
      `channel counts divisible by norm_num_groups (${c.norm_num_groups})`,
      'norm_num_groups',
    );
  }
  const types = {
    down_block_types: 'DownEncoderBlock2D',
    up_block_types: 'UpDecoderBlock2D',
  } as const;
  for (const [key, type] of Object.entries(types) as [keyof typeof types, string][]) {
    const v = c[key];
    if (!Array.isArray(v) || v.length !== ch.length || !v.every((t) => t === type)) {
      const related = Array.isArray(v) && v.length !== ch.length ? 'block_out_channels' : undefined;
      unsupported(key, v, `${ch.length} × "${type}" (one per block_out_channels entry)`, related);
    }
  }
  // diffusers' "swish" is the same function as "silu".
  if (c.act_fn !== 'silu' && c.act_fn !== 'swish')
    unsupported('act_fn', c.act_fn, '"silu", "swish"');
  if (typeof c.scaling_factor !== 'number' || !(c.scaling_factor > 0)) {
    unsupported('scaling_factor', c.scaling_factor, 'a positive number');
  }
  for (const key of ['force_upcast', 'mid_block_add_attention'] as const) {
    if (typeof c[key] !== 'boolean') unsupported(key, c[key], 'true, false');
  }
  // Keys of later diffusers versions that change the architecture.
  for (const key of ['use_quant_conv', 'use_post_quant_conv']) {
    if (key in raw && raw[key] !== true)
      unsupported(key, raw[key], 'true (diffusers 0.27 always has the conv)');
  }
  return c;
}
