// Eq. (7)–(8): multi-layer condition injection into the frozen U-Net's self-attention layers.
//   Q = W^Q z_i,  K' = W^K [z_i, f_i],  V' = W^V [z_i + λ f_i, f_i]      (Eq. 7)
//   Attention = Softmax(Q K'ᵀ / √d) V'                                    (Eq. 8)
// z_i is the layer's own input, f_i the trainable copy's feature for it (already ε_t-scaled).
//
// mode 'joint' is Eq. (8) as written: one softmax over the layer's own tokens and the copy's.
// mode 'decoupled' (default) takes the softmax over each token set separately and adds the two,
// Softmax(Q K_zᵀ/√d) V_z' + Softmax(Q K_fᵀ/√d) V_f. Why: with zero-initialised f, Eq. (8)'s joint
// softmax still gives the all-zero copy tokens weight (their logits are 0), which dilutes every
// attention row and changes the frozen U-Net's output before any training. Decoupled, the copy's
// term is W^V·0 = 0, so an untrained adapter reproduces the base model exactly.
// mode 'aligned' (not in the paper) is 'decoupled' plus f_i added at its own position to the
// attention output, before the layer's output projection, as ControlNet adds its copy's features
// to the skip connections. Why: in Eq. (8) a copy token reaches a position only as far as the
// frozen query attends to it, and a small U-Net's self-attention barely matches positions at
// high noise (docs/p3s.md has the measurements). With f = 0 it too reproduces the base model
// exactly.
//
// The features of a call arrive with the call: P3SUNet passes them in the U-Net's forward
// options (attentionContext, under P3S_FEATURES), keyed by transformer-block path, and each
// processor reads its own. Why: the features differ per call (timestep, batch, guidance half),
// and state held between calls could reach a call it was not made for.
import { Tensor } from '../../engine/tensor.js';
import * as ops from '../../engine/ops.generated.js';
import * as F from '../../nn/functional.js';
import {
  AttentionContextKey,
  attendInputs,
  type Attention,
  type AttentionCall,
  type AttentionProcessor,
} from '../../models/attention_processor.js';

export const INJECTION_MODES = ['decoupled', 'joint', 'aligned'] as const;
export type InjectionMode = (typeof INJECTION_MODES)[number];

export function isInjectionMode(x: unknown): x is InjectionMode {
  return typeof x === 'string' && (INJECTION_MODES as readonly string[]).includes(x);
}

/** Where a call's attention context carries the copy's features f_i, by transformer-block path. */
export const P3S_FEATURES = new AttentionContextKey<ReadonlyMap<string, Tensor>>('p3sFeatures');

/** This call's f_i for a block, or null (inject nothing). */
function featureOf(call: AttentionCall, blockPath: string): Tensor | null {
  return P3S_FEATURES.read(call)?.get(blockPath) ?? null;
}

export class P3SInjectionProcessor implements AttentionProcessor {
  constructor(
    /** The transformer block's path (the features' key). */
    readonly blockPath: string,
    readonly lambda: number,
    readonly mode: InjectionMode,
  ) {}

  process(attn: Attention, hiddenStates: Tensor, call: AttentionCall): Tensor {
    const { x, residual, spatial } = attn.prepare(hiddenStates); // x = z_i, (B, HW, C)
    const f = call.encoderHiddenStates === null ? featureOf(call, this.blockPath) : null;
    if (f === null) {
      // nothing to inject: the plain attention every processor computes
      const context = call.encoderHiddenStates ?? x;
      return attn.finish(attendInputs(attn, x, context, context), residual, spatial);
    }
    const q = attn.splitHeads(attn.toQ.forward(x)); // Eq. (7): Q = W^Q z_i      (B, heads, HW, d)
    if (f.shape.join() !== x.shape.join()) {
      throw new Error(
        `P3S feature for ${this.blockPath} has shape [${f.shape.join(', ')}] but the layer's input is [${x.shape.join(', ')}]`,
      );
    }
    const kz = attn.splitHeads(attn.toK.forward(x)); // W^K z_i
    const kf = attn.splitHeads(attn.toK.forward(f)); // W^K f_i
    const vz = attn.splitHeads(attn.toV.forward(x.add(f.mul(this.lambda)))); // W^V (z_i + λ f_i)
    const vf = attn.splitHeads(attn.toV.forward(f)); // W^V f_i
    let out: Tensor;
    if (this.mode === 'joint') {
      // Eq. (8): Softmax(Q K'ᵀ/√d) V' with K' = [K_z, K_f], V' = [V_z, V_f] along the token axis
      out = F.scaledDotProductAttention(q, ops.cat([kz, kf], 2), ops.cat([vz, vf], 2));
    } else {
      out = F.scaledDotProductAttention(q, kz, vz).add(F.scaledDotProductAttention(q, kf, vf));
    }
    let merged = attn.mergeHeads(out);
    if (this.mode === 'aligned' && merged.shape[2] !== f.shape[2])
      throw new Error(
        `Aligned injection needs the attention width (${merged.shape[2]}) to equal the layer's (${f.shape[2]}) at ${this.blockPath}`,
      );
    if (this.mode === 'aligned') merged = merged.add(f); // f_i at its own position (see top)
    return attn.finish(merged, residual, spatial);
  }
}
