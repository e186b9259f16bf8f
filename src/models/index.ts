// The models: CLIP text and vision towers, Stable Diffusion's U-Net and VAE, and the loading
// and saving helpers for diffusers/transformers folders.
export * from './clip/index.js';
export * from './unet/index.js';
export * from './vae/index.js';
export * from './vit/index.js';
export * from './loading.js';
export * from './save_pretrained.js';
export * from './precision.js';
// Each model package names its loader options FromPretrainedOptions. Here each has a prefixed
// name; the plain name is the U-Net's { variant, dtype }, which every loader accepts.
export type { FromPretrainedOptions } from './unet/index.js';
export type { FromPretrainedOptions as CLIPFromPretrainedOptions } from './clip/index.js';
export type { FromPretrainedOptions as UNetFromPretrainedOptions } from './unet/index.js';
export type { FromPretrainedOptions as AutoencoderKLFromPretrainedOptions } from './vae/index.js';
