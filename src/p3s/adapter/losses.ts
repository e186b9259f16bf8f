// The training objective, Eq. (11)–(15).
import { Tensor } from '../../engine/tensor.js';
import * as F from '../../nn/functional.js';

/**
 * Eq. (11)–(12): attention consistency between the copy's last cross-attention map M_c and the
 * frozen U-Net's M_o (both softmax maps, Eq. 13): MSE(M_c, M_o) / avg with
 * avg = (Sum(M_c) + Sum(M_o)) / 2.
 */
export function attentionConsistencyLoss(mc: Tensor, mo: Tensor): Tensor {
  if (mc.shape.join() !== mo.shape.join()) {
    throw new Error(
      `Attention maps differ in shape: [${mc.shape.join(', ')}] vs [${mo.shape.join(', ')}]`,
    );
  }
  const avg = mc.sum().add(mo.sum()).div(2); // Eq. (12)
  return F.mseLoss(mc, mo).div(avg); // Eq. (11)
}

/** Eq. (14): L_LDM = E‖ε − ε_θ(x_t, t, c_t)‖² (or the v target for v-prediction models). */
export function ldmLoss(prediction: Tensor, target: Tensor): Tensor {
  return F.mseLoss(prediction.float(), target.float());
}

/**
 * Eq. (14) weighted per latent position: Σ w·(target − ε_θ)² / (C·Σ w) with weights (B, 1, h, w)
 * shared by the C channels; all ones gives ldmLoss exactly. A zero total weight gives 0.
 */
export function weightedLdmLoss(prediction: Tensor, target: Tensor, weights: Tensor): Tensor {
  const [b, c, h, w] = prediction.shape;
  if (weights.shape.join() !== [b, 1, h, w].join())
    throw new Error(
      `Expected loss weights of shape [${[b, 1, h, w].join(', ')}] but received [${weights.shape.join(', ')}]`,
    );
  const squared = prediction.float().sub(target.float()).square();
  const total = weights.sum().mul(c!).clamp(1e-12, null);
  return squared.mul(weights).sum().div(total); // Eq. (14), per-position weights
}

/**
 * Eq. (14) with the error outside the subject weighted by `backgroundWeight`: weights
 * m + w·(1 − m) from the subject masks (B, 1, h, w); no masks gives ldmLoss. With w = 0 this is
 * kohya's masked loss (the subject only), which every fine-tuning method may use.
 */
export function subjectWeightedLoss(
  prediction: Tensor,
  target: Tensor,
  subjectMasks: Tensor | null,
  backgroundWeight: number,
): Tensor {
  if (subjectMasks === null) return ldmLoss(prediction, target);
  const weights = subjectMasks.mul(1 - backgroundWeight).add(backgroundWeight);
  return weightedLdmLoss(prediction, target, weights);
}

/** Eq. (15): L = L_LDM + γ·L_ac, γ = 0.1 in the paper. */
export function totalLoss(ldm: Tensor, ac: Tensor | null, gamma: number): Tensor {
  return ac === null || gamma === 0 ? ldm : ldm.add(ac.mul(gamma));
}
