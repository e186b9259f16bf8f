// The DESIGN.md benchmark block in p3s: GroupNorm–SiLU–conv3×3 ResNet block, 8-head
// self-attention over 1024 tokens, cross-attention to 77×768, GELU feed-forward.
// bench/block_pytorch.py is its PyTorch twin.
import { Tensor } from '../src/engine/tensor.js';
import { Module } from '../src/nn/module.js';
import { Conv2d, GroupNorm, LayerNorm, Linear } from '../src/nn/layers.js';
import * as F from '../src/nn/functional.js';

class Attention extends Module {
  readonly toQ: Linear;
  readonly toK: Linear;
  readonly toV: Linear;
  readonly toOut: Linear;
  constructor(
    dim: number,
    ctxDim: number,
    readonly heads: number,
  ) {
    super();
    this.toQ = this.registerModule('to_q', new Linear(dim, dim, false));
    this.toK = this.registerModule('to_k', new Linear(ctxDim, dim, false));
    this.toV = this.registerModule('to_v', new Linear(ctxDim, dim, false));
    this.toOut = this.registerModule('to_out', new Linear(dim, dim));
  }
  forward(x: Tensor, ctx: Tensor): Tensor {
    const [b, n, d] = x.shape as [number, number, number];
    const h = this.heads;
    const split = (t: Tensor): Tensor => t.view(b, -1, h, d / h).transpose(1, 2); // (B, heads, L, D/h)
    const o = F.scaledDotProductAttention(
      split(this.toQ.forward(x)),
      split(this.toK.forward(ctx)),
      split(this.toV.forward(ctx)),
    );
    return this.toOut.forward(o.transpose(1, 2).reshape(b, n, d));
  }
}

export class BenchBlock extends Module {
  readonly norm1 = this.registerModule('norm1', new GroupNorm(32, 64));
  readonly conv1 = this.registerModule('conv1', new Conv2d(64, 64, 3, { padding: 1 }));
  readonly norm2 = this.registerModule('norm2', new GroupNorm(32, 64));
  readonly conv2 = this.registerModule('conv2', new Conv2d(64, 64, 3, { padding: 1 }));
  readonly ln1 = this.registerModule('ln1', new LayerNorm(64));
  readonly attn1 = this.registerModule('attn1', new Attention(64, 64, 8));
  readonly ln2 = this.registerModule('ln2', new LayerNorm(64));
  readonly attn2 = this.registerModule('attn2', new Attention(64, 768, 8));
  readonly ln3 = this.registerModule('ln3', new LayerNorm(64));
  readonly ff1 = this.registerModule('ff1', new Linear(64, 256));
  readonly ff2 = this.registerModule('ff2', new Linear(256, 64));

  forward(x: Tensor, ctx: Tensor): Tensor {
    const h = this.conv1.forward(F.silu(this.norm1.forward(x)));
    x = x.add(this.conv2.forward(F.silu(this.norm2.forward(h))));
    const [b, c, hh, ww] = x.shape as [number, number, number, number];
    let t = x.view(b, c, hh * ww).transpose(1, 2); // (B, HW, C)
    const a = this.ln1.forward(t);
    t = t.add(this.attn1.forward(a, a));
    t = t.add(this.attn2.forward(this.ln2.forward(t), ctx));
    t = t.add(this.ff2.forward(F.gelu(this.ff1.forward(this.ln3.forward(t)))));
    return t.transpose(1, 2).reshape(b, c, hh, ww);
  }
}
