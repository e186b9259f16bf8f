// transformers' ViTConfig with the config.json key names verbatim (DINO ViT-S/16,
// facebook/dino-vits16: hidden 384, 12 layers, 6 heads, 16-px patches at 224 px).
import { HIDDEN_ACTS, type HiddenAct } from '../clip/clip_config.js';
import { ConfigKeyError, configValue, reportingMissing } from '../loading.js';

export interface ViTConfig {
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  hidden_act: HiddenAct;
  layer_norm_eps: number;
  image_size: number;
  patch_size: number;
  num_channels: number;
  qkv_bias: boolean;
}

// transformers 4.26's ViTConfig defaults (ViT-B/16), so a config.json that omits a key means the
// same. The dropout keys are not read: p3s runs ViT for evaluation only (DINO's are 0 anyway).
const VIT_DEFAULTS: ViTConfig = {
  hidden_size: 768,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  intermediate_size: 3072,
  hidden_act: 'gelu',
  layer_norm_eps: 1e-12,
  image_size: 224,
  patch_size: 16,
  num_channels: 3,
  qkv_bias: true,
};

function positiveInt(config: Record<string, unknown>, key: string, fallback: number): number {
  const v = configValue<unknown>(config, key, fallback);
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0)
    throw new ConfigKeyError(key, v, 'a positive integer');
  return v;
}

function multipleOf(value: ViTConfig, key: keyof ViTConfig, of: keyof ViTConfig): void {
  const v = value[key] as number;
  const d = value[of] as number;
  if (v % d !== 0)
    throw new ConfigKeyError(key, v, `a multiple of "${of}" (${d})`, { relatedTo: of });
}

/** A ViTConfig from a config.json object (model_type "vit"), keys verbatim. */
export function vitConfig(config: Record<string, unknown> = {}): ViTConfig {
  const modelType = config.model_type;
  if (modelType !== undefined && modelType !== 'vit')
    throw new ConfigKeyError('model_type', modelType, '"vit"');
  const d = VIT_DEFAULTS;
  return reportingMissing(config, () => {
    const out: ViTConfig = {
      hidden_size: positiveInt(config, 'hidden_size', d.hidden_size),
      num_hidden_layers: positiveInt(config, 'num_hidden_layers', d.num_hidden_layers),
      num_attention_heads: positiveInt(config, 'num_attention_heads', d.num_attention_heads),
      intermediate_size: positiveInt(config, 'intermediate_size', d.intermediate_size),
      hidden_act: configValue<HiddenAct>(config, 'hidden_act', d.hidden_act, HIDDEN_ACTS),
      layer_norm_eps: configValue(config, 'layer_norm_eps', d.layer_norm_eps),
      image_size: positiveInt(config, 'image_size', d.image_size),
      patch_size: positiveInt(config, 'patch_size', d.patch_size),
      num_channels: positiveInt(config, 'num_channels', d.num_channels),
      qkv_bias: configValue(config, 'qkv_bias', d.qkv_bias, [true, false]),
    };
    multipleOf(out, 'hidden_size', 'num_attention_heads');
    multipleOf(out, 'image_size', 'patch_size');
    return out;
  });
}
