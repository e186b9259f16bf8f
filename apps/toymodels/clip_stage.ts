// Stage 2 of the toy models: a tiny CLIP (text and vision towers) trained contrastively on
// (scene, caption) pairs with CLIP's symmetric InfoNCE loss (Radford et al. 2021): within a batch,
// each image must pick its own caption and each caption its own image, logits scaled by a
// learned temperature. The text tower then serves as the U-Net's text encoder, the vision tower
// as P3S's image encoder and the RNGR patch features. With `hardNegatives` > 0 each image also
// has to rank its caption above captions that change one of its attributes (as NegCLIP,
// Yuksekgonul et al. 2023): plain in-batch negatives rarely differ in a single word, so a CLIP
// trained on them alone tells "a red star" from "a blue star" but hardly from "a red ring".
import { arange, full } from '../../src/engine/creation.js';
import { Generator, manualSeed } from '../../src/engine/random.js';
import type { Tensor } from '../../src/engine/tensor.js';
import { crossEntropy } from '../../src/nn/functional.js';
import { Module } from '../../src/nn/module.js';
import { CLIPImageProcessor } from '../../src/models/clip/image_processing.js';
import { CLIPTextModelWithProjection } from '../../src/models/clip/clip_text_model.js';
import { CLIPVisionModelWithProjection } from '../../src/models/clip/clip_vision_model.js';
import { AdamW } from '../../src/optim/adam.js';
import type { CLIPTokenizer } from '../../src/tokenizers/clip_tokenizer.js';
import { TOY_IMAGE_SIZE, TOY_TEXT_CONFIG, TOY_VISION_CONFIG } from './configs.js';
import { alteredCaption } from '../../src/toyworld/altered_captions.js';
import { sceneImage, scenes, tokenIds } from './data.js';
import { trainStage, type StageResult, type StageSettings } from './stage.js';

/** CLIP's preprocessing at the toy size (resize and crop are the identity on 64-px scenes). */
export const toyClipProcessor = (): CLIPImageProcessor =>
  new CLIPImageProcessor({
    size: { shortest_edge: TOY_IMAGE_SIZE },
    crop_size: { height: TOY_IMAGE_SIZE, width: TOY_IMAGE_SIZE },
  });

/** Both towers and the temperature, as transformers' CLIPModel holds them. */
export class ToyClip extends Module {
  readonly text: CLIPTextModelWithProjection;
  readonly vision: CLIPVisionModelWithProjection;
  readonly logitScale: Tensor;
  constructor() {
    super();
    this.text = this.registerModule('text', new CLIPTextModelWithProjection(TOY_TEXT_CONFIG));
    this.vision = this.registerModule(
      'vision',
      new CLIPVisionModelWithProjection(TOY_VISION_CONFIG),
    );
    // CLIP's initial temperature 0.07, stored as log(1 / T).
    this.logitScale = this.registerParameter('logit_scale', full([], Math.log(1 / 0.07)))!;
  }
}

/** Unit-length embeddings (B, D). */
export function normalizeRows(x: Tensor): Tensor {
  return x.div(x.square().sum(-1, true).sqrt().clamp(1e-12));
}

export interface ClipStageOptions extends StageSettings {
  /** Altered captions per image added as extra image→text negatives (0: plain CLIP). */
  hardNegatives: number;
}

export const CLIP_STAGE_DEFAULTS = { steps: 1500, batchSize: 64, lr: 1e-3, hardNegatives: 0 };

/** Scene indices of the CLIP stage: after the VAE's, so the two stages see different scenes. */
const CLIP_FIRST_SCENE = 10_000_000;

export async function trainToyClip(
  options: ClipStageOptions,
  tokenizer: CLIPTokenizer,
): Promise<{ clip: ToyClip; result: StageResult }> {
  manualSeed(options.seed);
  const clip = new ToyClip();
  const optimizer = new AdamW(clip.parameters(), { lr: options.lr, weightDecay: 0.1 });
  const generator = new Generator(options.seed);
  const processor = toyClipProcessor();
  const b = options.batchSize;
  const k = options.hardNegatives;
  const { model, result } = await trainStage({
    name: 'clip',
    settings: options,
    identity: { text: TOY_TEXT_CONFIG, vision: TOY_VISION_CONFIG },
    // checkpoints from before --clip-hard-negatives existed are the k = 0 recipe
    olderDefaults: { hardNegatives: 0 },
    warmup: 100,
    model: clip,
    optimizer,
    generator,
    loss(step) {
      const batch = scenes('train', CLIP_FIRST_SCENE + step * b, b);
      const pixels = processor.preprocess(batch.map(sceneImage));
      // Variants cycle through colour, shape, pattern and background, new values every step.
      const altered = batch.flatMap((s) =>
        Array.from({ length: k }, (_, j) => alteredCaption(s, step * k + j)),
      );
      const ids = tokenIds(tokenizer, [...batch.map((s) => s.caption), ...altered]);
      const image = normalizeRows(clip.vision.forward(pixels).imageEmbeds);
      const text = normalizeRows(clip.text.forward(ids).textEmbeds);
      // CLIP clamps the learned scale at 100.
      const scale = clip.logitScale.exp().clamp(null, 100);
      // (B, B + B·k): true captions first, then every image's altered ones.
      const logits = image.matmul(text.transpose(0, 1)).mul(scale);
      const labels = arange(0, b, 1, { dtype: 'int64' });
      // Text→image stays over the B true captions: an altered caption has no image to pick.
      return crossEntropy(logits, labels)
        .add(crossEntropy(logits.slice(1, 0, b).transpose(0, 1), labels))
        .mul(0.5);
    },
  });
  return { clip: model, result };
}
