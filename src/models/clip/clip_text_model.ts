// CLIP's text transformer as transformers' CLIPTextModel (Stable Diffusion 1.5's text encoder)
// and CLIPTextModelWithProjection (CLIP-T scores), loading the transformers layout unchanged:
// text_model.embeddings.{token,position}_embedding, text_model.encoder.layers.N.*,
// text_model.final_layer_norm, text_projection.
import { Tensor } from '../../engine/tensor.js';
import type { DType } from '../../engine/dtype.js';
import * as ops from '../../engine/ops.generated.js';
import { Module, type LoadResult } from '../../nn/module.js';
import { Embedding, LayerNorm, Linear } from '../../nn/layers.js';
import * as F from '../../nn/functional.js';
import { loadPretrained, readConfig } from '../loading.js';
import { clipTextConfig, type CLIPTextConfig } from './clip_config.js';
import { NOT_TEXT, withoutPositionIds, type FromPretrainedOptions } from './clip_loading.js';
import { CLIPEncoder } from './clip_encoder.js';

/** The most negative finite value of each float dtype: blocks attention without -inf NaNs. */
const DTYPE_MIN: Partial<Record<DType, number>> = {
  float16: -65504,
  bfloat16: -3.3895313892515355e38,
  float32: -3.4028234663852886e38,
  float64: -1.7976931348623157e308,
};

export interface CLIPTextForwardOptions {
  /** (B, L): 1 where a token may be attended to, 0 for padding. SD 1.5 passes none. */
  attentionMask?: Tensor | null;
  /** Also return every hidden state: [embeddings, after layer 1, ..., after layer N]. */
  outputHiddenStates?: boolean;
  /**
   * Layers skipped at the end, as diffusers' `clip_skip`: 0 (default) = the last layer's output,
   * 1 = the penultimate layer's (what A1111 and most SD UIs call "clip skip 2"), and so on.
   * The layers after the chosen one are not run unless outputHiddenStates asks for all.
   */
  clipSkip?: number;
  /**
   * Apply final_layer_norm to the chosen layer's output (default true: what diffusers and SD
   * UIs feed the U-Net with clip skip too). false returns the raw layer output, equal to
   * hiddenStates[N - clipSkip].
   */
  finalLayerNorm?: boolean;
}

export interface CLIPTextOutput {
  /** (B, L, C): the chosen layer's output, after final_layer_norm unless turned off. */
  lastHiddenState: Tensor;
  /** (B, C): lastHiddenState at each sequence's first end-of-text token. */
  pooledOutput: Tensor;
  /** N + 1 tensors (B, L, C), none with the final layer norm, when outputHiddenStates is set. */
  hiddenStates?: Tensor[];
}

export class CLIPTextEmbeddings extends Module {
  readonly token_embedding: Embedding;
  readonly position_embedding: Embedding;

  constructor(config: CLIPTextConfig) {
    super();
    this.token_embedding = this.registerModule(
      'token_embedding',
      new Embedding(config.vocab_size, config.hidden_size),
    );
    this.position_embedding = this.registerModule(
      'position_embedding',
      new Embedding(config.max_position_embeddings, config.hidden_size),
    );
  }

  /** Rows for the ids after vocab_size (a tokenizer's added tokens); not part of the state. */
  private added: Tensor | null = null;

  /**
   * Embeddings (K, C) for ids vocab_size .. vocab_size + K − 1 — the tokens a Textual
   * Inversion or Custom Diffusion run adds — or null. Kept apart from token_embedding so the
   * checkpoint's table stays as loaded and gradients reach only these rows.
   */
  setAddedTokens(rows: Tensor | null): void {
    this.added = rows;
  }

  /** ids (B, L) -> token + position embeddings (B, L, C). */
  forward(ids: Tensor): Tensor {
    const l = ids.shape[1]!;
    const positions = this.position_embedding.weight.slice(0, 0, l); // (L, C)
    return this.tokenEmbeddings(ids).add(positions); // (B, L, C)
  }

  private tokenEmbeddings(ids: Tensor): Tensor {
    if (this.added === null) return this.token_embedding.forward(ids);
    const v = this.token_embedding.numEmbeddings;
    const base = this.token_embedding.forward(ids.clamp(null, v - 1)); // (B, L, C)
    const extra = F.embedding(this.added, ids.sub(v).clamp(0)); // (B, L, C)
    return ops.where(ids.ge(v).unsqueeze(-1), extra, base);
  }
}

export class CLIPTextTransformer extends Module {
  readonly config: CLIPTextConfig;
  readonly embeddings: CLIPTextEmbeddings;
  readonly encoder: CLIPEncoder;
  readonly final_layer_norm: LayerNorm;

  constructor(config: CLIPTextConfig) {
    super();
    this.config = config;
    this.embeddings = this.registerModule('embeddings', new CLIPTextEmbeddings(config));
    this.encoder = this.registerModule('encoder', new CLIPEncoder(config));
    this.final_layer_norm = this.registerModule(
      'final_layer_norm',
      new LayerNorm(config.hidden_size, config.layer_norm_eps),
    );
  }

  forward(inputIds: Tensor, options: CLIPTextForwardOptions = {}): CLIPTextOutput {
    const { config } = this;
    if (inputIds.ndim !== 2 || inputIds.isFloatingPoint) {
      throw new Error(
        `Expected integer input ids of shape (B, L) but received ${inputIds.dtype} [${inputIds.shape.join(', ')}]`,
      );
    }
    const [b, l] = inputIds.shape as [number, number];
    if (l > config.max_position_embeddings) {
      throw new RangeError(
        `Input ids have ${l} tokens but the model takes at most ${config.max_position_embeddings} (max_position_embeddings)`,
      );
    }
    const n = config.num_hidden_layers;
    const skip = options.clipSkip ?? 0;
    if (!Number.isInteger(skip) || skip < 0 || skip >= n) {
      throw new RangeError(`Expected clipSkip in [0, ${n - 1}] but received ${skip}`);
    }
    const all = options.outputHiddenStates ?? false;

    const x = this.embeddings.forward(inputIds); // (B, L, C)
    const mask = this.attentionMask(x, b, l, options.attentionMask ?? null); // (B|1, 1, L, L)
    const enc = this.encoder.forward(x, {
      mask,
      outputHiddenStates: all,
      numLayers: all ? n : n - skip,
    });
    mask.dispose();
    const chosen = all ? enc.hiddenStates![n - skip]! : enc.lastHiddenState;
    if (!all) x.dispose();
    let last = chosen;
    if (options.finalLayerNorm ?? true) {
      last = this.final_layer_norm.forward(chosen);
      if (!all) chosen.dispose();
    } else if (all) {
      last = chosen.clone(); // its own tensor, so disposing one output leaves the other intact
    }
    const pooledOutput = this.pool(last, inputIds);
    return all
      ? { lastHiddenState: last, pooledOutput, hiddenStates: enc.hiddenStates! }
      : { lastHiddenState: last, pooledOutput };
  }

  /** Causal mask, plus the padding mask if given, as additive (B|1, 1, L, L). */
  private attentionMask(x: Tensor, b: number, l: number, padding: Tensor | null): Tensor {
    const min = DTYPE_MIN[x.dtype];
    if (min === undefined)
      throw new Error(`CLIP text attention needs a float dtype, not ${x.dtype}`);
    if (padding !== null && padding.shape.join(',') !== `${b},${l}`) {
      throw new Error(
        `Expected an attention mask of shape [${b}, ${l}] but received [${padding.shape.join(', ')}]`,
      );
    }
    const full = ops.full([l, l], min, x.dtype, null, x.device);
    const upper = ops.triu(full, 1); // min above the diagonal, 0 elsewhere
    const causal = upper.view(1, 1, l, l);
    full.dispose();
    upper.dispose();
    if (padding === null) return causal;
    const blocked = padding.eq(0).view(b, 1, 1, l);
    const zeros = ops.zeros([b, 1, 1, l], x.dtype, null, x.device);
    const pad = ops.maskedFill(zeros, blocked, min);
    // minimum, not a sum: min + min would overflow to -inf and a fully padded row to NaN.
    const out = ops.minimum(causal, pad);
    for (const t of [blocked, zeros, pad, causal]) t.dispose();
    return out;
  }

  /**
   * (B, L, C) -> (B, C) at the first end-of-text token. Like transformers: with the legacy
   * eos_token_id 2 (SD 1.5's config) that is the argmax of the ids (49407 is the largest id);
   * otherwise the first eos_token_id.
   */
  private pool(h: Tensor, ids: Tensor): Tensor {
    const eos = this.config.eos_token_id;
    let at: Tensor; // (B,)
    if (eos === 2) {
      at = ids.argmax(-1);
    } else {
      const isEos = ids.eq(eos);
      const asInt = isEos.to('int32');
      at = asInt.argmax(-1);
      isEos.dispose();
      asInt.dispose();
    }
    const rows = ops.arange(0, ids.shape[0]!, 1, 'int64', null, h.device);
    const atDevice = at.device === h.device ? at : at.to(h.device);
    const out = ops.index(h, [rows, atDevice]); // (B, C)
    for (const t of new Set([rows, at, atDevice])) t.dispose();
    return out;
  }
}

/**
 * transformers' CLIPTextModel. The file's int64 `text_model.embeddings.position_ids` buffer
 * (SD 1.5's file has it) is accepted and ignored, by fromPretrained and loadStateDict alike:
 * positions are always 0..L-1 (see withoutPositionIds).
 */
export class CLIPTextModel extends Module {
  readonly config: CLIPTextConfig;
  readonly text_model: CLIPTextTransformer;

  /** config: a config.json object (CLIPTextConfig or a combined CLIPConfig), keys verbatim. */
  constructor(config: Partial<CLIPTextConfig> | Record<string, unknown> = {}) {
    super();
    this.config = clipTextConfig(config as Record<string, unknown>);
    this.text_model = this.registerModule('text_model', new CLIPTextTransformer(this.config));
  }

  /** Loads a transformers folder (config.json + model.safetensors), e.g. SD 1.5's text_encoder/. */
  static fromPretrained(folder: string, options: FromPretrainedOptions = {}): CLIPTextModel {
    const config = readConfig(folder);
    return loadPretrained(() => new CLIPTextModel(config), folder, options, {
      ignore: [...NOT_TEXT, /^text_projection\./],
    });
  }

  override loadStateDict(
    state: Map<string, Tensor> | Record<string, Tensor>,
    options: { strict?: boolean } = {},
  ): LoadResult {
    return super.loadStateDict(withoutPositionIds(state), options);
  }

  /** input ids (B, L) int64 (SD 1.5: L = 77, padded with 49407) -> hidden states, pooled output. */
  forward(inputIds: Tensor, options: CLIPTextForwardOptions = {}): CLIPTextOutput {
    return this.text_model.forward(inputIds, options);
  }
}

export interface CLIPTextModelWithProjectionOutput extends CLIPTextOutput {
  /** (B, projection_dim): text_projection(pooledOutput), not normalised. */
  textEmbeds: Tensor;
}

/** transformers' CLIPTextModelWithProjection: CLIPTextModel plus text_projection (no bias). */
export class CLIPTextModelWithProjection extends Module {
  readonly config: CLIPTextConfig;
  readonly text_model: CLIPTextTransformer;
  readonly text_projection: Linear;

  constructor(config: Partial<CLIPTextConfig> | Record<string, unknown> = {}) {
    super();
    this.config = clipTextConfig(config as Record<string, unknown>);
    this.text_model = this.registerModule('text_model', new CLIPTextTransformer(this.config));
    this.text_projection = this.registerModule(
      'text_projection',
      new Linear(this.config.hidden_size, this.config.projection_dim, false),
    );
  }

  static fromPretrained(
    folder: string,
    options: FromPretrainedOptions = {},
  ): CLIPTextModelWithProjection {
    const config = readConfig(folder);
    return loadPretrained(() => new CLIPTextModelWithProjection(config), folder, options, {
      ignore: NOT_TEXT,
    });
  }

  override loadStateDict(
    state: Map<string, Tensor> | Record<string, Tensor>,
    options: { strict?: boolean } = {},
  ): LoadResult {
    return super.loadStateDict(withoutPositionIds(state), options);
  }

  forward(
    inputIds: Tensor,
    options: CLIPTextForwardOptions = {},
  ): CLIPTextModelWithProjectionOutput {
    const out = this.text_model.forward(inputIds, options);
    return { ...out, textEmbeds: this.text_projection.forward(out.pooledOutput) };
  }
}
