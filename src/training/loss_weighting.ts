// Per-timestep weights for the denoising loss.

/**
 * Min-SNR-γ weights for ε-prediction (Hang et al. 2023, "Efficient Diffusion Training via
 * Min-SNR Weighting Strategy"): min(SNR(t), γ) / SNR(t) with SNR(t) = ᾱ_t / (1 − ᾱ_t). Nearly
 * clean timesteps, whose ε error is large but says little about the image, stop dominating the
 * gradient, so the global layout that noisy timesteps decide is learnt sooner.
 */
export function minSnrWeights(
  alphasCumprod: ArrayLike<number>,
  timesteps: readonly number[],
  gamma: number,
): number[] {
  if (!(gamma > 0)) throw new RangeError(`min-SNR γ must be positive, got ${gamma}`);
  return timesteps.map((t) => {
    const alphaBar = alphasCumprod[t];
    if (alphaBar === undefined) throw new RangeError(`timestep ${t} is outside the schedule`);
    const snr = alphaBar / (1 - alphaBar);
    return Math.min(snr, gamma) / snr;
  });
}
