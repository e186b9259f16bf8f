// Writes the trained toy models as a diffusers Stable Diffusion folder — model_index.json,
// unet/, vae/, text_encoder/, tokenizer/, scheduler/, feature_extractor/, image_encoder/ — with
// fp16 weights, the same file names, configs and state-dict keys as a real SD 1.5 checkout, so
// everything that loads SD 1.5 loads the toy models unchanged.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Module } from '../../src/nn/module.js';
import type { CLIPTextModelWithProjection } from '../../src/models/clip/clip_text_model.js';
import type { CLIPVisionModelWithProjection } from '../../src/models/clip/clip_vision_model.js';
import {
  diffusersConfig,
  transformersConfig,
  clipPreprocessorConfig,
  positionIds,
  saveWeights,
  writeJson,
  writeModelIndex,
  writeTokenizer,
} from '../../src/models/save_pretrained.js';
import {
  TOY_IMAGE_SIZE,
  TOY_TEXT_CONFIG,
  TOY_NOISE_SCHEDULES,
  TOY_UNET_CONFIG,
  type ToyNoiseSchedule,
  TOY_VAE_CONFIG,
  TOY_VISION_CONFIG,
} from './configs.js';

const FP16 = { seed: 0, dtype: 'float16' as const, perturb: false };

function writeWeights(module: Module, path: string, extra: Parameters<typeof saveWeights>[3] = []) {
  saveWeights(module, path, FP16, extra);
}

/** vae/: the AutoencoderKL with its measured latent scaling factor. */
export function exportToyVae(module: Module, root: string, scalingFactor: number): void {
  const folder = join(root, 'vae');
  mkdirSync(folder, { recursive: true });
  writeWeights(module, join(folder, 'diffusion_pytorch_model.safetensors'));
  writeJson(
    join(folder, 'config.json'),
    diffusersConfig('AutoencoderKL', { ...TOY_VAE_CONFIG, scaling_factor: scalingFactor }),
  );
}

/** unet/: the UNet2DConditionModel. */
export function exportToyUNet(
  module: Module,
  root: string,
  config: Readonly<Record<string, unknown>> = TOY_UNET_CONFIG,
): void {
  const folder = join(root, 'unet');
  mkdirSync(folder, { recursive: true });
  writeWeights(module, join(folder, 'diffusion_pytorch_model.safetensors'));
  writeJson(join(folder, 'config.json'), diffusersConfig('UNet2DConditionModel', { ...config }));
}

/**
 * text_encoder/ (CLIPTextModelWithProjection: SD's text encoder plus the contrastive
 * projection), image_encoder/ (CLIPVisionModelWithProjection, diffusers' IP-Adapter folder
 * name), tokenizer/ (CLIP's BPE files copied from `tokenizerSource`) and feature_extractor/.
 */
export function exportToyClip(
  text: CLIPTextModelWithProjection,
  vision: CLIPVisionModelWithProjection,
  root: string,
  tokenizerSource: string,
): void {
  exportToyTextEncoder(text, root);

  const visionFolder = join(root, 'image_encoder');
  mkdirSync(visionFolder, { recursive: true });
  const { image_size: size, patch_size: patch } = vision.config;
  writeWeights(vision, join(visionFolder, 'model.safetensors'), [
    positionIds('vision_model.embeddings.position_ids', (size / patch) ** 2 + 1),
  ]);
  writeJson(join(visionFolder, 'config.json'), transformersConfig(TOY_VISION_CONFIG, 'float16'));
  writeJson(join(visionFolder, 'preprocessor_config.json'), clipPreprocessorConfig(TOY_IMAGE_SIZE));

  writeTokenizer(join(root, 'tokenizer'), tokenizerSource);
  mkdirSync(join(root, 'feature_extractor'), { recursive: true });
  writeJson(
    join(root, 'feature_extractor', 'preprocessor_config.json'),
    clipPreprocessorConfig(TOY_IMAGE_SIZE),
  );
}

/** text_encoder/: the text tower, fp16, transformers layout. */
export function exportToyTextEncoder(text: CLIPTextModelWithProjection, root: string): void {
  const textFolder = join(root, 'text_encoder');
  mkdirSync(textFolder, { recursive: true });
  writeWeights(text, join(textFolder, 'model.safetensors'), [
    positionIds('text_model.embeddings.position_ids', text.config.max_position_embeddings),
  ]);
  writeJson(join(textFolder, 'config.json'), transformersConfig(TOY_TEXT_CONFIG, 'float16'));
}

/** scheduler/ (the U-Net's noise schedule, configs.ts) and model_index.json. */
export function exportToyPipelineIndex(root: string, schedule: ToyNoiseSchedule): void {
  const config = TOY_NOISE_SCHEDULES[schedule];
  mkdirSync(join(root, 'scheduler'), { recursive: true });
  writeJson(join(root, 'scheduler', 'scheduler_config.json'), config);
  writeModelIndex(root, {
    textEncoder: 'CLIPTextModelWithProjection',
    imageEncoder: 'CLIPVisionModelWithProjection',
    scheduler: String(config._class_name),
  });
}

/** The licence of CLIP's BPE vocabulary (github.com/openai/CLIP), shipped with tokenizer/. */
export const CLIP_TOKENIZER_LICENSE = `The files vocab.json and merges.txt in this folder are CLIP's byte-pair-encoding vocabulary
(bpe_simple_vocab_16e6.txt.gz, https://github.com/openai/CLIP), in the layout of huggingface
transformers' CLIPTokenizer. They are distributed under the following licence:

MIT License

Copyright (c) 2021 OpenAI

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
`;
