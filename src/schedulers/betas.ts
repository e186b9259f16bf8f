// Schedule math shared by the schedulers, computed as diffusers 0.27.2 computes it so that the
// numbers agree bit for bit: β (betas), α = 1 − β, ᾱ = cumprod(α) in float32 torch ops where
// diffusers uses torch (linspace, cumprod), in float64 where it uses Python or numpy
// (betas_for_alpha_bar, set_timesteps) and cast as it casts.
import { tidy } from '../engine/scope.js';
import { tensor } from '../engine/creation.js';
import { call } from '../engine/ops.js';
import * as ops from '../engine/ops.generated.js';
import type { Tensor } from '../engine/tensor.js';

export type BetaSchedule = 'linear' | 'scaled_linear' | 'squaredcos_cap_v2' | 'sigmoid';
export type TimestepSpacing = 'leading' | 'trailing' | 'linspace';

export interface BetaConfig {
  num_train_timesteps: number;
  beta_start: number;
  beta_end: number;
  beta_schedule: BetaSchedule;
  trained_betas: readonly number[] | null;
}

/** β_1..β_T as float32, from trained_betas or the named schedule. */
export function makeBetas(config: BetaConfig): Float32Array {
  const n = config.num_train_timesteps;
  if (config.trained_betas !== null) return Float32Array.from(config.trained_betas);
  switch (config.beta_schedule) {
    case 'linear':
      return torchValues(() => ops.linspace(config.beta_start, config.beta_end, n, 'float32'));
    case 'scaled_linear':
      // Linear in √β, as latent diffusion trained SD.
      return torchValues(() =>
        ops.linspace(Math.sqrt(config.beta_start), Math.sqrt(config.beta_end), n, 'float32').pow(2),
      );
    case 'squaredcos_cap_v2':
      return betasForAlphaBar(n);
    case 'sigmoid':
      return torchValues(() =>
        ops
          .linspace(-6, 6, n, 'float32')
          .sigmoid()
          .mul(config.beta_end - config.beta_start)
          .add(config.beta_start),
      );
  }
}

/**
 * The cosine schedule (Nichol & Dhariwal 2021, Eq. 17): β_t = min(1 − ᾱ(t/T + 1/T) / ᾱ(t/T),
 * maxBeta) with ᾱ(s) = cos²((s + 0.008) / 1.008 · π/2), in float64, then float32.
 */
export function betasForAlphaBar(n: number, maxBeta = 0.999): Float32Array {
  const alphaBar = (s: number): number => Math.cos((((s + 0.008) / 1.008) * Math.PI) / 2) ** 2;
  const betas = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    betas[i] = Math.min(1 - alphaBar((i + 1) / n) / alphaBar(i / n), maxBeta);
  }
  return betas;
}

/**
 * Rescales betas to zero terminal SNR (Lin et al. 2023, "Common Diffusion Noise Schedules and
 * Sample Steps are Flawed", Algorithm 1): √ᾱ is shifted so ᾱ_T = 0 and scaled so ᾱ_1 is kept.
 */
export function rescaleZeroTerminalSnr(betas: Float32Array): Float32Array {
  return torchValues(() => {
    const n = betas.length;
    const alphasCumprod = cumprod(ops.rsubScalar(tensor(betas), 1));
    let sqrtBar = alphasCumprod.sqrt();
    const first = sqrtBar.select(0, 0).clone();
    const last = sqrtBar.select(0, n - 1).clone();
    sqrtBar = sqrtBar.sub(last).mul(first.div(first.sub(last)));
    const bar = sqrtBar.pow(2);
    const alphas = ops.cat([bar.slice(0, 0, 1), bar.slice(0, 1).div(bar.slice(0, 0, n - 1))]);
    return ops.rsubScalar(alphas, 1);
  });
}

/** α_t = 1 − β_t and ᾱ_t = α_1⋯α_t (float32; torch's CPU cumprod accumulates in double). */
export function alphasFromBetas(betas: Float32Array): {
  alphas: Float32Array;
  alphasCumprod: Float32Array;
} {
  const alphas = Float32Array.from(betas, (b) => 1 - b);
  const alphasCumprod = torchValues(() => cumprod(tensor(alphas)));
  return { alphas, alphasCumprod };
}

function cumprod(t: Tensor): Tensor {
  return call('aten::cumprod', '', t, 0, null) as Tensor;
}

function torchValues(fn: () => Tensor): Float32Array {
  return tidy(() => fn().toTypedArray() as Float32Array);
}

// ---- inference timesteps (numpy float64 arithmetic, as diffusers' set_timesteps) ----

/** numpy's round (and rint): halves go to the even neighbour. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** np.arange(start, stop, step) for floats: ceil((stop − start) / step) values start + i·δ. */
export function numpyArange(start: number, stop: number, step: number): number[] {
  const length = Math.max(0, Math.ceil((stop - start) / step));
  // numpy fills from the first two entries, so δ is (start + step) − start, not step.
  const delta = start + step - start;
  return Array.from({ length }, (_, i) =>
    i === 0 ? start : i === 1 ? start + step : start + i * delta,
  );
}

/** np.linspace(start, stop, num): start + i·step with the last value set to stop exactly. */
export function numpyLinspace(start: number, stop: number, num: number): number[] {
  if (num === 1) return [start];
  const step = (stop - start) / (num - 1);
  return Array.from({ length: num }, (_, i) => (i === num - 1 ? stop : i * step + start));
}

/**
 * The inference timesteps of diffusers' set_timesteps, in ascending order (DDIM reverses them;
 * PNDM builds its PLMS order from them). With T = num_train_timesteps and n steps:
 * - leading:  k·⌊T/n⌋ + steps_offset, k = 0..n−1
 * - trailing: round(T − k·T/n) − 1, k = 0..n−1 (ends at T − 1)
 * - linspace: round(k·(T − 1)/(n − 1)), k = 0..n−1 (spans 0..T − 1)
 */
export function spacedTimesteps(
  spacing: TimestepSpacing,
  numTrainTimesteps: number,
  numInferenceSteps: number,
  stepsOffset: number,
): number[] {
  const T = numTrainTimesteps;
  const n = numInferenceSteps;
  switch (spacing) {
    case 'leading': {
      const ratio = Math.floor(T / n);
      return Array.from({ length: n }, (_, k) => roundHalfEven(k * ratio) + stepsOffset);
    }
    case 'trailing':
      return numpyArange(T, 0, -T / n)
        .map((t) => roundHalfEven(t) - 1)
        .reverse();
    case 'linspace':
      return numpyLinspace(0, T - 1, n).map(roundHalfEven);
  }
}
