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
