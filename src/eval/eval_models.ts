// The encoders DreamBench's metrics compare in: CLIP's projected image and text embeddings and
// DINO's CLS token. Which folders hold them (defaults included), loading them with a clear
// refusal of a tower without its projection, and embedding images and prompts in batches with
// every intermediate tensor freed.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tensor } from '../engine/creation.js';
import { noGrad } from '../engine/autograd.js';
import { tidy } from '../engine/scope.js';
import type { RgbImage } from '../io/image.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { findWeightFile, readJson } from '../models/loading.js';
import { CLIPVisionModelWithProjection } from '../models/clip/clip_vision_model.js';
import { CLIPTextModelWithProjection } from '../models/clip/clip_text_model.js';
import { ViTImageProcessor, ViTModel } from '../models/vit/index.js';
import { CLIPTokenizer } from '../tokenizers/clip_tokenizer.js';
import { clipProcessorFor } from '../p3s/references.js';
import { EvalInputError } from './eval_inputs.js';
import { embeddingRows } from './metrics.js';
import type { EvalSettings } from './eval_settings.js';

/** The shipped toy models (models/toy; the same folder as the demo's SHIPPED_TOY_MODELS). */
export const TOY_MODELS = fileURLToPath(new URL('../../../models/toy', import.meta.url));

/** The model folders an evaluation reads, absolute. */
export interface EvalModelFolders {
  clipImage: string;
  clipText: string;
  tokenizer: string;
  /** null: DINO is not measured. */
  dino: string | null;
}

/** A transformers CLIPModel folder (openai/clip-vit-large-patch14): one config, both towers. */
function holdsBothTowers(folder: string): boolean {
  try {
    const config = readJson(join(folder, 'config.json'));
    return config.text_config != null || config.text_config_dict != null;
  } catch {
    return false;
  }
}

/** The settings' folders, the unset ones by the rules --help states. */
export function evalModelFolders(s: EvalSettings): EvalModelFolders {
  const clipImage = resolve(s.clipModel ?? join(TOY_MODELS, 'image_encoder'));
  const clipText = resolve(
    s.clipTextModel ??
      (holdsBothTowers(clipImage)
        ? clipImage
        : besideOrRefuse(clipImage, 'text_encoder', 'a CLIP text tower', '--clip-text')),
  );
  const tokenizer = resolve(
    s.tokenizer ??
      (existsSync(join(clipText, 'vocab.json'))
        ? clipText
        : besideOrRefuse(clipText, 'tokenizer', 'a CLIP tokenizer', '--tokenizer')),
  );
  const dino = s.dinoModel === null ? null : resolve(s.dinoModel);
  return { clipImage, clipText, tokenizer, dino };
}

/** The default folder next to `folder` (models/toy/text_encoder beside image_encoder), or why not. */
function besideOrRefuse(folder: string, name: string, what: string, flag: string): string {
  const beside = join(dirname(folder), name);
  if (existsSync(beside)) return beside;
  throw new EvalInputError(
    `${folder} holds no ${what} and there is no ${name}/ next to it (${beside}): give ${flag} <folder>`,
  );
}

/**
 * Refuses a folder whose weights lack the projection the metric compares in (an SD 1.5
 * text_encoder/, a CLIPVisionModel), before loading it.
 */
function requireProjection(folder: string, key: string, needed: string): void {
  const keys = SafetensorsFile.open(findWeightFile(folder)).keys();
  if (!keys.includes(key))
    throw new EvalInputError(
      `${folder} has no ${key}: ${needed} (an SD 1.5 text_encoder/ or a CLIPVisionModel folder lacks it; pass a transformers CLIP folder such as openai/clip-vit-large-patch14)`,
    );
}

/** Something that turns images into one embedding row each. */
export interface ImageEncoder {
  embed(images: readonly RgbImage[]): number[][];
  dispose(): void;
}

/** A loaded CLIP image tower with its projection, and its images' embeddings. */
export interface ClipImageTower extends ImageEncoder {
  model: CLIPVisionModelWithProjection;
}

/** CLIP-I / CLIP-T's image side: CLIPVisionModelWithProjection imageEmbeds, not normalised. */
export function clipImageEncoder(folder: string): ClipImageTower {
  requireProjection(
    folder,
    'visual_projection.weight',
    "CLIP-I compares CLIPVisionModelWithProjection's projected image embeddings",
  );
  const model = CLIPVisionModelWithProjection.fromPretrained(folder);
  const processor = clipProcessorFor(folder, model);
  return {
    model,
    embed: (images) =>
      noGrad(() =>
        tidy(() => embeddingRows(model.forward(processor.preprocess(images)).imageEmbeds)),
      ),
    dispose: () => model.dispose(),
  };
}

/** DINO's image side: ViTModel's CLS token after the final layernorm (clsEmbeddings). */
export function dinoEncoder(folder: string): ImageEncoder {
  const model = ViTModel.fromPretrained(folder);
  const processor = existsSync(join(folder, 'preprocessor_config.json'))
    ? ViTImageProcessor.fromPretrained(folder)
    : new ViTImageProcessor({ size: model.config.image_size });
  return {
    embed: (images) =>
      noGrad(() => tidy(() => embeddingRows(model.clsEmbeddings(processor.preprocess(images))))),
    dispose: () => model.dispose(),
  };
}

/** CLIP-T's text side: CLIPTextModelWithProjection textEmbeds of each prompt. */
export interface TextEncoder {
  embed(prompts: readonly string[]): number[][];
  dispose(): void;
}

export function clipTextEncoder(folder: string, tokenizerFolder: string): TextEncoder {
  requireProjection(
    folder,
    'text_projection.weight',
    "CLIP-T compares CLIPTextModelWithProjection's projected text embeddings",
  );
  const tokenizer = CLIPTokenizer.fromPretrained(tokenizerFolder);
  const model = CLIPTextModelWithProjection.fromPretrained(folder);
  const maxLength = Math.min(tokenizer.modelMaxLength, model.config.max_position_embeddings);
  return {
    embed: (prompts) =>
      noGrad(() =>
        tidy(() => {
          // Padded as SD 1.5 pads; the pooled output is read at the end token, before padding.
          const { inputIds } = tokenizer.call(prompts, {
            padding: 'max_length',
            truncation: true,
            maxLength,
          });
          const ids = tensor(inputIds.flat(), [inputIds.length, maxLength], { dtype: 'int64' });
          return embeddingRows(model.forward(ids).textEmbeds);
        }),
      ),
    dispose: () => model.dispose(),
  };
}
