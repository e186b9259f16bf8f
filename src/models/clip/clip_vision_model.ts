// CLIP's vision transformer as transformers' CLIPVisionModel and CLIPVisionModelWithProjection
// (OpenAI CLIP ViT-L/14: P3S's patch features and CLIP-I scores), loading the transformers layout
// unchanged: vision_model.embeddings.{class_embedding, patch_embedding, position_embedding},
// vision_model.pre_layrnorm (sic), vision_model.encoder.layers.N.*, vision_model.post_layernorm,
// visual_projection.
import { Tensor } from '../../engine/tensor.js';
import { tidy } from '../../engine/scope.js';
import * as ops from '../../engine/ops.generated.js';
import { Module, type LoadResult } from '../../nn/module.js';
import { Conv2d, Embedding, LayerNorm, Linear } from '../../nn/layers.js';
import { normalParameter } from '../../nn/init.js';
import { loadPretrained, readConfig } from '../loading.js';
import { clipVisionConfig, type CLIPVisionConfig } from './clip_config.js';
import { CLIPEncoder } from './clip_encoder.js';
import { NOT_VISION, withoutPositionIds, type FromPretrainedOptions } from './clip_loading.js';

export interface CLIPVisionForwardOptions {
  /** Also return every hidden state: [embeddings after pre_layrnorm, after layer 1, ..., N]. */
  outputHiddenStates?: boolean;
}

export interface CLIPVisionOutput {
  /** (B, 1 + gridH·gridW, C): the last layer's output, before post_layernorm (as transformers). */
  lastHiddenState: Tensor;
  /** (B, C): post_layernorm of the CLS token of lastHiddenState. */
  pooledOutput: Tensor;
  /** N + 1 tensors (B, 1 + gridH·gridW, C); the last is lastHiddenState itself (one tensor). */
  hiddenStates?: Tensor[];
  /** The patch grid [gridH, gridW] (CLIP-L at 224 px: [16, 16]). */
  gridSize: [number, number];
}

export interface CLIPVisionWithProjectionOutput extends CLIPVisionOutput {
  /** (B, projection_dim): visual_projection(pooledOutput), not normalised. */
  imageEmbeds: Tensor;
}

export interface PatchTokens {
  /** (B, gridH·gridW, C), row-major over the grid: token i is at row ⌊i / gridW⌋, column i mod gridW. */
  tokens: Tensor;
  gridSize: [number, number];
}

export class CLIPVisionEmbeddings extends Module {
  readonly config: CLIPVisionConfig;
  readonly patch_embedding: Conv2d;
  readonly position_embedding: Embedding;

  constructor(config: CLIPVisionConfig) {
    super();
    this.config = config;
    const c = config.hidden_size;
    this.registerParameter('class_embedding', normalParameter([c], 1));
    this.patch_embedding = this.registerModule(
      'patch_embedding',
      new Conv2d(config.num_channels, c, config.patch_size, {
        stride: config.patch_size,
        bias: false,
      }),
    );
    const grid = config.image_size / config.patch_size;
    this.position_embedding = this.registerModule(
      'position_embedding',
      new Embedding(grid * grid + 1, c),
    );
  }

  get class_embedding(): Tensor {
    return this.param('class_embedding');
  }

  /** pixels (B, 3, H, W) -> [CLS, patches] + positions: (B, 1 + gridH·gridW, C). */
  forward(pixelValues: Tensor): Tensor {
    const { num_channels, image_size, hidden_size: c } = this.config;
    const s = pixelValues.shape;
    if (s.length !== 4 || s[1] !== num_channels || s[2] !== image_size || s[3] !== image_size) {
      throw new Error(
        `Expected pixel values of shape (B, ${num_channels}, ${image_size}, ${image_size}) (config keys num_channels, image_size) but received [${s.join(', ')}]`,
      );
    }
    const b = s[0]!;
    const weight = this.patch_embedding.weight;
    const pixels = pixelValues.dtype === weight.dtype ? pixelValues : pixelValues.to(weight.dtype);
    const patches = this.patch_embedding
      .forward(pixels) // (B, C, gridH, gridW)
      .flatten(2) // (B, C, gridH·gridW)
      .transpose(1, 2); // (B, gridH·gridW, C)
    const cls = this.class_embedding.view(1, 1, c).expand(b, 1, c); // (B, 1, C)
    const tokens = ops.cat([cls, patches], 1); // (B, 1 + gridH·gridW, C)
    return tokens.add(this.position_embedding.weight); // + (1 + gridH·gridW, C)
  }
}

export class CLIPVisionTransformer extends Module {
  readonly config: CLIPVisionConfig;
  readonly embeddings: CLIPVisionEmbeddings;
  readonly pre_layrnorm: LayerNorm;
  readonly encoder: CLIPEncoder;
  readonly post_layernorm: LayerNorm;

  constructor(config: CLIPVisionConfig) {
    super();
    this.config = config;
    const { hidden_size: c, layer_norm_eps: eps } = config;
    this.embeddings = this.registerModule('embeddings', new CLIPVisionEmbeddings(config));
    this.pre_layrnorm = this.registerModule('pre_layrnorm', new LayerNorm(c, eps));
    this.encoder = this.registerModule('encoder', new CLIPEncoder(config));
    this.post_layernorm = this.registerModule('post_layernorm', new LayerNorm(c, eps));
  }

  get gridSize(): [number, number] {
    const g = this.config.image_size / this.config.patch_size;
    return [g, g];
  }

  /** The hidden state after `numLayers` layers (0: the pre_layrnorm'd embeddings). */
  hiddenStateAt(pixelValues: Tensor, numLayers: number): Tensor {
    return tidy(() => {
      const x = this.pre_layrnorm.forward(this.embeddings.forward(pixelValues));
      return this.encoder.forward(x, { numLayers }).lastHiddenState;
    });
  }

  forward(pixelValues: Tensor, options: CLIPVisionForwardOptions = {}): CLIPVisionOutput {
    const all = options.outputHiddenStates ?? false;
    const emb = this.embeddings.forward(pixelValues);
    const x = this.pre_layrnorm.forward(emb); // (B, 1 + gridH·gridW, C)
    emb.dispose();
    const enc = this.encoder.forward(x, { outputHiddenStates: all });
    const last = enc.lastHiddenState;
    if (!all && last !== x) x.dispose();
    const cls = last.select(1, 0); // (B, C)
    const pooledOutput = this.post_layernorm.forward(cls);
    cls.dispose();
    const gridSize = this.gridSize;
    return all
      ? { lastHiddenState: last, pooledOutput, hiddenStates: enc.hiddenStates!, gridSize }
      : { lastHiddenState: last, pooledOutput, gridSize };
  }
}

/** Index of a hidden state (negative from the end) in [0, n], or a RangeError. */
function resolveLayer(layer: number, n: number): number {
  const l = layer < 0 ? n + 1 + layer : layer;
  if (!Number.isInteger(layer) || l < 0 || l > n) {
    throw new RangeError(
      `Expected a layer in [${-(n + 1)}, ${n}] (0 = embeddings, ${n} or -1 = last layer) but received ${layer}`,
    );
  }
  return l;
}

/** Drops the CLS token: (B, 1 + P, C) -> (B, P, C). */
function dropClassToken(h: Tensor): Tensor {
  return h.slice(1, 1); // (B, gridH·gridW, C)
}

/**
 * Patch tokens of one layer from a forward output: `layer` indexes hiddenStates (0 = embeddings
 * after pre_layrnorm, i = after layer i, negative from the end: -1 the last layer, -2 the
 * penultimate). Without hiddenStates only the last layer (-1) is available. No layer norm.
 */
export function patchTokensOf(output: CLIPVisionOutput, layer = -1): PatchTokens {
  const hs = output.hiddenStates;
  if (hs === undefined) {
    if (layer !== -1) {
      throw new Error(
        `Patch tokens of layer ${layer} need a forward pass with outputHiddenStates: true (only -1 is available without it)`,
      );
    }
    return { tokens: dropClassToken(output.lastHiddenState), gridSize: output.gridSize };
  }
  const l = resolveLayer(layer, hs.length - 1);
  return { tokens: dropClassToken(hs[l]!), gridSize: output.gridSize };
}

/**
 * transformers' CLIPVisionModel. The file's `vision_model.embeddings.position_ids` buffer is
 * accepted and ignored (positions are 0..P); a combined CLIPModel folder or a
 * CLIPVisionModelWithProjection folder loads too (the other keys are skipped).
 */
export class CLIPVisionModel extends Module {
  readonly config: CLIPVisionConfig;
  readonly vision_model: CLIPVisionTransformer;

  /** config: a config.json object (CLIPVisionConfig or a combined CLIPConfig), keys verbatim. */
  constructor(config: Partial<CLIPVisionConfig> | Record<string, unknown> = {}) {
    super();
    this.config = clipVisionConfig(config as Record<string, unknown>);
    this.vision_model = this.registerModule('vision_model', new CLIPVisionTransformer(this.config));
  }

  static fromPretrained(folder: string, options: FromPretrainedOptions = {}): CLIPVisionModel {
    const config = readConfig(folder);
    return loadPretrained(() => new CLIPVisionModel(config), folder, options, {
      ignore: [...NOT_VISION, /^visual_projection\./],
    });
  }

  override loadStateDict(
    state: Map<string, Tensor> | Record<string, Tensor>,
    options: { strict?: boolean } = {},
  ): LoadResult {
    return super.loadStateDict(withoutPositionIds(state), options);
  }

  get gridSize(): [number, number] {
    return this.vision_model.gridSize;
  }

  /** pixel values (B, 3, image_size, image_size), normalised as CLIPImageProcessor does. */
  forward(pixelValues: Tensor, options: CLIPVisionForwardOptions = {}): CLIPVisionOutput {
    return this.vision_model.forward(pixelValues, options);
  }

  /**
   * Per-patch features of one layer, (B, gridH·gridW, C) without the CLS token, running only
   * the layers needed. `layer` as in patchTokensOf: 0 = embeddings after pre_layrnorm, i = after
   * layer i, -1 = last, -2 = penultimate. postLayernorm applies post_layernorm to every token
   * (default false: the raw hidden state, as hiddenStates holds it).
   */
  patchTokens(
    pixelValues: Tensor,
    layer = -1,
    options: { postLayernorm?: boolean } = {},
  ): PatchTokens {
    const l = resolveLayer(layer, this.config.num_hidden_layers);
    const tokens = tidy(() => {
      const patches = dropClassToken(this.vision_model.hiddenStateAt(pixelValues, l));
      return options.postLayernorm ? this.vision_model.post_layernorm.forward(patches) : patches;
    });
    return { tokens, gridSize: this.gridSize };
  }
}

/** transformers' CLIPVisionModelWithProjection: CLIPVisionModel plus visual_projection (no bias). */
export class CLIPVisionModelWithProjection extends CLIPVisionModel {
  readonly visual_projection: Linear;

  constructor(config: Partial<CLIPVisionConfig> | Record<string, unknown> = {}) {
    super(config);
    this.visual_projection = this.registerModule(
      'visual_projection',
      new Linear(this.config.hidden_size, this.config.projection_dim, false),
    );
  }

  static override fromPretrained(
    folder: string,
    options: FromPretrainedOptions = {},
  ): CLIPVisionModelWithProjection {
    const config = readConfig(folder);
    return loadPretrained(() => new CLIPVisionModelWithProjection(config), folder, options, {
      ignore: NOT_VISION,
    });
  }

  override forward(
    pixelValues: Tensor,
    options: CLIPVisionForwardOptions = {},
  ): CLIPVisionWithProjectionOutput {
    const out = this.vision_model.forward(pixelValues, options);
    return { ...out, imageEmbeds: this.visual_projection.forward(out.pooledOutput) };
  }
}
