// transformers' ViTModel (DINO ViT-S/16, facebook/dino-vits16: the DINO score's image encoder),
// loading the transformers layout unchanged: embeddings.{cls_token, position_embeddings,
// patch_embeddings.projection}, encoder.layer.N.{layernorm_before, attention.attention.{query,
// key,value}, attention.output.dense, layernorm_after, intermediate.dense, output.dense},
// layernorm, pooler.dense. Inference only: dropout is never applied (DINO's rates are 0).
import { Tensor } from '../../engine/tensor.js';
import { tidy } from '../../engine/scope.js';
import * as ops from '../../engine/ops.generated.js';
import { Module, ModuleList } from '../../nn/module.js';
import { Conv2d, LayerNorm, Linear } from '../../nn/layers.js';
import { normalParameter } from '../../nn/init.js';
import * as F from '../../nn/functional.js';
import { SafetensorsFile } from '../../io/safetensors.js';
import type { HiddenAct } from '../clip/clip_config.js';
import type { FromPretrainedOptions } from '../clip/clip_loading.js';
import { findWeightFile, loadPretrained, readConfig } from '../loading.js';
import { vitConfig, type ViTConfig } from './vit_config.js';

export interface ViTForwardOptions {
  /** Also return every hidden state: [embeddings, after layer 1, ..., after layer N]. */
  outputHiddenStates?: boolean;
  /** Also return every layer's attention probabilities (B, heads, T, T). */
  outputAttentions?: boolean;
}

export interface ViTModelOutput {
  /** (B, 1 + gridH·gridW, C): the last layer's output after the final `layernorm`. */
  lastHiddenState: Tensor;
  /** (B, C): tanh(pooler.dense(lastHiddenState[:, 0])); absent for a model without a pooler. */
  poolerOutput?: Tensor;
  /** N + 1 tensors (B, T, C), before the final layernorm: [0] embeddings, [i] after layer i. */
  hiddenStates?: Tensor[];
  /** N tensors (B, heads, T, T): softmax(q kᵀ / √D) of each layer. */
  attentions?: Tensor[];
}

export interface ViTModelOptions {
  /** Build `pooler.dense` (transformers' add_pooling_layer; default true). */
  addPoolingLayer?: boolean;
}

export interface ViTFromPretrainedOptions extends FromPretrainedOptions {
  /**
   * Load the pooler. Default: when the file has `pooler.dense.weight`. facebook/dino-vits16 was
   * converted without one (transformers would initialise it randomly), so it gets none.
   */
  addPoolingLayer?: boolean;
}

/** hidden_act as transformers' ACT2FN, the same choices CLIP's MLP offers. */
function activation(name: HiddenAct): (x: Tensor) => Tensor {
  switch (name) {
    case 'quick_gelu':
      return F.quickGelu;
    case 'gelu':
      return (x) => F.gelu(x);
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
      return (x) => F.gelu(x, 'tanh');
  }
}

export class ViTPatchEmbeddings extends Module {
  readonly projection: Conv2d;

  constructor(readonly config: ViTConfig) {
    super();
    const { num_channels, hidden_size, patch_size } = config;
    this.projection = this.registerModule(
      'projection',
      new Conv2d(num_channels, hidden_size, patch_size, { stride: patch_size }),
    );
  }

  /** pixels (B, 3, image_size, image_size) -> (B, gridH·gridW, C), row-major over the grid. */
  forward(pixelValues: Tensor): Tensor {
    const { num_channels, image_size } = this.config;
    const s = pixelValues.shape;
    if (s.length !== 4 || s[1] !== num_channels || s[2] !== image_size || s[3] !== image_size) {
      throw new Error(
        `Expected pixel values of shape (B, ${num_channels}, ${image_size}, ${image_size}) (config keys num_channels, image_size) but received [${s.join(', ')}]`,
      );
    }
    const weight = this.projection.weight;
    const pixels = pixelValues.dtype === weight.dtype ? pixelValues : pixelValues.to(weight.dtype);
    return this.projection
      .forward(pixels) // (B, C, gridH, gridW)
      .flatten(2) // (B, C, gridH·gridW)
      .transpose(1, 2); // (B, gridH·gridW, C)
  }
}

export class ViTEmbeddings extends Module {
  readonly patch_embeddings: ViTPatchEmbeddings;

  constructor(readonly config: ViTConfig) {
    super();
    const c = config.hidden_size;
    const grid = config.image_size / config.patch_size;
    // Random init only for a model built without weights (transformers' initializer_range).
    this.registerParameter('cls_token', normalParameter([1, 1, c], 0.02));
    this.registerParameter('position_embeddings', normalParameter([1, grid * grid + 1, c], 0.02));
    this.patch_embeddings = this.registerModule('patch_embeddings', new ViTPatchEmbeddings(config));
  }

  get cls_token(): Tensor {
    return this.param('cls_token');
  }

  get position_embeddings(): Tensor {
    return this.param('position_embeddings');
  }

  /** pixels -> [CLS, patches] + positions: (B, 1 + gridH·gridW, C). */
  forward(pixelValues: Tensor): Tensor {
    return tidy(() => {
      const patches = this.patch_embeddings.forward(pixelValues);
      const [b, , c] = patches.shape as [number, number, number];
      const cls = this.cls_token.expand(b, 1, c); // (B, 1, C)
      // ViT embeddings (Dosovitskiy et al. Eq. 1): [x_class; x_p E] + E_pos.
      return ops.cat([cls, patches], 1).add(this.position_embeddings); // (B, T, C)
    });
  }
}

/** transformers' ViTSelfAttention: query/key/value projections and the multi-head softmax. */
export class ViTSelfAttention extends Module {
  readonly numHeads: number;
  readonly headDim: number;
  readonly query: Linear;
  readonly key: Linear;
  readonly value: Linear;

  constructor(config: ViTConfig) {
    super();
    const c = config.hidden_size;
    this.numHeads = config.num_attention_heads;
    this.headDim = c / this.numHeads;
    this.query = this.registerModule('query', new Linear(c, c, config.qkv_bias));
    this.key = this.registerModule('key', new Linear(c, c, config.qkv_bias));
    this.value = this.registerModule('value', new Linear(c, c, config.qkv_bias));
  }

  /** x (B, T, C) -> context (B, T, C), and the probabilities (B, heads, T, T) when asked. */
  forward(x: Tensor, withProbs: boolean): { context: Tensor; probs?: Tensor } {
    const [b, t, c] = x.shape as [number, number, number];
    const heads = (proj: Linear) =>
      proj.forward(x).view(b, t, this.numHeads, this.headDim).transpose(1, 2); // (B, h, T, D)
    const [q, k, v] = [heads(this.query), heads(this.key), heads(this.value)];
    const merge = (o: Tensor) => o.transpose(1, 2).reshape(b, t, c); // (B, T, C)
    if (!withProbs) return { context: merge(F.scaledDotProductAttention(q, k, v)) };
    // Scaled dot-product attention, softmax(q kᵀ / √D) v, with the probabilities kept.
    const probs = F.attentionProbs(q, k, 1 / Math.sqrt(this.headDim));
    return { context: merge(ops.matmul(probs, v)), probs };
  }
}

/** transformers' ViTSelfOutput: the attention's output projection. */
export class ViTSelfOutput extends Module {
  readonly dense: Linear;

  constructor(config: ViTConfig) {
    super();
    this.dense = this.registerModule('dense', new Linear(config.hidden_size, config.hidden_size));
  }

  forward(x: Tensor): Tensor {
    return this.dense.forward(x);
  }
}

/** transformers' ViTAttention: `attention` (self-attention) then `output` (projection). */
export class ViTAttention extends Module {
  readonly attention: ViTSelfAttention;
  readonly output: ViTSelfOutput;

  constructor(config: ViTConfig) {
    super();
    this.attention = this.registerModule('attention', new ViTSelfAttention(config));
    this.output = this.registerModule('output', new ViTSelfOutput(config));
  }

  forward(x: Tensor, withProbs: boolean): { out: Tensor; probs?: Tensor } {
    const { context, probs } = this.attention.forward(x, withProbs);
    return { out: this.output.forward(context), probs };
  }
}

/** transformers' ViTIntermediate: dense to intermediate_size, then hidden_act. */
export class ViTIntermediate extends Module {
  readonly dense: Linear;
  private readonly act: (x: Tensor) => Tensor;

  constructor(config: ViTConfig) {
    super();
    this.act = activation(config.hidden_act);
    this.dense = this.registerModule(
      'dense',
      new Linear(config.hidden_size, config.intermediate_size),
    );
  }

  forward(x: Tensor): Tensor {
    return this.act(this.dense.forward(x));
  }
}

/** transformers' ViTOutput: dense back to hidden_size (the residual is added by the layer). */
export class ViTOutput extends Module {
  readonly dense: Linear;

  constructor(config: ViTConfig) {
    super();
    this.dense = this.registerModule(
      'dense',
      new Linear(config.intermediate_size, config.hidden_size),
    );
  }

  forward(x: Tensor): Tensor {
    return this.dense.forward(x);
  }
}

export class ViTLayer extends Module {
  readonly attention: ViTAttention;
  readonly intermediate: ViTIntermediate;
  readonly output: ViTOutput;
  readonly layernorm_before: LayerNorm;
  readonly layernorm_after: LayerNorm;

  constructor(config: ViTConfig) {
    super();
    const { hidden_size: c, layer_norm_eps: eps } = config;
    this.attention = this.registerModule('attention', new ViTAttention(config));
    this.intermediate = this.registerModule('intermediate', new ViTIntermediate(config));
    this.output = this.registerModule('output', new ViTOutput(config));
    this.layernorm_before = this.registerModule('layernorm_before', new LayerNorm(c, eps));
    this.layernorm_after = this.registerModule('layernorm_after', new LayerNorm(c, eps));
  }

  /** Pre-norm: h = x + attn(ln_before(x)); out = h + mlp(ln_after(h)). */
  forward(x: Tensor, withProbs: boolean): { hidden: Tensor; probs?: Tensor } {
    const { out, probs } = this.attention.forward(this.layernorm_before.forward(x), withProbs);
    const h = x.add(out);
    const mlp = this.output.forward(this.intermediate.forward(this.layernorm_after.forward(h)));
    return { hidden: h.add(mlp), probs };
  }
}

export interface ViTEncoderOutput {
  lastHiddenState: Tensor;
  hiddenStates?: Tensor[];
  attentions?: Tensor[];
}

export class ViTEncoder extends Module {
  readonly layer: ModuleList<ViTLayer>;

  constructor(config: ViTConfig) {
    super();
    const layers: ViTLayer[] = [];
    for (let i = 0; i < config.num_hidden_layers; i++) layers.push(new ViTLayer(config));
    this.layer = this.registerModule('layer', new ModuleList(layers));
  }

  /**
   * Runs every layer over x (B, T, C). Each layer's intermediates are freed as it finishes, and
   * superseded hidden states too unless they are returned.
   */
  forward(x: Tensor, options: ViTForwardOptions = {}): ViTEncoderOutput {
    const keepAll = options.outputHiddenStates ?? false;
    const withProbs = options.outputAttentions ?? false;
    const hiddenStates: Tensor[] = [x];
    const attentions: Tensor[] = [];
    let h = x;
    for (let i = 0; i < this.layer.length; i++) {
      const prev = h;
      const r = tidy(() => this.layer.at(i).forward(prev, withProbs));
      h = r.hidden;
      if (r.probs !== undefined) attentions.push(r.probs);
      if (keepAll) hiddenStates.push(h);
      else if (prev !== x) prev.dispose();
    }
    return {
      lastHiddenState: h,
      ...(keepAll ? { hiddenStates } : {}),
      ...(withProbs ? { attentions } : {}),
    };
  }
}

/** transformers' ViTPooler: tanh(dense(CLS token)). */
export class ViTPooler extends Module {
  readonly dense: Linear;

  constructor(config: ViTConfig) {
    super();
    this.dense = this.registerModule('dense', new Linear(config.hidden_size, config.hidden_size));
  }

  /** (B, T, C) -> (B, C). */
  forward(hidden: Tensor): Tensor {
    // ViTPooler: tanh(W · h_CLS + b).
    return tidy(() => ops.tanh(this.dense.forward(hidden.select(1, 0))));
  }
}

/** True when a folder's weight file holds ViTPooler's weights. */
function hasPooler(folder: string, variant?: string): boolean {
  return SafetensorsFile.open(findWeightFile(folder, variant)).keys().includes('pooler.dense.weight');
}

/** transformers' ViTModel: embeddings, pre-norm encoder, final layernorm, optional pooler. */
export class ViTModel extends Module {
  readonly config: ViTConfig;
  readonly embeddings: ViTEmbeddings;
  readonly encoder: ViTEncoder;
  readonly layernorm: LayerNorm;
  readonly pooler: ViTPooler | null;

  /** config: a config.json object (model_type "vit"), keys verbatim. */
  constructor(
    config: Partial<ViTConfig> | Record<string, unknown> = {},
    options: ViTModelOptions = {},
  ) {
    super();
    this.config = vitConfig(config as Record<string, unknown>);
    const { hidden_size: c, layer_norm_eps: eps } = this.config;
    this.embeddings = this.registerModule('embeddings', new ViTEmbeddings(this.config));
    this.encoder = this.registerModule('encoder', new ViTEncoder(this.config));
    this.layernorm = this.registerModule('layernorm', new LayerNorm(c, eps));
    const pooler = options.addPoolingLayer ?? true;
    this.pooler = pooler ? this.registerModule('pooler', new ViTPooler(this.config)) : null;
  }

  /** Loads a transformers ViTModel folder (config.json + model.safetensors). */
  static fromPretrained(folder: string, options: ViTFromPretrainedOptions = {}): ViTModel {
    const config = readConfig(folder);
    const addPoolingLayer = options.addPoolingLayer ?? hasPooler(folder, options.variant);
    return loadPretrained(() => new ViTModel(config, { addPoolingLayer }), folder, options, {
      ignore: addPoolingLayer ? [] : [/^pooler\./],
    });
  }

  get gridSize(): [number, number] {
    const g = this.config.image_size / this.config.patch_size;
    return [g, g];
  }

  /** pixel values (B, 3, image_size, image_size), normalised as ViTImageProcessor does. */
  forward(pixelValues: Tensor, options: ViTForwardOptions = {}): ViTModelOutput {
    return tidy(() => {
      const enc = this.encoder.forward(this.embeddings.forward(pixelValues), options);
      const lastHiddenState = this.layernorm.forward(enc.lastHiddenState);
      const out: ViTModelOutput = { lastHiddenState };
      if (this.pooler !== null) out.poolerOutput = this.pooler.forward(lastHiddenState);
      if (enc.hiddenStates !== undefined) out.hiddenStates = enc.hiddenStates;
      if (enc.attentions !== undefined) out.attentions = enc.attentions;
      return out;
    });
  }

  /**
   * (B, C): the CLS token of the last hidden state (after the final layernorm), DINO's image
   * embedding and what the DINO score compares (DreamBooth's evaluation; no pooler).
   */
  clsEmbeddings(pixelValues: Tensor): Tensor {
    return tidy(() => this.forward(pixelValues).lastHiddenState.select(1, 0).contiguous());
  }
}
