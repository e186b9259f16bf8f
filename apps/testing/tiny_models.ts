// Random tiny models in the real folder layouts, for tests that must not depend on shared files
// alone: a complete diffusers Stable Diffusion folder (model_index.json, unet/, vae/,
// text_encoder/, tokenizer/, scheduler/, feature_extractor/) and a transformers
// CLIPVisionModelWithProjection folder. Configs carry every key diffusers 0.27.2 /
// transformers 4.26.0 write, sorted and indented as their save_pretrained does; weights are
// the p3s modules' own initialisation under manualSeed(seed), then, like the golden fixtures,
// norm weights 1 + 0.1·N(0,1), norm biases 0.1·N(0,1) and other biases + 0.02·N(0,1), so that
// a mixed-up gamma, beta or bias shows. The same seed writes byte-identical files.
//
// Numbers are written by JavaScript's JSON (1e-05 reads back as 0.00001, 1.0 as 1): the values
// are the same, the text not always Python's.
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { arange, randn } from '../../src/engine/creation.js';
import type { DType } from '../../src/engine/dtype.js';
import { Generator, manualSeed } from '../../src/engine/random.js';
import { disposeAll, tidy } from '../../src/engine/scope.js';
import { Tensor } from '../../src/engine/tensor.js';
import { saveSafetensors } from '../../src/io/safetensors.js';
import { Module } from '../../src/nn/module.js';
import { GroupNorm, LayerNorm } from '../../src/nn/layers.js';
import { CLIPTextModel } from '../../src/models/clip/clip_text_model.js';
import { CLIPVisionModelWithProjection } from '../../src/models/clip/clip_vision_model.js';
import { UNet2DConditionModel } from '../../src/models/unet/unet_2d_condition.js';
import { AutoencoderKL } from '../../src/models/vae/autoencoder_kl.js';

export const DIFFUSERS_VERSION = '0.27.2';
export const TRANSFORMERS_VERSION = '4.26.0';

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

/** Python's json.dumps(obj, indent=2, sort_keys=True) + "\n", as save_pretrained writes. */
export function writeJson(path: string, value: unknown): void {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (v !== null && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      return Object.fromEntries(
        Object.keys(o)
          .sort()
          .map((k) => [k, sort(o[k])]),
      );
    }
    return v;
  };
  writeFileSync(path, `${JSON.stringify(sort(value), null, 2)}\n`);
}

function weightFile(folder: string, base: string, variant: string | undefined): string {
  return join(folder, variant ? `${base}.${variant}.safetensors` : `${base}.safetensors`);
}

/**
 * The module's state dict, perturbed like the fixtures' weights (in sorted key order, from
 * Generator(seed)), plus `extra` tensors, converted to dtype and written as safetensors.
 */
export function saveWeights(
  module: Module,
  path: string,
  options: TinyWeightsOptions,
  extra: [string, Tensor][] = [],
): void {
  const norms = new Set<string>();
  for (const [prefix, m] of module.namedModules()) {
    if (m instanceof GroupNorm || m instanceof LayerNorm) norms.add(prefix);
  }
  const dtype = options.dtype ?? 'float32';
  const generator = new Generator(options.seed);
  const state = module.stateDict();
  const out = new Map<string, Tensor>();
  try {
    for (const key of [...state.keys()].sort()) {
      const value = state.get(key)!;
      const owner = key.slice(0, key.lastIndexOf('.'));
      const name = key.slice(key.lastIndexOf('.') + 1);
      const t = tidy(() => {
        let v = value.detach();
        if (options.perturb ?? true) {
          const noise = (s: number) => randn(value.shape, { generator }).mul(s);
          if (norms.has(owner) && name === 'weight') v = noise(0.1).add(1);
          else if (norms.has(owner) && name === 'bias') v = noise(0.1);
          else if (name === 'bias') v = v.add(noise(0.02));
        }
        return v.isFloatingPoint && v.dtype !== dtype ? v.to(dtype) : v.clone();
      });
      out.set(key, t);
    }
    for (const [key, t] of extra) out.set(key, t);
    saveSafetensors(path, out, { format: 'pt' });
  } finally {
    disposeAll([...out.values()]);
  }
}

/** The config a tiny model is built from: the tiny defaults with the caller's keys over them. */
function merged(
  base: Readonly<Record<string, unknown>>,
  over: Record<string, unknown> | undefined,
): Record<string, unknown> {
  return { ...base, ...(over ?? {}) };
}

/** A diffusers `unet/` folder: config.json + diffusion_pytorch_model[.variant].safetensors. */
export function writeTinyUNet(
  folder: string,
  options: TinyWeightsOptions,
): Record<string, unknown> {
  const config = {
    _class_name: 'UNet2DConditionModel',
    _diffusers_version: DIFFUSERS_VERSION,
    ...merged(TINY_UNET_CONFIG, options.config),
  };
  mkdirSync(folder, { recursive: true });
  manualSeed(options.seed);
  const model = new UNet2DConditionModel(config);
  try {
    saveWeights(model, weightFile(folder, 'diffusion_pytorch_model', options.variant), options);
  } finally {
    model.dispose();
  }
  writeJson(join(folder, 'config.json'), config);
  return config;
}

/** A diffusers `vae/` folder (AutoencoderKL, diffusers 0.27's to_q/to_k/to_v/to_out.0 keys). */
export function writeTinyVae(folder: string, options: TinyWeightsOptions): Record<string, unknown> {
  const config = {
    _class_name: 'AutoencoderKL',
    _diffusers_version: DIFFUSERS_VERSION,
    ...merged(TINY_VAE_CONFIG, options.config),
  };
  mkdirSync(folder, { recursive: true });
  manualSeed(options.seed);
  const model = new AutoencoderKL(config);
  try {
    saveWeights(model, weightFile(folder, 'diffusion_pytorch_model', options.variant), options);
  } finally {
    model.dispose();
  }
  writeJson(join(folder, 'config.json'), config);
  return config;
}

/** transformers' int64 `embeddings.position_ids` buffer (1, n), which 4.26 still saved. */
export function positionIds(key: string, n: number): [string, Tensor] {
  const ids = arange(0, n, 1, { dtype: 'int64' });
  const row = ids.view(1, n);
  ids.dispose();
  return [key, row];
}

function transformersConfig(
  base: Readonly<Record<string, unknown>>,
  options: TinyWeightsOptions,
): Record<string, unknown> {
  return {
    ...merged(base, options.config),
    torch_dtype: options.dtype ?? 'float32',
    transformers_version: TRANSFORMERS_VERSION,
  };
}

/** A transformers `text_encoder/` folder: CLIPTextModel config.json + model.safetensors. */
export function writeTinyTextEncoder(
  folder: string,
  options: TinyWeightsOptions,
): Record<string, unknown> {
  const config = transformersConfig(TINY_TEXT_CONFIG, options);
  mkdirSync(folder, { recursive: true });
  manualSeed(options.seed);
  const model = new CLIPTextModel(config);
  try {
    const n = model.config.max_position_embeddings;
    saveWeights(model, weightFile(folder, 'model', options.variant), options, [
      positionIds('text_model.embeddings.position_ids', n),
    ]);
  } finally {
    model.dispose();
  }
  writeJson(join(folder, 'config.json'), config);
  return config;
}

/** CLIPImageProcessor's preprocessor_config.json for a square input size (CLIP-L: 224). */
export function clipPreprocessorConfig(size: number): Record<string, unknown> {
  return {
    crop_size: { height: size, width: size },
    do_center_crop: true,
    do_convert_rgb: true,
    do_normalize: true,
    do_rescale: true,
    do_resize: true,
    image_mean: [0.48145466, 0.4578275, 0.40821073],
    image_processor_type: 'CLIPImageProcessor',
    image_std: [0.26862954, 0.26130258, 0.27577711],
    resample: 3,
    rescale_factor: 0.00392156862745098,
    size: { shortest_edge: size },
  };
}

/**
 * A transformers CLIPVisionModelWithProjection folder: config.json, model[.variant].safetensors
 * (with the position_ids buffer) and preprocessor_config.json for its image_size.
 */
export function writeTinyClipVision(
  folder: string,
  options: TinyWeightsOptions,
): Record<string, unknown> {
  const config = transformersConfig(TINY_VISION_CONFIG, options);
  mkdirSync(folder, { recursive: true });
  manualSeed(options.seed);
  const model = new CLIPVisionModelWithProjection(config);
  try {
    const { image_size: size, patch_size: patch } = model.config;
    const n = (size / patch) ** 2 + 1;
    saveWeights(model, weightFile(folder, 'model', options.variant), options, [
      positionIds('vision_model.embeddings.position_ids', n),
    ]);
    writeJson(join(folder, 'preprocessor_config.json'), clipPreprocessorConfig(size));
  } finally {
    model.dispose();
  }
  writeJson(join(folder, 'config.json'), config);
  return config;
}

const SPECIAL_TOKEN = (content: string) => ({
  content,
  lstrip: false,
  normalized: true,
  rstrip: false,
  single_word: false,
});

/** tokenizer/: vocab.json and merges.txt copied, with SD 1.5's tokenizer configs if absent. */
export function writeTokenizer(folder: string, source: string): number {
  mkdirSync(folder, { recursive: true });
  for (const file of ['vocab.json', 'merges.txt']) {
    const from = join(source, file);
    if (!existsSync(from)) {
      throw new Error(`Expected a CLIP tokenizer folder with ${file} but ${from} does not exist`);
    }
    copyFileSync(from, join(folder, file));
  }
  const optional: Record<string, unknown> = {
    'tokenizer_config.json': {
      add_prefix_space: false,
      bos_token: { __type: 'AddedToken', ...SPECIAL_TOKEN('<|startoftext|>') },
      do_lower_case: true,
      eos_token: { __type: 'AddedToken', ...SPECIAL_TOKEN('<|endoftext|>') },
      errors: 'replace',
      model_max_length: 77,
      pad_token: '<|endoftext|>',
      tokenizer_class: 'CLIPTokenizer',
      unk_token: { __type: 'AddedToken', ...SPECIAL_TOKEN('<|endoftext|>') },
    },
    'special_tokens_map.json': {
      bos_token: SPECIAL_TOKEN('<|startoftext|>'),
      eos_token: SPECIAL_TOKEN('<|endoftext|>'),
      pad_token: '<|endoftext|>',
      unk_token: SPECIAL_TOKEN('<|endoftext|>'),
    },
  };
  for (const [file, content] of Object.entries(optional)) {
    const from = join(source, file);
    if (existsSync(from)) copyFileSync(from, join(folder, file));
    else writeJson(join(folder, file), content);
  }
  const vocab = JSON.parse(readFileSync(join(folder, 'vocab.json'), 'utf8')) as object;
  return Object.keys(vocab).length;
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

/**
 * model_index.json of a diffusers StableDiffusionPipeline folder; the text encoder's class and an
 * optional image_encoder/ entry vary (the toy models ship CLIPTextModelWithProjection and a vision tower).
 */
export function writeModelIndex(
  folder: string,
  options: { textEncoder?: string; imageEncoder?: string | null } = {},
): void {
  writeJson(join(folder, 'model_index.json'), {
    _class_name: 'StableDiffusionPipeline',
    _diffusers_version: DIFFUSERS_VERSION,
    feature_extractor: ['transformers', 'CLIPImageProcessor'],
    image_encoder: options.imageEncoder ? ['transformers', options.imageEncoder] : [null, null],
    requires_safety_checker: false,
    safety_checker: [null, null],
    scheduler: ['diffusers', 'PNDMScheduler'],
    text_encoder: ['transformers', options.textEncoder ?? 'CLIPTextModel'],
    tokenizer: ['transformers', 'CLIPTokenizer'],
    unet: ['diffusers', 'UNet2DConditionModel'],
    vae: ['diffusers', 'AutoencoderKL'],
  });
}
