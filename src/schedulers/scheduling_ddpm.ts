// DDPM (Ho, Jain & Abbeel 2020, "Denoising Diffusion Probabilistic Models", arXiv:2006.11239),
// as diffusers 0.27.2's DDPMScheduler: the noise schedule and forward process used for training
// (add_noise, get_velocity, the target of each prediction_type), and ancestral sampling.
//
// Notation (code name -> paper symbol):
//   betas[t]              -> β_t
//   alphas[t]             -> α_t = 1 − β_t
//   alpha_prod_t          -> ᾱ_t = Π_{s≤t} α_s
//   alpha_prod_t_prev     -> ᾱ_{t'} at the previous inference timestep t' (= t − 1 with T steps)
//   current_alpha_t       -> ᾱ_t / ᾱ_{t'} (α_t when t' = t − 1); current_beta_t = 1 − that
//   pred_original_sample  -> x̂_0
//   pred_prev_sample      -> μ̃_t(x_t, x̂_0), the posterior mean (Eq. 7)
//   variance              -> β̃_t = (1 − ᾱ_{t'}) / (1 − ᾱ_t) · β_t (Eq. 7) or β_t ("fixed_large")
import { tidy } from '../engine/scope.js';
import type { Tensor } from '../engine/tensor.js';
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

export type DDPMVarianceType = 'fixed_small' | 'fixed_small_log' | 'fixed_large';

export interface DDPMSchedulerConfig extends CommonSchedulerConfig, SampleClippingConfig {
  /** The learned variances ("learned", "learned_range") are not implemented. */
  variance_type: DDPMVarianceType;
  rescale_betas_zero_snr: boolean;
}

/** diffusers 0.27.2's defaults (DDPMScheduler.__init__). */
const DEFAULTS: Readonly<DDPMSchedulerConfig> = Object.freeze({
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: 'linear',
  trained_betas: null,
  variance_type: 'fixed_small',
  clip_sample: true,
  prediction_type: 'epsilon',
  thresholding: false,
  dynamic_thresholding_ratio: 0.995,
  clip_sample_range: 1.0,
  sample_max_value: 1.0,
  timestep_spacing: 'leading',
  steps_offset: 0,
  rescale_betas_zero_snr: false,
});

const RULES: { readonly [K in keyof DDPMSchedulerConfig]: KeyRule } = {
  ...COMMON_RULES,
  ...SAMPLE_CLIPPING_RULES,
  beta_schedule: rules.oneOf('linear', 'scaled_linear', 'squaredcos_cap_v2', 'sigmoid'),
  variance_type: rules.oneOf('fixed_small', 'fixed_small_log', 'fixed_large'),
  rescale_betas_zero_snr: rules.boolean,
};

/** The noise (drawn from generator, or varianceNoise) is added at t > 0. */
export type DDPMStepOptions = StepNoiseOptions;

/** x_{t'} and the predicted x̂_0. */
export type DDPMStepOutput = SampleStepOutput;

export class DDPMScheduler extends SchedulerBase<DDPMSchedulerConfig> {
  static readonly className = 'DDPMScheduler';
  static readonly defaults = DEFAULTS;
  static readonly rules = RULES;

  /** The previous sampling timestep t − T/n (t − 1 before setTimesteps). */
  previousTimestep(t: number): number {
    const n = this.numInferenceSteps ?? this.config.num_train_timesteps;
    return t - Math.floor(this.config.num_train_timesteps / n);
  }

  /** The variance of p(x_{t'} | x_t) for variance_type, as diffusers' _get_variance (a std for fixed_small_log). */
  private variance(t: number): number {
    const alphaProdT = this.alphasCumprod[t]!;
    const alphaProdTPrev = this.alphaProd(this.previousTimestep(t));
    const currentBetaT = f32(1 - f32(alphaProdT / alphaProdTPrev));
    // β̃_t = (1 − ᾱ_{t'}) / (1 − ᾱ_t) · β_t  (Eq. 7), kept above 0 for the log
    const variance = Math.max(
      f32(f32(f32(1 - alphaProdTPrev) / f32(1 - alphaProdT)) * currentBetaT),
      f32(1e-20),
    );
    switch (this.config.variance_type) {
      case 'fixed_small':
        return variance;
      case 'fixed_small_log':
        return f32(Math.exp(f32(0.5 * f32(Math.log(variance)))));
      case 'fixed_large':
        return currentBetaT;
    }
  }

  /** One ancestral step x_t -> x_{t'} (Eq. 6–7, x̂_0 from Eq. 15); noise is added for t > 0. */
  step(
    modelOutput: Tensor,
    timestep: number | Tensor,
    sample: Tensor,
    options: DDPMStepOptions = {},
  ): DDPMStepOutput {
    const { generator, varianceNoise } = options;
    this.checkNoiseOptions(options);
    const c = this.config;
    const t = checkTimestep(timestep, c.num_train_timesteps);
    return tidy(() => {
      // 1. ᾱ_t, ᾱ_{t'}, and the one-step α, β between them
      const alphaProdT = this.alphasCumprod[t]!;
      const alphaProdTPrev = this.alphaProd(this.previousTimestep(t));
      const betaProdT = f32(1 - alphaProdT);
      const betaProdTPrev = f32(1 - alphaProdTPrev);
      const currentAlphaT = f32(alphaProdT / alphaProdTPrev);
      const currentBetaT = f32(1 - currentAlphaT);

      // 2. x̂_0 = (x_t − √(1−ᾱ_t) ε_θ) / √ᾱ_t  (Eq. 15)
      let predOriginalSample: Tensor;
      switch (c.prediction_type) {
        case 'epsilon':
          predOriginalSample = sample
            .sub(modelOutput.mul(f32(Math.sqrt(betaProdT))))
            .div(f32(Math.sqrt(alphaProdT)));
          break;
        case 'sample':
          predOriginalSample = modelOutput.clone();
          break;
        case 'v_prediction':
          predOriginalSample = sample
            .mul(f32(Math.sqrt(alphaProdT)))
            .sub(modelOutput.mul(f32(Math.sqrt(betaProdT))));
          break;
      }

      // 3. clip x̂_0
      if (c.clip_sample) {
        predOriginalSample = predOriginalSample.clamp(-c.clip_sample_range, c.clip_sample_range);
      }

      // 4. posterior mean coefficients: √ᾱ_{t'} β_t / (1−ᾱ_t) for x̂_0, √α_t (1−ᾱ_{t'}) / (1−ᾱ_t) for x_t (Eq. 7)
      const originalCoeff = f32(f32(f32(Math.sqrt(alphaProdTPrev)) * currentBetaT) / betaProdT);
      const currentCoeff = f32(f32(f32(Math.sqrt(currentAlphaT)) * betaProdTPrev) / betaProdT);

      // 5. μ̃_t = originalCoeff · x̂_0 + currentCoeff · x_t
      let prevSample = predOriginalSample.mul(originalCoeff).add(sample.mul(currentCoeff));

      // 6. x_{t'} = μ̃_t + σ_t z, z ~ N(0, I), for t > 0 (Eq. 6 / Algorithm 2)
      if (t > 0) {
        const noise = varianceNoise ?? drawNoise(modelOutput, generator);
        const v = this.variance(t);
        const std = c.variance_type === 'fixed_small_log' ? v : f32(Math.sqrt(v));
        prevSample = prevSample.add(noise.mul(std));
      }
      return { prevSample, predOriginalSample };
    });
  }
}
