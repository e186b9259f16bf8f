// transformers' CLIPTextConfig and CLIPVisionConfig, with the config.json key names verbatim.
// A folder may hold a tower's own config (model_type "clip_text_model" / "clip_vision_model")
// or a combined CLIPConfig (model_type "clip", with text_config and vision_config inside).
import { ConfigKeyError, configValue, reportingMissing } from '../loading.js';

export const HIDDEN_ACTS = ['quick_gelu', 'gelu', 'gelu_new', 'gelu_pytorch_tanh'] as const;
export type HiddenAct = (typeof HIDDEN_ACTS)[number];

/** The keys both towers' transformer layers read. */
export interface CLIPEncoderConfig {
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  hidden_act: HiddenAct;
  layer_norm_eps: number;
}

export interface CLIPTextConfig extends CLIPEncoderConfig {
  vocab_size: number;
  max_position_embeddings: number;
  projection_dim: number;
  pad_token_id: number;
  bos_token_id: number;
  eos_token_id: number;
}

export interface CLIPVisionConfig extends CLIPEncoderConfig {
  num_channels: number;
  image_size: number;
  patch_size: number;
  projection_dim: number;
}

// transformers 4.26's defaults (CLIP ViT-B/32), so a config.json that omits a key means the same.
const TEXT_DEFAULTS: CLIPTextConfig = {
  vocab_size: 49408,
  hidden_size: 512,
  intermediate_size: 2048,
  projection_dim: 512,
  num_hidden_layers: 12,
  num_attention_heads: 8,
  max_position_embeddings: 77,
  hidden_act: 'quick_gelu',
  layer_norm_eps: 1e-5,
  pad_token_id: 1,
  bos_token_id: 0,
  eos_token_id: 2,
};

const VISION_DEFAULTS: CLIPVisionConfig = {
  hidden_size: 768,
  intermediate_size: 3072,
  projection_dim: 512,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  num_channels: 3,
  image_size: 224,
  patch_size: 32,
  hidden_act: 'quick_gelu',
  layer_norm_eps: 1e-5,
};

function positiveInt(config: Record<string, unknown>, key: string, fallback: number): number {
  const v = configValue<unknown>(config, key, fallback);
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0)
    throw new ConfigKeyError(key, v, 'a positive integer');
  return v;
}

function encoderConfig(
  config: Record<string, unknown>,
  defaults: CLIPEncoderConfig,
): CLIPEncoderConfig {
  const out: CLIPEncoderConfig = {
    hidden_size: positiveInt(config, 'hidden_size', defaults.hidden_size),
    intermediate_size: positiveInt(config, 'intermediate_size', defaults.intermediate_size),
    num_hidden_layers: positiveInt(config, 'num_hidden_layers', defaults.num_hidden_layers),
    num_attention_heads: positiveInt(config, 'num_attention_heads', defaults.num_attention_heads),
    hidden_act: configValue<HiddenAct>(config, 'hidden_act', defaults.hidden_act, HIDDEN_ACTS),
    layer_norm_eps: configValue(config, 'layer_norm_eps', defaults.layer_norm_eps),
  };
  if (out.hidden_size % out.num_attention_heads !== 0) {
    const heads = `a multiple of "num_attention_heads" (${out.num_attention_heads})`;
    throw new ConfigKeyError('hidden_size', out.hidden_size, heads, {
      relatedTo: 'num_attention_heads',
    });
  }
  return out;
}

/** The tower's own section of a config.json: itself, or text_config/vision_config of a CLIPConfig. */
function section(
  config: Record<string, unknown>,
  which: 'text' | 'vision',
): Record<string, unknown> {
  // Old CLIPConfig files spell the sections text_config_dict / vision_config_dict.
  const nested = config[`${which}_config`] ?? config[`${which}_config_dict`];
  if (nested !== undefined && nested !== null) {
    if (typeof nested !== 'object' || Array.isArray(nested)) {
      throw new ConfigKeyError(`${which}_config`, nested, 'an object');
    }
    const own = { ...(nested as Record<string, unknown>) };
    // A CLIPConfig keeps projection_dim at the top; older files leave it out of the sections.
    if (own.projection_dim === undefined && config.projection_dim !== undefined) {
      own.projection_dim = config.projection_dim;
    }
    return own;
  }
  const modelType = config.model_type;
  const expected = `clip_${which}_model`;
  if (modelType !== undefined && modelType !== expected && modelType !== 'clip') {
    throw new ConfigKeyError('model_type', modelType, `"${expected}", "clip"`);
  }
  return config;
}

/** A CLIPTextConfig from a config.json object (a text tower's own, or a combined CLIPConfig). */
export function clipTextConfig(config: Record<string, unknown> = {}): CLIPTextConfig {
  const own = section(config, 'text');
  const d = TEXT_DEFAULTS;
  return reportingMissing(own, () => ({
    ...encoderConfig(own, d),
    vocab_size: positiveInt(own, 'vocab_size', d.vocab_size),
    max_position_embeddings: positiveInt(own, 'max_position_embeddings', d.max_position_embeddings),
    projection_dim: positiveInt(own, 'projection_dim', d.projection_dim),
    pad_token_id: configValue(own, 'pad_token_id', d.pad_token_id),
    bos_token_id: configValue(own, 'bos_token_id', d.bos_token_id),
    eos_token_id: configValue(own, 'eos_token_id', d.eos_token_id),
  }));
}

/** A CLIPVisionConfig from a config.json object (a vision tower's own, or a combined CLIPConfig). */
export function clipVisionConfig(config: Record<string, unknown> = {}): CLIPVisionConfig {
  const own = section(config, 'vision');
  return reportingMissing(own, () => visionKeys(own, VISION_DEFAULTS));
}

function visionKeys(own: Record<string, unknown>, d: CLIPVisionConfig): CLIPVisionConfig {
  const out = {
    ...encoderConfig(own, d),
    num_channels: positiveInt(own, 'num_channels', d.num_channels),
    image_size: positiveInt(own, 'image_size', d.image_size),
    patch_size: positiveInt(own, 'patch_size', d.patch_size),
    projection_dim: positiveInt(own, 'projection_dim', d.projection_dim),
  };
  if (out.image_size % out.patch_size !== 0) {
    const patches = `a multiple of "patch_size" (${out.patch_size})`;
    throw new ConfigKeyError('image_size', out.image_size, patches, { relatedTo: 'patch_size' });
  }
  return out;
}
