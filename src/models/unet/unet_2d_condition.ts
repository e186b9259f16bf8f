// diffusers' UNet2DConditionModel (0.27.2) with Stable Diffusion 1.x's block types: the
// noise-prediction network ε(x_t, t, c). Loads a diffusers `unet/` folder unchanged.
//
//   sample (B, 4, h, w) ─ conv_in ─ down_blocks ─ mid_block ─ up_blocks ─ norm/SiLU/conv_out
//   timestep ─ time_proj (sinusoidal) ─ time_embedding (MLP) ─> every resnet
//   encoder_hidden_states (B, 77, C) ─> every transformer's cross-attention (attn2)
//
// What P3S needs from the frozen U-Net goes through attention processors and read-only hooks,
// never through changes to this file: attnProcessors() / setAttnProcessor() swap what any
// attention layer computes (P3S's injection processor or ExtraKVProcessor for Eq. 7–8,
// AttnCaptureProcessor for Eq. 11–13), forward's attentionContext hands those processors this
// call's inputs (the injected features), and forward's onTransformerBlock reads each transformer
// block's hidden states.
import { Tensor } from '../../engine/tensor.js';
import { tensor } from '../../engine/creation.js';
import type { DType } from '../../engine/dtype.js';
import { Module, ModuleList } from '../../nn/module.js';
import { Conv2d, GroupNorm } from '../../nn/layers.js';
import * as F from '../../nn/functional.js';
import {
  Attention,
  AttnProcessor,
  type AttentionContext,
  type AttentionProcessor,
} from '../attention_processor.js';
import { TimestepEmbedding, timestepEmbedding } from '../embeddings.js';
import {
  ConfigKeyError,
  configValue,
  loadPretrained,
  readConfig,
  reportingMissing,
} from '../loading.js';
import {
  nameTransformerBlocks,
  type ForwardCall,
  type TransformerBlockHook,
} from './transformer_2d.js';
import {
  CrossAttnDownBlock2D,
  CrossAttnUpBlock2D,
  DownBlock2D,
  UNetMidBlock2DCrossAttn,
  UpBlock2D,
  type DownBlock,
  type UpBlock,
} from './unet_2d_blocks.js';

export type DownBlockType = 'CrossAttnDownBlock2D' | 'DownBlock2D';
export type UpBlockType = 'CrossAttnUpBlock2D' | 'UpBlock2D';

/**
 * config.json of a diffusers UNet2DConditionModel, keys verbatim, limited to what SD 1.x-style
 * models use. Per-block values take a number (all blocks) or a list (one per down block).
 */
export interface UNet2DConditionConfig {
  sample_size: number | number[] | null;
  in_channels: number;
  out_channels: number;
  center_input_sample: boolean;
  flip_sin_to_cos: boolean;
  freq_shift: number;
  down_block_types: DownBlockType[];
  mid_block_type: 'UNetMidBlock2DCrossAttn' | null;
  up_block_types: UpBlockType[];
  only_cross_attention: boolean | boolean[];
  block_out_channels: number[];
  layers_per_block: number | number[];
  downsample_padding: number;
  mid_block_scale_factor: number;
  dropout: number;
  act_fn: 'silu';
  norm_num_groups: number;
  norm_eps: number;
  cross_attention_dim: number | number[];
  transformer_layers_per_block: number | number[];
  /** diffusers' misnomer: the number of attention HEADS per block (SD 1.5: 8). */
  attention_head_dim: number | number[];
  /** Must stay null: diffusers 0.27 refuses it too (the heads come from attention_head_dim). */
  num_attention_heads: null;
  use_linear_projection: boolean;
  upcast_attention: boolean;
  resnet_time_scale_shift: 'default' | 'scale_shift';
  time_embedding_type: 'positional';
  time_embedding_dim: number | null;
  conv_in_kernel: number;
  conv_out_kernel: number;
}

/** diffusers' defaults (SD 1.x's values, except cross_attention_dim, which SD sets to 768). */
const DEFAULTS: UNet2DConditionConfig = {
  sample_size: null,
  in_channels: 4,
  out_channels: 4,
  center_input_sample: false,
  flip_sin_to_cos: true,
  freq_shift: 0,
  down_block_types: [
    'CrossAttnDownBlock2D',
    'CrossAttnDownBlock2D',
    'CrossAttnDownBlock2D',
    'DownBlock2D',
  ],
  mid_block_type: 'UNetMidBlock2DCrossAttn',
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
  only_cross_attention: false,
  block_out_channels: [320, 640, 1280, 1280],
  layers_per_block: 2,
  downsample_padding: 1,
  mid_block_scale_factor: 1,
  dropout: 0,
  act_fn: 'silu',
  norm_num_groups: 32,
  norm_eps: 1e-5,
  cross_attention_dim: 1280,
  transformer_layers_per_block: 1,
  attention_head_dim: 8,
  num_attention_heads: null,
  use_linear_projection: false,
  upcast_attention: false,
  resnet_time_scale_shift: 'default',
  time_embedding_type: 'positional',
  time_embedding_dim: null,
  conv_in_kernel: 3,
  conv_out_kernel: 3,
};

/**
 * Keys whose only supported value is "off" (class/addition embeddings, GLIGEN, ...). Keys that
 * diffusers itself ignores for these block types (resnet_skip_time_act, resnet_out_scale_factor,
 * cross_attention_norm, addition_embed_type_num_heads, class_embeddings_concat,
 * projection_class_embeddings_input_dim, addition_time_embed_dim) are ignored here too.
 */
const MUST_BE_OFF: [key: string, off: unknown[]][] = [
  ['class_embed_type', [null]],
  ['num_class_embeds', [null]],
  ['addition_embed_type', [null]],
  ['encoder_hid_dim', [null]],
  ['encoder_hid_dim_type', [null]],
  ['time_cond_proj_dim', [null]],
  ['time_embedding_act_fn', [null]],
  ['timestep_post_act', [null]],
  ['reverse_transformer_layers_per_block', [null]],
  ['dual_cross_attention', [false]],
  ['mid_block_only_cross_attention', [null, false]],
  ['attention_type', ['default']],
];

/** `relatedTo`: the key whose value decided what is allowed (see reportingMissing). */
function fail(key: string, value: unknown, allowed: string, relatedTo?: string): never {
  throw new ConfigKeyError(key, value, allowed, { relatedTo });
}

const isPositiveInt = (v: unknown): v is number => Number.isInteger(v) && (v as number) > 0;

/** A per-block value: one number for every block, or a list with one entry per block. */
function perBlock(key: string, value: unknown, n: number): number[] {
  if (isPositiveInt(value)) return Array<number>(n).fill(value);
  if (Array.isArray(value) && value.length === n && value.every(isPositiveInt)) return value;
  const related = Array.isArray(value) && value.length !== n ? 'down_block_types' : undefined;
  return fail(key, value, `a positive integer or a list of ${n} positive integers`, related);
}

/** Fills diffusers' defaults and checks every key; errors name the key and the values allowed. */
export function resolveUNetConfig(
  input: Partial<UNet2DConditionConfig> | Record<string, unknown>,
): UNet2DConditionConfig {
  const raw = input as Record<string, unknown>;
  if ('_class_name' in raw && raw._class_name !== 'UNet2DConditionModel') {
    fail('_class_name', raw._class_name, '"UNet2DConditionModel"');
  }
  for (const [key, off] of MUST_BE_OFF) configValue(raw, key, off[0], off);
  const c = { ...DEFAULTS } as Record<string, unknown>;
  for (const key of Object.keys(DEFAULTS)) if (key in raw) c[key] = raw[key];
  const cfg = c as unknown as UNet2DConditionConfig;

  if (cfg.num_attention_heads !== null) {
    fail(
      'num_attention_heads',
      cfg.num_attention_heads,
      'null (as in diffusers 0.27, the number of heads is attention_head_dim)',
    );
  }
  configValue(raw, 'act_fn', 'silu', ['silu']);
  configValue(raw, 'time_embedding_type', 'positional', ['positional']);
  configValue(raw, 'resnet_time_scale_shift', 'default', ['default', 'scale_shift']);
  configValue(raw, 'dropout', 0, [0]);
  if (!('mid_block_type' in raw)) cfg.mid_block_type = DEFAULTS.mid_block_type;
  if (cfg.mid_block_type !== null && cfg.mid_block_type !== 'UNetMidBlock2DCrossAttn') {
    fail('mid_block_type', cfg.mid_block_type, '"UNetMidBlock2DCrossAttn", null');
  }
  reportingMissing(raw, () => {
    checkBlocks(cfg);
    checkScalars(cfg);
  });
  return cfg;
}

/** The block lists and their per-block settings. */
function checkBlocks(cfg: UNet2DConditionConfig): void {
  const downTypes: readonly unknown[] = ['CrossAttnDownBlock2D', 'DownBlock2D'];
  const upTypes: readonly unknown[] = ['CrossAttnUpBlock2D', 'UpBlock2D'];
  if (!Array.isArray(cfg.down_block_types) || cfg.down_block_types.length === 0) {
    fail('down_block_types', cfg.down_block_types, 'a non-empty list of block types');
  }
  for (const t of cfg.down_block_types) {
    if (!downTypes.includes(t))
      fail('down_block_types', t, '"CrossAttnDownBlock2D", "DownBlock2D"');
  }
  if (!Array.isArray(cfg.up_block_types)) fail('up_block_types', cfg.up_block_types, 'a list');
  for (const t of cfg.up_block_types) {
    if (!upTypes.includes(t)) fail('up_block_types', t, '"CrossAttnUpBlock2D", "UpBlock2D"');
  }
  const n = cfg.down_block_types.length;
  if (cfg.up_block_types.length !== n) {
    const allowed = `a list of ${n} block types, like down_block_types`;
    fail('up_block_types', cfg.up_block_types, allowed, 'down_block_types');
  }
  if (
    !Array.isArray(cfg.block_out_channels) ||
    cfg.block_out_channels.length !== n ||
    !cfg.block_out_channels.every(isPositiveInt)
  ) {
    const related = Array.isArray(cfg.block_out_channels) ? 'down_block_types' : undefined;
    fail('block_out_channels', cfg.block_out_channels, `a list of ${n} positive integers`, related);
  }
  const onlyCross = cfg.only_cross_attention;
  if (onlyCross !== false && !(Array.isArray(onlyCross) && onlyCross.every((v) => v === false))) {
    fail('only_cross_attention', onlyCross, 'false');
  }
  perBlock('layers_per_block', cfg.layers_per_block, n);
  perBlock('attention_head_dim', cfg.attention_head_dim, n);
  perBlock('cross_attention_dim', cfg.cross_attention_dim, n);
  perBlock('transformer_layers_per_block', cfg.transformer_layers_per_block, n);
}

/** Channels, kernels, norms and flags. */
function checkScalars(cfg: UNet2DConditionConfig): void {
  for (const key of ['in_channels', 'out_channels', 'norm_num_groups'] as const) {
    if (!isPositiveInt(cfg[key])) fail(key, cfg[key], 'a positive integer');
  }
  for (const key of ['conv_in_kernel', 'conv_out_kernel'] as const) {
    if (!isPositiveInt(cfg[key]) || cfg[key] % 2 === 0)
      fail(key, cfg[key], 'an odd positive integer');
  }
  if (cfg.time_embedding_dim !== null && !isPositiveInt(cfg.time_embedding_dim)) {
    fail('time_embedding_dim', cfg.time_embedding_dim, 'null or a positive integer');
  }
  if (!Number.isInteger(cfg.downsample_padding) || cfg.downsample_padding < 0) {
    fail('downsample_padding', cfg.downsample_padding, 'a non-negative integer');
  }
  for (const key of ['norm_eps', 'mid_block_scale_factor'] as const) {
    if (typeof cfg[key] !== 'number' || !(cfg[key] > 0)) fail(key, cfg[key], 'a positive number');
  }
  if (typeof cfg.freq_shift !== 'number') fail('freq_shift', cfg.freq_shift, 'a number');
  for (const key of [
    'center_input_sample',
    'flip_sin_to_cos',
    'use_linear_projection',
    'upcast_attention',
  ] as const) {
    if (typeof cfg[key] !== 'boolean') fail(key, cfg[key], 'true, false');
  }
}

/**
 * Observers of one forward pass, and its attention processors' per-call inputs. Tensors the
 * observers receive belong to the pass: keep() to retain.
 */
export interface UNetForwardOptions {
  /**
   * Called after every BasicTransformerBlock with its module path
   * ("down_blocks.0.attentions.0.transformer_blocks.0") and its states, all (B, HW, C): input,
   * normed (= norm1(input), the input of its self-attention attn1) and output.
   */
  onTransformerBlock?: TransformerBlockHook;
  /**
   * Called with the output of each stage, named as diffusers' modules: time_proj,
   * time_embedding, conv_in, down_blocks.N (the hidden state, without the residuals),
   * mid_block, up_blocks.N and conv_norm_out (before SiLU and conv_out).
   */
  onBlock?: (name: string, output: Tensor) => void;
  /**
   * Handed untouched to every attention processor of this call, as AttentionCall.context
   * (diffusers' cross_attention_kwargs): how per-call inputs such as P3S's injected features
   * reach the processors that use them, and only for this call. Read entries with an
   * AttentionContextKey.
   */
  attentionContext?: AttentionContext;
}

export interface FromPretrainedOptions {
  /** Weight-file variant, e.g. "fp16" (diffusion_pytorch_model.fp16.safetensors). */
  variant?: string;
  /** Parameter dtype; the weights are converted on load. */
  dtype?: DType;
}

/** Per-level settings of the blocks, and those every block shares. */
interface LevelSettings {
  heads: number[];
  crossDims: number[];
  layers: number[];
  tLayers: number[];
  shared: {
    tembChannels: number;
    resnetEps: number;
    resnetGroups: number;
    resnetTimeScaleShift: 'default' | 'scale_shift';
    useLinearProjection: boolean;
    upcastAttention: boolean;
  };
}

function levelSettings(c: UNet2DConditionConfig): LevelSettings {
  const n = c.down_block_types.length;
  return {
    heads: perBlock('attention_head_dim', c.attention_head_dim, n),
    crossDims: perBlock('cross_attention_dim', c.cross_attention_dim, n),
    layers: perBlock('layers_per_block', c.layers_per_block, n),
    tLayers: perBlock('transformer_layers_per_block', c.transformer_layers_per_block, n),
    shared: {
      tembChannels: c.time_embedding_dim ?? c.block_out_channels[0]! * 4,
      resnetEps: c.norm_eps,
      resnetGroups: c.norm_num_groups,
      resnetTimeScaleShift: c.resnet_time_scale_shift,
      useLinearProjection: c.use_linear_projection,
      upcastAttention: c.upcast_attention,
    },
  };
}

function downBlocks(c: UNet2DConditionConfig, l: LevelSettings): DownBlock[] {
  const channels = c.block_out_channels;
  const n = channels.length;
  return c.down_block_types.map((type, i) => {
    const o = {
      ...l.shared,
      numLayers: l.layers[i]!,
      inChannels: i === 0 ? channels[0]! : channels[i - 1]!,
      outChannels: channels[i]!,
      addDownsample: i < n - 1,
      downsamplePadding: c.downsample_padding,
      numAttentionHeads: l.heads[i]!,
      crossAttentionDim: l.crossDims[i]!,
      transformerLayersPerBlock: l.tLayers[i]!,
    };
    return type === 'CrossAttnDownBlock2D' ? new CrossAttnDownBlock2D(o) : new DownBlock2D(o);
  });
}

function midBlock(c: UNet2DConditionConfig, l: LevelSettings): UNetMidBlock2DCrossAttn {
  const n = c.block_out_channels.length;
  return new UNetMidBlock2DCrossAttn({
    ...l.shared,
    inChannels: c.block_out_channels[n - 1]!,
    numAttentionHeads: l.heads[n - 1]!,
    crossAttentionDim: l.crossDims[n - 1]!,
    transformerLayersPerBlock: l.tLayers[n - 1]!,
    outputScaleFactor: c.mid_block_scale_factor,
  });
}

/** Up block i mirrors down block n-1-i: it has one resnet more, each fed [state, skip]. */
function upBlocks(c: UNet2DConditionConfig, l: LevelSettings): UpBlock[] {
  const rev = [...c.block_out_channels].reverse();
  const n = rev.length;
  return c.up_block_types.map((type, i) => {
    const j = n - 1 - i;
    const o = {
      ...l.shared,
      numLayers: l.layers[j]! + 1,
      inChannels: rev[Math.min(i + 1, n - 1)]!,
      outChannels: rev[i]!,
      prevOutputChannels: i === 0 ? rev[0]! : rev[i - 1]!,
      addUpsample: i < n - 1,
      numAttentionHeads: l.heads[j]!,
      crossAttentionDim: l.crossDims[j]!,
      transformerLayersPerBlock: l.tLayers[j]!,
    };
    return type === 'CrossAttnUpBlock2D' ? new CrossAttnUpBlock2D(o) : new UpBlock2D(o);
  });
}

export class UNet2DConditionModel extends Module {
  readonly config: UNet2DConditionConfig;
  readonly convIn: Conv2d;
  readonly timeEmbedding: TimestepEmbedding;
  readonly downBlocks: ModuleList<DownBlock>;
  readonly upBlocks: ModuleList<UpBlock>;
  readonly midBlock: UNetMidBlock2DCrossAttn | null;
  readonly convNormOut: GroupNorm;
  readonly convOut: Conv2d;
  /** Up blocks with an upsampler: latents whose sides are not multiples of 2^this need sizes. */
  readonly numUpsamplers: number;

  constructor(config: Partial<UNet2DConditionConfig> | Record<string, unknown> = {}) {
    super();
    const c = resolveUNetConfig(config);
    this.config = c;
    const levels = levelSettings(c);
    const channels = c.block_out_channels;
    this.convIn = this.registerModule(
      'conv_in',
      new Conv2d(c.in_channels, channels[0]!, c.conv_in_kernel, {
        padding: (c.conv_in_kernel - 1) / 2,
      }),
    );
    // time_proj (diffusers' Timesteps) has no parameters: timestepEmbedding() in forward.
    this.timeEmbedding = this.registerModule(
      'time_embedding',
      new TimestepEmbedding(channels[0]!, levels.shared.tembChannels),
    );
    // Registered in diffusers' order (down, up, mid), so attnProcessors() lists paths as it does.
    this.downBlocks = this.registerModule('down_blocks', new ModuleList(downBlocks(c, levels)));
    this.upBlocks = this.registerModule('up_blocks', new ModuleList<UpBlock>());
    // Built in diffusers' order (down, mid, up), so a seeded initialisation draws the same.
    this.midBlock =
      c.mid_block_type === null ? null : this.registerModule('mid_block', midBlock(c, levels));
    for (const block of upBlocks(c, levels)) this.upBlocks.push(block);
    this.numUpsamplers = c.up_block_types.length - 1; // every up block but the last
    this.convNormOut = this.registerModule(
      'conv_norm_out',
      new GroupNorm(c.norm_num_groups, channels[0]!, c.norm_eps),
    );
    this.convOut = this.registerModule(
      'conv_out',
      new Conv2d(channels[0]!, c.out_channels, c.conv_out_kernel, {
        padding: (c.conv_out_kernel - 1) / 2,
      }),
    );
    nameTransformerBlocks(this);
  }

  /** Reads `folder/config.json` and the safetensors weights (a diffusers `unet/` folder). */
  static fromPretrained(folder: string, options: FromPretrainedOptions = {}): UNet2DConditionModel {
    const config = readConfig(folder);
    return loadPretrained(() => new UNet2DConditionModel(config), folder, options);
  }

  /**
   * ε prediction for sample (B, in_channels, h, w) at timestep (a number, or a (B,) / (1,) /
   * scalar tensor) with context encoderHiddenStates (B, L, cross_attention_dim).
   */
  forward(
    sample: Tensor,
    timestep: number | Tensor,
    encoderHiddenStates: Tensor,
    options: UNetForwardOptions = {},
  ): Tensor {
    const { onBlock } = options;
    const call: ForwardCall = {
      onTransformerBlock: options.onTransformerBlock,
      attentionContext: options.attentionContext,
    };
    this.checkInputs(sample, encoderHiddenStates);
    const [b, , height, width] = sample.shape as [number, number, number, number];
    // Sides that 2^numUpsamplers does not divide: each upsampler must hit its skip's size.
    const factor = 2 ** this.numUpsamplers;
    const forwardUpsampleSize = height % factor !== 0 || width % factor !== 0;

    let x = this.config.center_input_sample ? sample.mul(2).sub(1) : sample;

    // 1. time
    let tEmb = timestepEmbedding(
      this.timesteps(timestep, b, sample.device),
      this.config.block_out_channels[0]!,
      {
        flipSinToCos: this.config.flip_sin_to_cos,
        downscaleFreqShift: this.config.freq_shift,
      },
    ); // (B, C0)
    if (tEmb.dtype !== x.dtype) tEmb = tEmb.to(x.dtype);
    onBlock?.('time_proj', tEmb);
    const emb = this.timeEmbedding.forward(tEmb); // (B, 4·C0)
    onBlock?.('time_embedding', emb);

    // 2. down
    x = this.convIn.forward(x);
    onBlock?.('conv_in', x);
    const residuals: Tensor[] = [x];
    for (let i = 0; i < this.downBlocks.length; i++) {
      const out = this.downBlocks.at(i).forward(x, emb, encoderHiddenStates, call);
      x = out.hidden;
      residuals.push(...out.residuals);
      onBlock?.(`down_blocks.${i}`, x);
    }

    // 3. mid
    if (this.midBlock) {
      x = this.midBlock.forward(x, emb, encoderHiddenStates, call);
      onBlock?.('mid_block', x);
    }

    // 4. up: each block takes as many residuals (from the end) as it has resnets
    for (let i = 0; i < this.upBlocks.length; i++) {
      const block = this.upBlocks.at(i);
      const skips = residuals.splice(residuals.length - block.resnets.length);
      const isFinal = i === this.upBlocks.length - 1;
      const next = residuals[residuals.length - 1];
      const size =
        !isFinal && forwardUpsampleSize && next
          ? ([next.shape[2]!, next.shape[3]!] as [number, number])
          : null;
      x = block.forward(x, skips, emb, encoderHiddenStates, size, call);
      onBlock?.(`up_blocks.${i}`, x);
    }

    // 5. out
    x = this.convNormOut.forward(x);
    onBlock?.('conv_norm_out', x);
    return this.convOut.forward(F.silu(x));
  }

  /** Every attention layer by module path ("mid_block.attentions.0.transformer_blocks.0.attn1"). */
  attentionLayers(): Map<string, Attention> {
    const out = new Map<string, Attention>();
    for (const [path, m] of this.namedModules()) if (m instanceof Attention) out.set(path, m);
    return out;
  }

  /**
   * The processor of every attention layer, keyed as in diffusers by the layer's module path
   * plus ".processor" ("down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor").
   * Self-attention layers are those whose path ends in "attn1".
   */
  attnProcessors(): Map<string, AttentionProcessor> {
    const out = new Map<string, AttentionProcessor>();
    for (const [path, attn] of this.attentionLayers()) out.set(`${path}.processor`, attn.processor);
    return out;
  }

  /**
   * Sets one processor on every attention layer, or one per layer from a Map keyed like
   * attnProcessors(). A Map must name every layer exactly once: a wrong count or an unknown or
   * missing key is an error, and nothing is changed.
   */
  setAttnProcessor(processor: AttentionProcessor | ReadonlyMap<string, AttentionProcessor>): void {
    const layers = this.attentionLayers();
    if (!(processor instanceof Map)) {
      for (const attn of layers.values()) attn.processor = processor as AttentionProcessor;
      return;
    }
    const map = processor as ReadonlyMap<string, AttentionProcessor>;
    const expected = new Set([...layers.keys()].map((p) => `${p}.processor`));
    const unknown = [...map.keys()].filter((k) => !expected.has(k));
    const missing = [...expected].filter((k) => !map.has(k));
    if (map.size !== expected.size || unknown.length > 0 || missing.length > 0) {
      const parts = [
        `received ${map.size} processors for ${expected.size} attention layers`,
        unknown.length ? `unknown keys: ${unknown.join(', ')}` : '',
        missing.length ? `missing keys: ${missing.join(', ')}` : '',
      ].filter(Boolean);
      throw new RangeError(`setAttnProcessor: ${parts.join('; ')}`);
    }
    for (const [path, attn] of layers) attn.processor = map.get(`${path}.processor`)!;
  }

  /** Restores the plain AttnProcessor everywhere. */
  setDefaultAttnProcessor(): void {
    this.setAttnProcessor(new AttnProcessor());
  }

  private timesteps(timestep: number | Tensor, batch: number, device: string): Tensor {
    let t = typeof timestep === 'number' ? tensor([timestep], [1], { dtype: 'float32' }) : timestep;
    if (t.ndim === 0) t = t.unsqueeze(0);
    if (t.ndim !== 1 || (t.shape[0] !== 1 && t.shape[0] !== batch)) {
      throw new RangeError(
        `Expected a timestep number or a tensor of shape [], [1] or [${batch}] but received [${t.shape.join(', ')}]`,
      );
    }
    if (t.device !== device) t = t.to(device);
    return t.shape[0] === batch ? t : t.expand(batch);
  }

  private checkInputs(sample: Tensor, context: Tensor): void {
    const inC = this.config.in_channels;
    if (sample.ndim !== 4 || sample.shape[1] !== inC) {
      throw new RangeError(
        `Expected a sample of shape (B, ${inC}, h, w) but received [${sample.shape.join(', ')}]`,
      );
    }
    if (context.ndim !== 3 || context.shape[0] !== sample.shape[0]) {
      throw new RangeError(
        `Expected encoderHiddenStates of shape (${sample.shape[0]}, L, C) but received [${context.shape.join(', ')}]`,
      );
    }
  }
}
