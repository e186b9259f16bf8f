// CLIP patch tokens for Eq. (1). The photo is resized to the tower's square input as a whole
// (no centre crop), so the patch grid covers every pixel a user can click.
import { resizeImage, type RgbImage } from '../../io/image.js';
import { CLIPImageProcessor } from '../../models/clip/image_processing.js';
import type { CLIPVisionModel } from '../../models/clip/clip_vision_model.js';
import { inferenceMode } from '../../engine/autograd.js';
import { tidy } from '../../engine/scope.js';
import type { PatchFeatures } from './patch_similarity.js';
import type { PatchFeatureExtractor } from './rngr.js';

export interface ClipPatchOptions {
  /** Hidden state to use: -1 = last (default), -2 = penultimate, i = after layer i. */
  layer?: number;
  /** Normalisation constants (default: CLIP's). */
  processor?: CLIPImageProcessor;
}

export class ClipPatchExtractor implements PatchFeatureExtractor {
  private readonly normalizer: CLIPImageProcessor;
  readonly layer: number;

  constructor(
    readonly model: CLIPVisionModel,
    options: ClipPatchOptions = {},
  ) {
    this.layer = options.layer ?? -1;
    const p = options.processor;
    this.normalizer = new CLIPImageProcessor({
      do_resize: false,
      do_center_crop: false,
      image_mean: p ? [...p.imageMean] : undefined,
      image_std: p ? [...p.imageStd] : undefined,
    });
  }

  extract(image: RgbImage): PatchFeatures {
    const size = this.model.config.image_size;
    const square = resizeImage(image, size, size, 'bicubic');
    const tokens = inferenceMode(() =>
      tidy(() => {
        const pixels = this.normalizer.preprocess([square]); // (1, 3, S, S)
        const { tokens } = this.model.patchTokens(pixels, this.layer); // (1, N, C)
        return tokens.select(0, 0).float(); // (N, C)
      }),
    );
    const [gridH, gridW] = this.model.gridSize;
    return { tokens, gridH, gridW, imageWidth: image.width, imageHeight: image.height };
  }
}
