// Stable Diffusion's VAE (diffusers' AutoencoderKL).
export {
  AutoencoderKL,
  VAE_KEY_RENAMES,
  type AutoencoderKLConfig,
  type FromPretrainedOptions,
} from './autoencoder_kl.js';
export { Encoder, Decoder, DiagonalGaussianDistribution, type VaeHalfOptions } from './vae.js';
export { UNetMidBlock2D, type UNetMidBlock2DOptions } from './unet_mid_block_2d.js';
export { DownEncoderBlock2D, UpDecoderBlock2D, type VaeBlockOptions } from './vae_blocks.js';
