// Training batches from the toy world. Every batch is a pure function of (split, first index,
// size), so a stage that resumes at step k sees exactly the scenes an uninterrupted run would.
import { tensor } from '../../src/engine/creation.js';
import type { Tensor } from '../../src/engine/tensor.js';
import { imagesToSignedTensor } from '../../src/io/image.js';
import type { CLIPTokenizer } from '../../src/tokenizers/clip_tokenizer.js';
import { iterateSplit, type Split } from '../../src/toyworld/dataset.js';
import { hash32, hashUnit } from '../../src/toyworld/random.js';
import { captionFor, type ObjectWords } from '../../src/toyworld/captions.js';
import {
  readingOrder,
  type Layout,
  type Scene,
  type SceneOptions,
} from '../../src/toyworld/scene.js';
import { sceneImage } from '../../src/toyworld/views.js';

/** Scenes start … start + count − 1 of a split. */
export function scenes(
  split: Split,
  start: number,
  count: number,
  options: SceneOptions = {},
): Scene[] {
  return [...iterateSplit(split, { ...options, start, count })];
}

/** How the U-Net's training scenes are drawn (apart from their seeds). */
export interface SceneMix {
  /** Where objects go (scene.ts's layouts). */
  layout: Layout;
  /** Share of scenes with two objects, in tenths; the rest have one. */
  twoObjectShare: number;
}

/** The mix before it could be set: what older U-Net checkpoints and reports ran with. */
export const DEFAULT_SCENE_MIX: SceneMix = { layout: 'free', twoObjectShare: 0.4 };

/**
 * Object counts skewed towards single objects (by default 1: 60 %, 2: 40 %): a small model learns
 * "a red star on the beach" before it learns two objects at once. Fixed per scene index.
 */
export function skewedObjectCount(
  split: Split,
  index: number,
  twoObjectShare = DEFAULT_SCENE_MIX.twoObjectShare,
): number {
  const u = hash32(index, split === 'train' ? 0x51ed : 0x4e1d) % 10;
  return u < 10 - Math.round(10 * twoObjectShare) ? 1 : 2;
}

/** Scenes with the skewed object count. */
export function skewedScenes(
  split: Split,
  start: number,
  count: number,
  mix: SceneMix = DEFAULT_SCENE_MIX,
): Scene[] {
  const out: Scene[] = [];
  for (let i = start; i < start + count; i++) {
    const objectCount = skewedObjectCount(split, i, mix.twoObjectShare);
    out.push(...scenes(split, i, 1, { objectCount, layout: mix.layout }));
  }
  return out;
}

/** Shares of objects whose colour, and independently whose pattern, a caption leaves unsaid. */
export interface UnsaidAttributes {
  colourDropout: number;
  patternDropout: number;
}

/**
 * The scene's caption with attributes left unsaid ("a star on the beach" for a red striped star),
 * fixed per scene index. A model that has only seen full captions has no drawing for "a sks
 * star": it paints the mean of every colour, which no adapter can turn into one subject's.
 */
export function trainingCaption(scene: Scene, index: number, unsaid: UnsaidAttributes): string {
  if (unsaid.colourDropout === 0 && unsaid.patternDropout === 0) return scene.caption;
  const said = (k: number, salt: number, share: number) => hashUnit(index, salt, k) >= share;
  const words = readingOrder(scene.objects).map((o, k): ObjectWords => ({
    shape: o.shape,
    ...(said(k, 0xc010, unsaid.colourDropout) ? { colour: o.colour } : {}),
    ...(said(k, 0x9a77, unsaid.patternDropout) ? { pattern: o.pattern } : {}),
  }));
  return captionFor(words, scene.background);
}

/** A scene's pixels as an image. */
export { sceneImage };

/** Scenes as a (B, 3, H, W) batch in [-1, 1]. */
export const scenesToTensor = (batch: readonly Scene[]): Tensor =>
  imagesToSignedTensor(batch.map(sceneImage));

/** Token ids (B, 77) int64, padded with 49407 as Stable Diffusion 1.5 pads. */
export function tokenIds(tokenizer: CLIPTokenizer, texts: readonly string[]): Tensor {
  const { inputIds } = tokenizer.call(texts, {
    padding: 'max_length',
    truncation: true,
    maxLength: tokenizer.modelMaxLength,
  });
  return tensor(inputIds.flat(), [inputIds.length, inputIds[0]!.length], { dtype: 'int64' });
}
