// Eq. (4)–(5): the subject input of the trainable copy. The filled reference photo's VAE latent
// I' attends to the CLIP image encoder's last hidden state c_s:
//   Q_i = W^Q Z(I'; θ^z),  K_c = W^K c_s,  V_c = W^V c_s            (Eq. 5)
//   I'' = I' + Softmax(Q_i K_cᵀ / √d) V_c                           (Eq. 4)
// Z is a 1×1 convolution with weight and bias initialised to zero.
import { Tensor } from '../../engine/tensor.js';
import { Module } from '../../nn/module.js';
import { Conv2d, Linear } from '../../nn/layers.js';
import * as F from '../../nn/functional.js';
import { noGrad } from '../../engine/autograd.js';
import * as ops from '../../engine/ops.generated.js';

export interface SubjectEncoderConfig {
  latentChannels: number;
  clipHiddenSize: number;
  attentionDim: number;
}

/** Zeroes a module's parameters in place (the "zero convolution" initialisation). */
export function zeroInit(m: Module): void {
  noGrad(() => {
    for (const p of m.parameters()) ops.zero_(p);
  });
}

export class SubjectEncoder extends Module {
  readonly zeroConv: Conv2d;
  readonly toQ: Linear;
  readonly toK: Linear;
  readonly toV: Linear;
  readonly scale: number;

  constructor(readonly config: SubjectEncoderConfig) {
    super();
    const { latentChannels: c, clipHiddenSize: e, attentionDim: d } = config;
    this.zeroConv = this.registerModule('zero_conv', new Conv2d(c, c, 1));
    zeroInit(this.zeroConv);
    this.toQ = this.registerModule('to_q', new Linear(c, d, false));
    this.toK = this.registerModule('to_k', new Linear(e, d, false));
    this.toV = this.registerModule('to_v', new Linear(e, c, false));
    this.scale = 1 / Math.sqrt(d);
  }

  /** latent I' (B, C, h, w) and CLIP states c_s (B, L, E) -> I'' (B, C, h, w). */
  forward(latent: Tensor, clipStates: Tensor): Tensor {
    const [b, c, h, w] = latent.shape as [number, number, number, number];
    const z = this.zeroConv
      .forward(latent)
      .view(b, c, h * w)
      .transpose(1, 2); // (B, hw, C)
    const q = this.toQ.forward(z); // Eq. (5): Q_i = W^Q Z(I')          (B, hw, d)
    const k = this.toK.forward(clipStates); // Eq. (5): K_c = W^K c_s      (B, L, d)
    const v = this.toV.forward(clipStates); // Eq. (5): V_c = W^V c_s      (B, L, C)
    const attended = F.scaledDotProductAttention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1), {
      scale: this.scale,
    }).squeeze(1); // (B, hw, C)
    return latent.add(attended.transpose(1, 2).reshape(b, c, h, w)); // Eq. (4): I'' = I' + Softmax(QKᵀ/√d)V
  }
}
