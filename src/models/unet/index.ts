// Stable Diffusion 1.x's U-Net, as diffusers' UNet2DConditionModel.
//
//   const unet = UNet2DConditionModel.fromPretrained('sd15/unet');
//   const eps = tidy(() => unet.forward(latents, t, textEmbeddings));
//
// P3S's hooks, none of which changes the model code:
//   - Cross-attention maps (Eq. 11–13): put `new AttnCaptureProcessor(path, store)` on the
//     chosen layers of `unet.attnProcessors()` and pass the map to `unet.setAttnProcessor()`;
//     `store` then holds (B, heads, HW, 77) per layer path after each forward.
//   - Condition injection (Eq. 7–8): a processor on the self-attention layers ("…attn1") that
//     reads this call's features from the call, as diffusers' processors read
//     cross_attention_kwargs. Name the entry once, pass it with the call, read it by key:
//       const FEATURES = new AttentionContextKey<ReadonlyMap<string, Tensor>>('features');
//       unet.forward(x, t, c, { attentionContext: FEATURES.entry(featuresByBlockPath) });
//       // in the processor: FEATURES.read(call)?.get(blockPath)
//     P3S's own is src/p3s/adapter/injection.ts; `ExtraKVProcessor` is the generic form (its
//     source receives the call). Nothing is stored on the model, so a call without the option
//     injects nothing.
//   - The trainable copy's features: `forward(x, t, c, { onTransformerBlock: (path, s) => … })`
//     sees every transformer block's input, normed input (what attn1 receives) and output.
export {
  UNet2DConditionModel,
  resolveUNetConfig,
  type UNet2DConditionConfig,
  type UNetForwardOptions,
  type FromPretrainedOptions,
  type DownBlockType,
  type UpBlockType,
} from './unet_2d_condition.js';
export {
  CrossAttnDownBlock2D,
  DownBlock2D,
  UNetMidBlock2DCrossAttn,
  UpBlock2D,
  CrossAttnUpBlock2D,
  type DownBlockOutput,
} from './unet_2d_blocks.js';
export {
  Transformer2DModel,
  BasicTransformerBlock,
  FeedForward,
  GEGLU,
  type TransformerBlockStates,
  type TransformerBlockHook,
  type ForwardCall,
} from './transformer_2d.js';
export {
  Attention,
  AttentionContextKey,
  AttnProcessor,
  AttnCaptureProcessor,
  ExtraKVProcessor,
  type AttentionCall,
  type AttentionContext,
  type AttentionProcessor,
  type ExtraKV,
  type ExtraKVSource,
} from '../attention_processor.js';
