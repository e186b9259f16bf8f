// The embedded default's model sizes: Stable Diffusion 1.5's and CLIP's architectures, shrunk to
// the toy world's 64-px scenes so that they train on two CPU cores in about an hour (DESIGN.md's
// budget: a 32/64/64 U-Net on 16×16×4 latents is about 1 s per batch-32 step). The keys are
// diffusers' and transformers' own; the tiny-model writer fills in every other key.
import {
  SD15_SCHEDULER_CONFIG,
  TINY_TEXT_CONFIG,
  TINY_UNET_CONFIG,
  TINY_VAE_CONFIG,
  TINY_VISION_CONFIG,
} from '../testing/tiny_models.js';

/** Scene side in pixels: the toy world's default and every toy model's input size. */
export const TOY_IMAGE_SIZE = 64;

/** VAE: three blocks (two downsamplings), 64 px -> 16×16×4 latents; narrow at full resolution. */
export const TOY_VAE_CONFIG: Readonly<Record<string, unknown>> = Object.freeze({
  ...TINY_VAE_CONFIG,
  block_out_channels: [16, 32, 64],
  down_block_types: Array<string>(3).fill('DownEncoderBlock2D'),
  up_block_types: Array<string>(3).fill('UpDecoderBlock2D'),
  layers_per_block: 1,
  norm_num_groups: 16,
  sample_size: TOY_IMAGE_SIZE,
});

/** Text tower: width 64, 4 layers, CLIP's 49408-token vocabulary and 77 positions (SD's context). */
export const TOY_TEXT_CONFIG: Readonly<Record<string, unknown>> = Object.freeze({
  ...TINY_TEXT_CONFIG,
  architectures: ['CLIPTextModelWithProjection'],
  hidden_size: 64,
  intermediate_size: 256,
  num_attention_heads: 4,
  num_hidden_layers: 4,
  projection_dim: 64,
});

/** Vision tower: 64 px in patches of 8 (an 8×8 grid), width 64, 4 layers. */
export const TOY_VISION_CONFIG: Readonly<Record<string, unknown>> = Object.freeze({
  ...TINY_VISION_CONFIG,
  hidden_size: 64,
  image_size: TOY_IMAGE_SIZE,
  intermediate_size: 256,
  num_attention_heads: 4,
  num_hidden_layers: 4,
  patch_size: 8,
  projection_dim: 64,
});

/** U-Net: SD 1.5's block types on three levels (16, 8, 4), one ResNet per level, context width 64. */
export const TOY_UNET_CONFIG: Readonly<Record<string, unknown>> = Object.freeze({
  ...TINY_UNET_CONFIG,
  attention_head_dim: 4,
  block_out_channels: [32, 64, 64],
  cross_attention_dim: 64,
  down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
  layers_per_block: 1,
  norm_num_groups: 16,
  sample_size: TOY_IMAGE_SIZE / 4,
});

/**
 * The U-Net's noise schedules, as the model folder's scheduler/ config. sd15: SD 1.5's scaled-
 * linear β with ε-prediction; its last timestep keeps √ᾱ_T ≈ 0.068 of the image, which on a 16×16
 * latent is enough for the U-Net to read an object's place and outline from x_T, so that sampling
 * from pure noise takes its silhouette from the noise (docs/toy.md). zero-snr-v: the same β
 * rescaled to zero terminal SNR with v-prediction and trailing timesteps (Lin et al. 2024), as
 * diffusers' DDIMScheduler reads them: x_T holds nothing of the image, so the text must decide.
 */
export const TOY_NOISE_SCHEDULES = {
  sd15: SD15_SCHEDULER_CONFIG,
  'zero-snr-v': Object.freeze({
    ...SD15_SCHEDULER_CONFIG,
    _class_name: 'DDIMScheduler',
    prediction_type: 'v_prediction',
    rescale_betas_zero_snr: true,
    timestep_spacing: 'trailing',
  }),
} as const satisfies Record<string, Readonly<Record<string, unknown>>>;
export type ToyNoiseSchedule = keyof typeof TOY_NOISE_SCHEDULES;
