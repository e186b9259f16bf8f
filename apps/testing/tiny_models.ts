// Random tiny models in the real folder layouts, for tests that must not depend on shared files
// alone: a complete diffusers Stable Diffusion folder (model_index.json, unet/, vae/,
// text_encoder/, tokenizer/, scheduler/, feature_extractor/) and a transformers
// CLIPVisionModelWithProjection folder. Configs carry every key diffusers 0.27.2 /
// transformers 4.26.0 write, sorted and indented as their save_pretrained does; weights are
// the p3s modules' own initialisation under manualSeed(seed), then, like the golden fixtures,
// norm weights 1 + 0.1·N(0,1), norm biases 0.1·N(0,1) and other biases + 0.02·N(0,1), so that
// a mixed-up gamma, beta or bias shows. The same seed writes byte-identical files.
//
// The folders are written with the library's save_pretrained helpers (src/models/).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { randn } from '../../src/engine/creation.js';
import type { DType } from '../../src/engine/dtype.js';
import { Generator, manualSeed } from '../../src/engine/random.js';
import type { Tensor } from '../../src/engine/tensor.js';
import type { Module } from '../../src/nn/module.js';
import { GroupNorm, LayerNorm } from '../../src/nn/layers.js';
import { clipTextConfig, clipVisionConfig } from '../../src/models/clip/clip_config.js';
import { CLIPTextModel } from '../../src/models/clip/clip_text_model.js';
import { CLIPVisionModelWithProjection } from '../../src/models/clip/clip_vision_model.js';
import {
  DIFFUSERS_VERSION,
  clipPreprocessorConfig,
  diffusersConfig,
  positionIds,
  saveWeights,
  transformersConfig,
  weightFilePath,
  writeJson,
  writeModelIndex,
  writeTokenizer,
} from '../../src/models/save_pretrained.js';
import { UNet2DConditionModel } from '../../src/models/unet/unet_2d_condition.js';
import { AutoencoderKL } from '../../src/models/vae/autoencoder_kl.js';

/** The tiny U-Net of the golden fixtures: SD 1.5's block structure, 16–32 channels, 4 heads. */
export const TINY_UNET_CONFIG: Readonly<Record<string, unknown>> = Object.freeze({
  act_fn: 'silu',
  addition_embed_type: null,
  addition_embed_type_num_heads: 64,
  addition_time_embed_dim: null,
  attention_head_dim: 4,
  attention_type: 'default',
  block_out_channels: [16, 24, 32, 32],
  center_input_sample: false,
  class_embed_type: null,
  class_embeddings_concat: false,
  conv_in_kernel: 3,
  conv_out_kernel: 3,
  cross_attention_dim: 32,
  cross_attention_norm: null,
  down_block_types: [
    'CrossAttnDownBlock2D',
    'CrossAttnDownBlock2D',
    'CrossAttnDownBlock2D',
    'DownBlock2D',
  ],
  downsample_padding: 1,
  dropout: 0.0,
  dual_cross_attention: false,
  encoder_hid_dim: null,
  encoder_hid_dim_type: null,
  flip_sin_to_cos: true,
  freq_shift: 0,
  in_channels: 4,
  layers_per_block: 2,
  mid_block_only_cross_attention: null,
  mid_block_scale_factor: 1,
  mid_block_type: 'UNetMidBlock2DCrossAttn',
  norm_eps: 1e-5,
  norm_num_groups: 8,
  num_attention_heads: null,
  num_class_embeds: null,
  only_cross_attention: false,
  out_channels: 4,
  projection_class_embeddings_input_dim: null,
  resnet_out_scale_factor: 1.0,
  resnet_skip_time_act: false,
  resnet_time_scale_shift: 'default',
  reverse_transformer_layers_per_block: null,
  sample_size: 8,
  time_cond_proj_dim: null,
  time_embedding_act_fn: null,
  time_embedding_dim: null,
  time_embedding_type: 'positional',
  timestep_post_act: null,
  transformer_layers_per_block: 1,
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
  upcast_attention: false,
  use_linear_projection: false,
});

/** The tiny VAE of the golden fixtures: SD 1.5's four blocks, 8–32 channels. */
export const TINY_VAE_CONFIG: Readonly<Record<string, unknown>> = Object.freeze({
  act_fn: 'silu',
  block_out_channels: [8, 16, 32, 32],
  down_block_types: Array<string>(4).fill('DownEncoderBlock2D'),
  force_upcast: true,
  in_channels: 3,
  latent_channels: 4,
  latents_mean: null,
  latents_std: null,
  layers_per_block: 2,
  norm_num_groups: 8,
  out_channels: 3,
  sample_size: 32,
  scaling_factor: 0.18215,
  up_block_types: Array<string>(4).fill('UpDecoderBlock2D'),
});

/** The tiny CLIP text encoder of the golden fixtures (2 layers, width 32, CLIP's 49408 tokens). */
export const TINY_TEXT_CONFIG: Readonly<Record<string, unknown>> = Object.freeze({
  architectures: ['CLIPTextModel'],
  attention_dropout: 0.0,
  bos_token_id: 0,
  dropout: 0.0,
  eos_token_id: 2,
  hidden_act: 'quick_gelu',
  hidden_size: 32,
  initializer_factor: 1.0,
  initializer_range: 0.02,
  intermediate_size: 128,
  layer_norm_eps: 1e-5,
  max_position_embeddings: 77,
  model_type: 'clip_text_model',
  num_attention_heads: 4,
  num_hidden_layers: 2,
  pad_token_id: 1,
  projection_dim: 16,
  vocab_size: 49408,
});

/** The tiny CLIP vision tower of the golden fixtures (2 layers, width 32, 32 px, patch 8). */
export const TINY_VISION_CONFIG: Readonly<Record<string, unknown>> = Object.freeze({
  architectures: ['CLIPVisionModelWithProjection'],
  attention_dropout: 0.0,
  dropout: 0.0,
  hidden_act: 'quick_gelu',
  hidden_size: 32,
  image_size: 32,
  initializer_factor: 1.0,
  initializer_range: 0.02,
  intermediate_size: 128,
  layer_norm_eps: 1e-5,
  model_type: 'clip_vision_model',
  num_attention_heads: 4,
  num_channels: 3,
  num_hidden_layers: 2,
  patch_size: 8,
  projection_dim: 16,
});

/** runwayml/stable-diffusion-v1-5's scheduler/scheduler_config.json (PNDM, PLMS only). */
export const SD15_SCHEDULER_CONFIG: Readonly<Record<string, unknown>> = Object.freeze({
  _class_name: 'PNDMScheduler',
  _diffusers_version: DIFFUSERS_VERSION,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  beta_start: 0.00085,
  clip_sample: false,
  num_train_timesteps: 1000,
  prediction_type: 'epsilon',
  set_alpha_to_one: false,
  skip_prk_steps: true,
  steps_offset: 1,
  timestep_spacing: 'leading',
  trained_betas: null,
});

export interface TinyWeightsOptions {
  /** Seeds the initialisation (manualSeed) and the perturbation. */
  seed: number;
  /** Config keys to change (merged over the tiny config), verbatim as in config.json. */
  config?: Record<string, unknown>;
  /** dtype of the stored weights (default float32). */
  dtype?: DType;
  /** File-name variant, e.g. 'fp16' for diffusion_pytorch_model.fp16.safetensors. */
  variant?: string;
  /** Perturb norms and biases as the golden fixtures do (default true). */
  perturb?: boolean;
}

export interface TinyPipelineOptions {
  seed: number;
  /** A transformers CLIP tokenizer folder (vocab.json, merges.txt) to copy: a BPE vocab can't be invented. */
  tokenizerFolder: string;
  unet?: Record<string, unknown>;
  vae?: Record<string, unknown>;
  textEncoder?: Record<string, unknown>;
  dtype?: DType;
  variant?: string;
  perturb?: boolean;
}

/**
 * The module's weights, perturbed like the fixtures' (from Generator(seed), in sorted key order)
 * unless perturb is false, in options.dtype (default float32), plus `extra` tensors.
 */
function saveTinyWeights(
  module: Module,
  path: string,
  options: TinyWeightsOptions,
  extra: [string, Tensor][] = [],
): void {
  const map = (options.perturb ?? true) ? perturbation(module, options.seed) : undefined;
  saveWeights(module, path, { dtype: options.dtype ?? 'float32', map }, extra);
}

/** Norm weights 1 + 0.1·N(0,1), norm biases 0.1·N(0,1), other biases + 0.02·N(0,1). */
function perturbation(module: Module, seed: number): (key: string, value: Tensor) => Tensor {
  const norms = new Set<string>();
  for (const [prefix, m] of module.namedModules()) {
    if (m instanceof GroupNorm || m instanceof LayerNorm) norms.add(prefix);
  }
  const generator = new Generator(seed);
  return (key, value) => {
    const owner = key.slice(0, key.lastIndexOf('.'));
    const name = key.slice(key.lastIndexOf('.') + 1);
    const noise = (s: number) => randn(value.shape, { generator }).mul(s);
    if (norms.has(owner) && name === 'weight') return noise(0.1).add(1);
    if (norms.has(owner) && name === 'bias') return noise(0.1);
    return name === 'bias' ? value.add(noise(0.02)) : value;
  };
}

/** The config a tiny model is built from: the tiny defaults with the caller's keys over them. */
function merged(
  base: Readonly<Record<string, unknown>>,
  over: Record<string, unknown> | undefined,
): Record<string, unknown> {
  return { ...base, ...(over ?? {}) };
}

/**
 * Builds a model under manualSeed(seed), saves its tiny weights as `weights`[.variant].safetensors
 * in `folder` with the `extra` tensors, and frees it.
 */
function saveTinyModel(
  folder: string,
  weights: string,
  options: TinyWeightsOptions,
  build: () => Module,
  extra: () => [string, Tensor][] = () => [],
): void {
  mkdirSync(folder, { recursive: true });
  manualSeed(options.seed);
  const model = build();
  try {
    saveTinyWeights(model, weightFilePath(folder, weights, options.variant), options, extra());
  } finally {
    model.dispose();
  }
}

/** A diffusers `unet/` folder: config.json + diffusion_pytorch_model[.variant].safetensors. */
export function writeTinyUNet(
  folder: string,
  options: TinyWeightsOptions,
): Record<string, unknown> {
  const config = diffusersConfig('UNet2DConditionModel', merged(TINY_UNET_CONFIG, options.config));
  saveTinyModel(folder, 'diffusion_pytorch_model', options, () => new UNet2DConditionModel(config));
  writeJson(join(folder, 'config.json'), config);
  return config;
}

/** A diffusers `vae/` folder (AutoencoderKL, diffusers 0.27's to_q/to_k/to_v/to_out.0 keys). */
export function writeTinyVae(folder: string, options: TinyWeightsOptions): Record<string, unknown> {
  const config = diffusersConfig('AutoencoderKL', merged(TINY_VAE_CONFIG, options.config));
  saveTinyModel(folder, 'diffusion_pytorch_model', options, () => new AutoencoderKL(config));
  writeJson(join(folder, 'config.json'), config);
  return config;
}

/** A transformers config: the tiny defaults, the caller's keys, and the version stamps. */
function tinyTransformersConfig(
  base: Readonly<Record<string, unknown>>,
  options: TinyWeightsOptions,
): Record<string, unknown> {
  return transformersConfig(merged(base, options.config), options.dtype ?? 'float32');
}

/** A transformers `text_encoder/` folder: CLIPTextModel config.json + model.safetensors. */
export function writeTinyTextEncoder(
  folder: string,
  options: TinyWeightsOptions,
): Record<string, unknown> {
  const config = tinyTransformersConfig(TINY_TEXT_CONFIG, options);
  const n = clipTextConfig(config).max_position_embeddings;
  saveTinyModel(
    folder,
    'model',
    options,
    () => new CLIPTextModel(config),
    () => [positionIds('text_model.embeddings.position_ids', n)],
  );
  writeJson(join(folder, 'config.json'), config);
  return config;
}

/**
 * A transformers CLIPVisionModelWithProjection folder: config.json, model[.variant].safetensors
 * (with the position_ids buffer) and preprocessor_config.json for its image_size.
 */
export function writeTinyClipVision(
  folder: string,
  options: TinyWeightsOptions,
): Record<string, unknown> {
  const config = tinyTransformersConfig(TINY_VISION_CONFIG, options);
  const { image_size: size, patch_size: patch } = clipVisionConfig(config);
  saveTinyModel(
    folder,
    'model',
    options,
    () => new CLIPVisionModelWithProjection(config),
    () => [positionIds('vision_model.embeddings.position_ids', (size / patch) ** 2 + 1)],
  );
  writeJson(join(folder, 'preprocessor_config.json'), clipPreprocessorConfig(size));
  writeJson(join(folder, 'config.json'), config);
  return config;
}

/**
 * A complete diffusers Stable Diffusion 1.x folder with tiny random models: model_index.json,
 * unet/, vae/, text_encoder/ (vocab_size = the copied tokenizer's), tokenizer/, scheduler/
 * (SD 1.5's PNDM config) and feature_extractor/. Each model gets its own seed derived from
 * `seed`, so changing one config leaves the others' weights as they were.
 */
export function writeTinyPipeline(folder: string, options: TinyPipelineOptions): void {
  const { seed, dtype, variant, perturb } = options;
  mkdirSync(folder, { recursive: true });
  const vocabSize = writeTokenizer(join(folder, 'tokenizer'), options.tokenizerFolder);
  const shared = { dtype, variant, perturb };
  writeTinyTextEncoder(join(folder, 'text_encoder'), {
    ...shared,
    seed,
    config: { vocab_size: vocabSize, ...(options.textEncoder ?? {}) },
  });
  writeTinyUNet(join(folder, 'unet'), { ...shared, seed: seed + 1, config: options.unet });
  writeTinyVae(join(folder, 'vae'), { ...shared, seed: seed + 2, config: options.vae });
  mkdirSync(join(folder, 'scheduler'), { recursive: true });
  writeJson(join(folder, 'scheduler', 'scheduler_config.json'), SD15_SCHEDULER_CONFIG);
  mkdirSync(join(folder, 'feature_extractor'), { recursive: true });
  writeJson(
    join(folder, 'feature_extractor', 'preprocessor_config.json'),
    clipPreprocessorConfig(224),
  );
  writeModelIndex(folder);
}
