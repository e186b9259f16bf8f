// What CLIPTextModel and the vision models share when loading transformers folders.
import { Tensor } from '../../engine/tensor.js';
import type { DType } from '../../engine/dtype.js';

export interface FromPretrainedOptions {
  /** Weight file variant, e.g. 'fp16' for model.fp16.safetensors (falls back to the default). */
  variant?: string;
  /** Convert floating-point weights after loading, e.g. 'float16'. */
  dtype?: DType;
  /** Move the weights after loading, e.g. 'cuda'. */
  device?: string;
}

/**
 * Drops `*.embeddings.position_ids`. transformers < 4.31 saved this int64 buffer (SD 1.5's and
 * CLIP-L's files have it); newer files do not. p3s always uses positions 0..L-1, which also
 * sidesteps the corrupted position_ids some merged SD checkpoints carry.
 */
export function withoutPositionIds(
  state: Map<string, Tensor> | Record<string, Tensor>,
): Map<string, Tensor> {
  const entries = state instanceof Map ? [...state] : Object.entries(state);
  return new Map(entries.filter(([k]) => !/(^|\.)embeddings\.position_ids$/.test(k)));
}

/** Keys of a combined CLIPModel file (openai/clip-vit-large-patch14) outside the text tower. */
export const NOT_TEXT: RegExp[] = [/^vision_model\./, /^visual_projection\./, /^logit_scale$/];
/** Keys of a combined CLIPModel file outside the vision tower. */
export const NOT_VISION: RegExp[] = [/^text_model\./, /^text_projection\./, /^logit_scale$/];
