// Learning-rate schedules, pure functions of the step (so a resumed run continues them exactly).

/** Linear warm-up to the peak, then cosine decay to 10 % of it by the last step. */
export function warmupCosine(
  peak: number,
  warmup: number,
  total: number,
): (step: number) => number {
  return (step) => {
    if (step < warmup) return (peak * (step + 1)) / warmup;
    const progress = (step - warmup) / Math.max(1, total - warmup);
    return peak * (0.1 + 0.45 * (1 + Math.cos(Math.PI * Math.min(1, progress))));
  };
}

/** How a fine-tuning run's learning rate moves: held, or decayed along a cosine. */
export const LR_SCHEDULES = ['constant', 'cosine'] as const;
export type LrScheduleName = (typeof LR_SCHEDULES)[number];

/** A named schedule as a function of the step; undefined for constant (the optimizer's rate). */
export function namedSchedule(
  name: LrScheduleName,
  peak: number,
  totalSteps: number,
): ((step: number) => number) | undefined {
  return name === 'cosine' ? warmupCosine(peak, 0, totalSteps) : undefined;
}
