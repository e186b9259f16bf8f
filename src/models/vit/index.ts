// transformers' ViTModel and ViTImageProcessor (DINO ViT-S/16: the DINO score's image encoder).
export { vitConfig, type ViTConfig } from './vit_config.js';
export {
  ViTModel,
  ViTEmbeddings,
  ViTPatchEmbeddings,
  ViTSelfAttention,
  ViTSelfOutput,
  ViTAttention,
  ViTIntermediate,
  ViTOutput,
  ViTLayer,
  ViTEncoder,
  ViTPooler,
  type ViTForwardOptions,
  type ViTModelOutput,
  type ViTModelOptions,
  type ViTEncoderOutput,
  type ViTFromPretrainedOptions,
} from './vit_model.js';
export {
  ViTImageProcessor,
  IMAGENET_STANDARD_MEAN,
  IMAGENET_STANDARD_STD,
  IMAGENET_DEFAULT_MEAN,
  IMAGENET_DEFAULT_STD,
  type ViTImageProcessorConfig,
} from './vit_image_processor.js';
