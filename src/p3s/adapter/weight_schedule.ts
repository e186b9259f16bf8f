// Eq. (9)–(10): the timestep-based weight scheduler. The trainable copy's features f enter the
// frozen U-Net scaled by ε_t (Eq. 9), which follows a curve over the denoising time t ∈ [0, T].

export type WeightCurve =
  | { kind: 'paper'; alpha: number; beta: number; k: number }
  | { kind: 'fixed'; weight: number }
  /**
   * Not in the paper: `weight` while t ≥ share·T, then 0, so the frozen U-Net alone finishes the
   * last share of denoising (the fine detail) after the copy has laid the subject out.
   */
  | { kind: 'cutoff'; weight: number; share: number }
  /** Table III "increasing": ε_t = (t/T)², strong early in denoising (large t). */
  | { kind: 'quadratic-increasing' }
  /** Table III "decreasing": ε_t = 1 − (t/T)², weak early, full strength at the end. */
  | { kind: 'quadratic-decreasing' };

/** The paper's defaults: α = 0.5, β = 0.2, k = 2. */
export const PAPER_CURVE: WeightCurve = { kind: 'paper', alpha: 0.5, beta: 0.2, k: 2 };

/** ε_t for timestep t of T training timesteps. */
export function injectionWeight(curve: WeightCurve, t: number, T: number): number {
  if (!(T > 0)) throw new RangeError(`Expected a positive number of timesteps but received ${T}`);
  const s = Math.min(1, Math.max(0, t / T));
  switch (curve.kind) {
    case 'paper':
      return 1 - curve.alpha * s ** curve.k + curve.beta; // Eq. (10): ε_t = 1 − α (t/T)^k + β
    case 'fixed':
      return curve.weight;
    case 'cutoff':
      return s >= curve.share ? curve.weight : 0;
    case 'quadratic-increasing':
      return s * s;
    case 'quadratic-decreasing':
      return 1 - s * s;
  }
}

/**
 * Parses "paper", "paper:0.5,0.2,2", "fixed:0.7", "cutoff:1,0.2", "quadratic-increasing",
 * "quadratic-decreasing".
 */
export function parseWeightCurve(text: string): WeightCurve {
  const [kind, args = ''] = text.split(':', 2) as [string, string?];
  const nums = args === '' ? [] : args.split(',').map(Number);
  if (nums.some((n) => !Number.isFinite(n)))
    throw new Error(`Expected numbers in weight curve "${text}"`);
  switch (kind) {
    case 'paper': {
      if (nums.length === 0) return PAPER_CURVE;
      if (nums.length !== 3) throw new Error(`Expected paper:α,β,k but received "${text}"`);
      return { kind: 'paper', alpha: nums[0]!, beta: nums[1]!, k: nums[2]! };
    }
    case 'fixed':
      if (nums.length !== 1) throw new Error(`Expected fixed:<weight> but received "${text}"`);
      return { kind: 'fixed', weight: nums[0]! };
    case 'cutoff':
      if (nums.length !== 2 || nums[1]! < 0 || nums[1]! > 1)
        throw new Error(`Expected cutoff:<weight>,<share of T from 0 to 1> but received "${text}"`);
      return { kind: 'cutoff', weight: nums[0]!, share: nums[1]! };
    case 'quadratic-increasing':
    case 'quadratic-decreasing':
      return { kind };
  }
  throw new Error(
    `Unknown weight curve "${text}"; expected paper, fixed:<w>, cutoff:<w>,<share>, quadratic-increasing or quadratic-decreasing`,
  );
}

export function formatWeightCurve(curve: WeightCurve): string {
  switch (curve.kind) {
    case 'paper':
      return `paper:${curve.alpha},${curve.beta},${curve.k}`;
    case 'fixed':
      return `fixed:${curve.weight}`;
    case 'cutoff':
      return `cutoff:${curve.weight},${curve.share}`;
    default:
      return curve.kind;
  }
}
