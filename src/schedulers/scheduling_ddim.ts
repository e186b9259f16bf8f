// DDIM sampling (Song, Meng & Ermon 2020, "Denoising Diffusion Implicit Models",
// arXiv:2010.02502), as diffusers 0.27.2's DDIMScheduler computes it.
//
// Notation (code name -> paper symbol). The DDIM paper writes α_t for what DDPM calls ᾱ_t; we
// write ᾱ_t, the cumulative product:
//   alpha_prod_t         -> ᾱ_t   = Π_{s≤t} (1 − β_s)
//   alpha_prod_t_prev    -> ᾱ_{t−1} (the previous *inference* timestep, t − T/n)
//   beta_prod_t          -> 1 − ᾱ_t
//   model_output         -> ε_θ(x_t) (or v, or x_0, by prediction_type)
//   pred_original_sample -> "predicted x_0"
//   pred_epsilon         -> ε_θ(x_t)
//   std_dev_t            -> σ_t(η)
//   pred_sample_direction-> "direction pointing to x_t"
//   prev_sample          -> x_{t−1}
//
// The scalar coefficients are computed with Math.fround after each operation: diffusers computes
// them on float32 0-d tensors, so this reproduces its rounding exactly.
import { tidy } from '../engine/scope.js';
import type { Tensor } from '../engine/tensor.js';
import type { BetaSchedule } from './betas.js';
import {
  COMMON_RULES,
  SAMPLE_CLIPPING_RULES,
  SchedulerBase,
  type CommonSchedulerConfig,
  type SampleClippingConfig,
  type SampleStepOutput,
  type StepNoiseOptions,
} from './scheduling_base.js';
import { checkTimestep, drawNoise, rules, type KeyRule } from './scheduling_utils.js';

const f32 = Math.fround;

export interface DDIMSchedulerConfig extends CommonSchedulerConfig, SampleClippingConfig {
  beta_schedule: Exclude<BetaSchedule, 'sigmoid'>;
  set_alpha_to_one: boolean;
  rescale_betas_zero_snr: boolean;
}

/** diffusers 0.27.2's defaults (DDIMScheduler.__init__). */
const DEFAULTS: Readonly<DDIMSchedulerConfig> = Object.freeze({
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: 'linear',
  trained_betas: null,
  clip_sample: true,
  set_alpha_to_one: true,
  steps_offset: 0,
  prediction_type: 'epsilon',
  thresholding: false,
  dynamic_thresholding_ratio: 0.995,
  clip_sample_range: 1.0,
  sample_max_value: 1.0,
  timestep_spacing: 'leading',
  rescale_betas_zero_snr: false,
});

const RULES: { readonly [K in keyof DDIMSchedulerConfig]: KeyRule } = {
  ...COMMON_RULES,
  ...SAMPLE_CLIPPING_RULES,
  set_alpha_to_one: rules.boolean,
  rescale_betas_zero_snr: rules.boolean,
};

/** The noise (from generator, or varianceNoise) is Eq. 12's random term, added when eta > 0. */
export interface DDIMStepOptions extends StepNoiseOptions {
  /** η of Eq. 16: 0 is deterministic DDIM, 1 is DDPM-like ancestral sampling. */
  eta?: number;
  /** Re-derive ε from the clipped x_0 (GLIDE's behaviour). */
  useClippedModelOutput?: boolean;
}

/** x_{t−1} and the predicted x_0. */
export type DDIMStepOutput = SampleStepOutput;

export class DDIMScheduler extends SchedulerBase<DDIMSchedulerConfig> {
  static readonly className = 'DDIMScheduler';
  static readonly defaults = DEFAULTS;
  static readonly rules = RULES;

  /** σ_t(η)² / η² = (1 − ᾱ_{t−1}) / (1 − ᾱ_t) · (1 − ᾱ_t / ᾱ_{t−1})  (Eq. 16 squared, η = 1). */
  private variance(t: number, prevT: number): number {
    const alphaProdT = this.alphaProd(t);
    const alphaProdTPrev = this.alphaProd(prevT);
    const betaProdT = f32(1 - alphaProdT);
    const betaProdTPrev = f32(1 - alphaProdTPrev);
    return f32(f32(betaProdTPrev / betaProdT) * f32(1 - f32(alphaProdT / alphaProdTPrev)));
  }

  /**
   * One reverse step x_t -> x_{t−1} (Eq. 12). Returns x_{t−1} and the predicted x_0; the
   * intermediates are freed here.
   */
  step(
    modelOutput: Tensor,
    timestep: number | Tensor,
    sample: Tensor,
    options: DDIMStepOptions = {},
  ): DDIMStepOutput {
    const n = this.stepCount();
    const { eta = 0, useClippedModelOutput = false, generator, varianceNoise } = options;
    if (!(Number.isFinite(eta) && eta >= 0)) {
      throw new RangeError(`Expected a non-negative number for eta but received ${eta}`);
    }
    this.checkNoiseOptions(options);
    const c = this.config;
    const t = checkTimestep(timestep, c.num_train_timesteps);

    return tidy(() => {
      // 1. previous timestep t − T/n (negative past the end)
      const prevT = t - Math.floor(c.num_train_timesteps / n);

      // 2. ᾱ_t, ᾱ_{t−1}, 1 − ᾱ_t
      const alphaProdT = this.alphaProd(t);
      const alphaProdTPrev = this.alphaProd(prevT);
      const betaProdT = f32(1 - alphaProdT);
      const sqrtAlphaProdT = f32(Math.sqrt(alphaProdT));
      const sqrtBetaProdT = f32(Math.sqrt(betaProdT));

      // 3. predicted x_0 = (x_t − √(1−ᾱ_t) ε_θ) / √ᾱ_t, the first term of Eq. 12 (Eq. 9 solved for x_0)
      let predOriginalSample: Tensor;
      let predEpsilon: Tensor;
      switch (c.prediction_type) {
        case 'epsilon':
          predOriginalSample = sample.sub(modelOutput.mul(sqrtBetaProdT)).div(sqrtAlphaProdT);
          predEpsilon = modelOutput;
          break;
        case 'sample':
          predOriginalSample = modelOutput;
          predEpsilon = sample.sub(predOriginalSample.mul(sqrtAlphaProdT)).div(sqrtBetaProdT);
          break;
        case 'v_prediction':
          // v = √ᾱ_t ε − √(1−ᾱ_t) x_0, so x_0 = √ᾱ_t x_t − √(1−ᾱ_t) v and ε = √ᾱ_t v + √(1−ᾱ_t) x_t
          predOriginalSample = sample.mul(sqrtAlphaProdT).sub(modelOutput.mul(sqrtBetaProdT));
          predEpsilon = modelOutput.mul(sqrtAlphaProdT).add(sample.mul(sqrtBetaProdT));
          break;
      }

      // 4. clip the predicted x_0 to [−clip_sample_range, clip_sample_range]
      if (c.clip_sample) {
        predOriginalSample = predOriginalSample.clamp(-c.clip_sample_range, c.clip_sample_range);
      }

      // 5. σ_t(η) = η √((1 − ᾱ_{t−1}) / (1 − ᾱ_t)) √(1 − ᾱ_t / ᾱ_{t−1})  (Eq. 16)
      const stdDevT = f32(f32(eta) * f32(Math.sqrt(this.variance(t, prevT))));

      if (useClippedModelOutput) {
        // ε re-derived from the clipped x_0, as GLIDE does
        predEpsilon = sample.sub(predOriginalSample.mul(sqrtAlphaProdT)).div(sqrtBetaProdT);
      }

      // 6. direction pointing to x_t: √(1 − ᾱ_{t−1} − σ_t²) ε_θ  (Eq. 12, second term)
      const directionCoeff = f32(Math.sqrt(f32(f32(1 - alphaProdTPrev) - f32(stdDevT * stdDevT))));
      const predSampleDirection = predEpsilon.mul(directionCoeff);

      // 7. x_{t−1} = √ᾱ_{t−1} x_0 + direction  (Eq. 12 without its random term)
      let prevSample = predOriginalSample
        .mul(f32(Math.sqrt(alphaProdTPrev)))
        .add(predSampleDirection);

      // 8. + σ_t ε_t with ε_t ~ N(0, I)  (Eq. 12, third term)
      if (eta > 0) {
        const noise = varianceNoise ?? drawNoise(modelOutput, generator);
        prevSample = prevSample.add(noise.mul(stdDevT));
      }
      if (predOriginalSample === modelOutput) predOriginalSample = modelOutput.clone();
      return { prevSample, predOriginalSample };
    });
  }
}
