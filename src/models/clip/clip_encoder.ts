// The pre-norm transformer layers both CLIP towers share (transformers' CLIPAttention, CLIPMLP,
// CLIPEncoderLayer, CLIPEncoder), with transformers' key names:
// layers.N.{self_attn.{q,k,v,out}_proj, layer_norm1, mlp.{fc1,fc2}, layer_norm2}.
import { Tensor } from '../../engine/tensor.js';
import { tidy } from '../../engine/scope.js';
import { Module, ModuleList } from '../../nn/module.js';
import { LayerNorm, Linear } from '../../nn/layers.js';
import * as F from '../../nn/functional.js';
import type { CLIPEncoderConfig, HiddenAct } from './clip_config.js';

export class CLIPAttention extends Module {
  readonly numHeads: number;
  readonly headDim: number;
  readonly q_proj: Linear;
  readonly k_proj: Linear;
  readonly v_proj: Linear;
  readonly out_proj: Linear;

  constructor(config: CLIPEncoderConfig) {
    super();
    const c = config.hidden_size;
    this.numHeads = config.num_attention_heads;
    this.headDim = c / this.numHeads;
    this.k_proj = this.registerModule('k_proj', new Linear(c, c));
    this.v_proj = this.registerModule('v_proj', new Linear(c, c));
    this.q_proj = this.registerModule('q_proj', new Linear(c, c));
    this.out_proj = this.registerModule('out_proj', new Linear(c, c));
  }

  /** x: (B, L, C); mask: additive, broadcastable to (B, heads, L, L), or null. */
  forward(x: Tensor, mask: Tensor | null = null): Tensor {
    const [b, l, c] = x.shape as [number, number, number];
    const heads = (proj: Linear) =>
      proj
        .forward(x)
        .view(b, l, this.numHeads, this.headDim) // (B, L, heads, D)
        .transpose(1, 2); // (B, heads, L, D)
    // softmax(q kᵀ / √D + mask) v; transformers scales q before the product, equal within 1e-7.
    const o = F.scaledDotProductAttention(
      heads(this.q_proj),
      heads(this.k_proj),
      heads(this.v_proj),
      {
        mask,
      },
    ); // (B, heads, L, D)
    return this.out_proj.forward(o.transpose(1, 2).reshape(b, l, c)); // (B, L, C)
  }
}

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

export class CLIPMLP extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  private readonly act: (x: Tensor) => Tensor;

  constructor(config: CLIPEncoderConfig) {
    super();
    this.act = activation(config.hidden_act);
    this.fc1 = this.registerModule('fc1', new Linear(config.hidden_size, config.intermediate_size));
    this.fc2 = this.registerModule('fc2', new Linear(config.intermediate_size, config.hidden_size));
  }

  forward(x: Tensor): Tensor {
    return this.fc2.forward(this.act(this.fc1.forward(x)));
  }
}

export class CLIPEncoderLayer extends Module {
  readonly self_attn: CLIPAttention;
  readonly layer_norm1: LayerNorm;
  readonly mlp: CLIPMLP;
  readonly layer_norm2: LayerNorm;

  constructor(config: CLIPEncoderConfig) {
    super();
    this.self_attn = this.registerModule('self_attn', new CLIPAttention(config));
    this.layer_norm1 = this.registerModule(
      'layer_norm1',
      new LayerNorm(config.hidden_size, config.layer_norm_eps),
    );
    this.mlp = this.registerModule('mlp', new CLIPMLP(config));
    this.layer_norm2 = this.registerModule(
      'layer_norm2',
      new LayerNorm(config.hidden_size, config.layer_norm_eps),
    );
  }

  /** Pre-norm: h = x + attn(ln1(x)); out = h + mlp(ln2(h)). */
  forward(x: Tensor, mask: Tensor | null = null): Tensor {
    const h = x.add(this.self_attn.forward(this.layer_norm1.forward(x), mask));
    return h.add(this.mlp.forward(this.layer_norm2.forward(h)));
  }
}

export interface CLIPEncoderOutput {
  /** The output of the last layer run. */
  lastHiddenState: Tensor;
  /** [input, after layer 1, ..., after the last layer run], when asked for. */
  hiddenStates?: Tensor[];
}

export class CLIPEncoder extends Module {
  readonly layers: ModuleList<CLIPEncoderLayer>;

  constructor(config: CLIPEncoderConfig) {
    super();
    const layers: CLIPEncoderLayer[] = [];
    for (let i = 0; i < config.num_hidden_layers; i++) layers.push(new CLIPEncoderLayer(config));
    this.layers = this.registerModule('layers', new ModuleList(layers));
  }

  /**
   * Runs the first `numLayers` layers (all by default) over x: (B, L, C). Each layer's
   * intermediates are freed as it finishes, and superseded hidden states too unless they are
   * returned, so peak memory stays at about one layer's worth.
   */
  forward(
    x: Tensor,
    options: { mask?: Tensor | null; outputHiddenStates?: boolean; numLayers?: number } = {},
  ): CLIPEncoderOutput {
    const n = options.numLayers ?? this.layers.length;
    if (!Number.isInteger(n) || n < 0 || n > this.layers.length) {
      throw new RangeError(`Expected numLayers in [0, ${this.layers.length}] but received ${n}`);
    }
    const keepAll = options.outputHiddenStates ?? false;
    const hiddenStates: Tensor[] = [x];
    let h = x;
    for (let i = 0; i < n; i++) {
      const layer = this.layers.at(i);
      const prev = h;
      h = tidy(() => layer.forward(prev, options.mask ?? null));
      if (keepAll) hiddenStates.push(h);
      else if (prev !== x) prev.dispose();
    }
    return keepAll ? { lastHiddenState: h, hiddenStates } : { lastHiddenState: h };
  }
}
