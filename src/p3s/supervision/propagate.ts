// One pair of clicks for all photos (beyond the paper): the clicked subject is found in the
// other reference photos by matching patch features — the patch most like the positive clicks
// and least like the negative ones — so a user annotates one photo, not every photo.
import { Tensor } from '../../engine/tensor.js';
import { tidy, keep } from '../../engine/scope.js';
import * as ops from '../../engine/ops.generated.js';
import type { Point } from './annotations.js';
import {
  featureAtPoints,
  pointOfCell,
  similarityToFeature,
  type PatchFeatures,
} from './patch_similarity.js';

export interface ClickFeatures {
  positive: Tensor;
  negative: Tensor | null;
}

/** The mean feature of all positive (and all negative) clicks across the annotated photos. */
export function clickFeatures(
  annotated: { features: PatchFeatures; positive: readonly Point[]; negative: readonly Point[] }[],
): ClickFeatures {
  return tidy(() => {
    const pos = annotated
      .filter((a) => a.positive.length > 0)
      .map((a) => featureAtPoints(a.features, a.positive));
    const neg = annotated
      .filter((a) => a.negative.length > 0)
      .map((a) => featureAtPoints(a.features, a.negative));
    if (pos.length === 0) throw new Error('Propagation needs at least one positive point');
    return {
      positive: keep(ops.stack(pos, 0).mean([0])),
      negative: neg.length > 0 ? keep(ops.stack(neg, 0).mean([0])) : null,
    };
  });
}

export interface PropagatedPoints {
  positive: Point[];
  negative: Point[];
  /** Score of the chosen positive patch: cos(f, pos) − cos(f, neg). */
  positiveScore: number;
  /** Score of the chosen negative patch: cos(f, neg) − cos(f, pos); null without a negative click. */
  negativeScore: number | null;
}

/**
 * Places a positive point on the patch that best matches the positive clicks while differing
 * from the negative ones, and a negative point on the patch most like the negative clicks if it
 * resembles them more than the subject by at least `negativeMargin` (otherwise the photo is taken
 * to hold no look-alike, and gets no negative point).
 */
export function propagatePoints(
  target: PatchFeatures,
  clicks: ClickFeatures,
  options: { negativeMargin?: number } = {},
): PropagatedPoints {
  const margin = options.negativeMargin ?? 0.05;
  const simPos = similarityToFeature(target, clicks.positive);
  const simNeg = clicks.negative ? similarityToFeature(target, clicks.negative) : null;
  let bestPos = 0;
  let bestPosScore = -Infinity;
  let bestNeg = -1;
  let bestNegScore = -Infinity;
  for (let i = 0; i < simPos.length; i++) {
    const pos = simPos[i]! - (simNeg ? simNeg[i]! : 0);
    if (pos > bestPosScore) {
      bestPosScore = pos;
      bestPos = i;
    }
    if (simNeg) {
      const neg = simNeg[i]! - simPos[i]!;
      if (neg > bestNegScore) {
        bestNegScore = neg;
        bestNeg = i;
      }
    }
  }
  const negative =
    simNeg && bestNeg !== bestPos && bestNegScore >= margin ? [pointOfCell(target, bestNeg)] : [];
  return {
    positive: [pointOfCell(target, bestPos)],
    negative,
    positiveScore: bestPosScore,
    negativeScore: simNeg ? bestNegScore : null,
  };
}
