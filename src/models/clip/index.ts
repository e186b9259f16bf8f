// CLIP text and vision transformers in transformers' layout (SD 1.5's text encoder, CLIP ViT-L/14).
export {
  clipTextConfig,
  clipVisionConfig,
  HIDDEN_ACTS,
  type HiddenAct,
  type CLIPEncoderConfig,
  type CLIPTextConfig,
  type CLIPVisionConfig,
} from './clip_config.js';
export {
  CLIPAttention,
  CLIPMLP,
  CLIPEncoderLayer,
  CLIPEncoder,
  type CLIPEncoderOutput,
} from './clip_encoder.js';
export { withoutPositionIds, type FromPretrainedOptions } from './clip_loading.js';
export {
  CLIPTextModel,
  CLIPTextModelWithProjection,
  CLIPTextTransformer,
  CLIPTextEmbeddings,
  type CLIPTextForwardOptions,
  type CLIPTextOutput,
  type CLIPTextModelWithProjectionOutput,
} from './clip_text_model.js';
export {
  CLIPVisionModel,
  CLIPVisionModelWithProjection,
  CLIPVisionTransformer,
  CLIPVisionEmbeddings,
  patchTokensOf,
  type CLIPVisionForwardOptions,
  type CLIPVisionOutput,
  type CLIPVisionWithProjectionOutput,
  type PatchTokens,
} from './clip_vision_model.js';
