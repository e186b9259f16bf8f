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
import type { Generator } from '../engine/random.js';
import type { Tensor } from '../engine/tensor.js';
import {
  alphasFromBetas,
  makeBetas,
  rescaleZeroTerminalSnr,
  spacedTimesteps,
  type BetaSchedule,
  type TimestepSpacing,
} from './betas.js';
import {
  addNoise,
  checkTimestep,
  drawNoise,
  getVelocity,
  readSchedulerConfig,
  resolveConfig,
  rules,
  SchedulerConfigError,
  splitConfig,
  trainingTarget,
  type KeyRule,
  type PredictionType,
  type Timesteps,
  checkStepCount,
  descendingTimesteps,
} from './scheduling_utils.js';

const f32 = Math.fround;

export interface DDIMSchedulerConfig {
  num_train_timesteps: number;
  beta_start: number;
  beta_end: number;
  beta_schedule: Exclude<BetaSchedule, 'sigmoid'>;
  trained_betas: readonly number[] | null;
  clip_sample: boolean;
  set_alpha_to_one: boolean;
  steps_offset: number;
  prediction_type: PredictionType;
  /** Dynamic thresholding (Imagen) is not implemented: only false. */
  thresholding: boolean;
  dynamic_thresholding_ratio: number;
  clip_sample_range: number;
  sample_max_value: number;
  timestep_spacing: TimestepSpacing;
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
  num_train_timesteps: rules.positiveInt,
  beta_start: rules.number,
  beta_end: rules.number,
  beta_schedule: rules.oneOf('linear', 'scaled_linear', 'squaredcos_cap_v2'),
  trained_betas: rules.betasOrNull,
  clip_sample: rules.boolean,
  set_alpha_to_one: rules.boolean,
  steps_offset: rules.nonNegativeInt,
  prediction_type: rules.oneOf('epsilon', 'v_prediction', 'sample'),
  thresholding: rules.oneOf(false),
  dynamic_thresholding_ratio: rules.number,
  clip_sample_range: rules.positiveNumber,
  sample_max_value: rules.positiveNumber,
  timestep_spacing: rules.oneOf('leading', 'trailing', 'linspace'),
  rescale_betas_zero_snr: rules.boolean,
};

export interface DDIMStepOptions {
  /** η of Eq. 16: 0 is deterministic DDIM, 1 is DDPM-like ancestral sampling. */
  eta?: number;
  /** Re-derive ε from the clipped x_0 (GLIDE's behaviour). */
  useClippedModelOutput?: boolean;
  /** Draws the noise of Eq. 12 when eta > 0 (on the generator's device, then moved). */
  generator?: Generator;
  /** The noise of Eq. 12 itself, instead of drawing it. */
  varianceNoise?: Tensor;
}

export interface DDIMStepOutput {
  /** x_{t−1}. */
  prevSample: Tensor;
  /** The predicted x_0. */
  predOriginalSample: Tensor;
}

export class DDIMScheduler {
  static readonly defaults = DEFAULTS;
  readonly config: Readonly<DDIMSchedulerConfig>;
  /** Keys given to fromConfig that DDIM does not use (kept, as diffusers keeps them). */
  readonly ignoredConfig: Readonly<Record<string, unknown>>;
  readonly betas: Float32Array;
  readonly alphas: Float32Array;
  /** ᾱ_t for t = 0..T−1 (float32, as diffusers). */
  readonly alphasCumprod: Float32Array;
  /** ᾱ used past the last step: 1, or ᾱ_0 when set_alpha_to_one is false. */
  readonly finalAlphaCumprod: number;
  readonly initNoiseSigma = 1;
  readonly order = 1;
  numInferenceSteps: number | null = null;
  /** The inference timesteps, descending; all T training timesteps until setTimesteps. */
  timesteps: readonly number[];

  constructor(
    config: Partial<DDIMSchedulerConfig> = {},
    ignoredConfig: Record<string, unknown> = {},
  ) {
    this.config = resolveConfig('DDIMScheduler', DEFAULTS, RULES, config);
    this.ignoredConfig = Object.freeze({ ...ignoredConfig });
    const c = this.config;
    if (c.trained_betas !== null && c.trained_betas.length !== c.num_train_timesteps) {
      throw new SchedulerConfigError(
        `DDIMScheduler: trained_betas has ${c.trained_betas.length} values but num_train_timesteps is ${c.num_train_timesteps}`,
      );
    }
    let betas = makeBetas(c);
    if (c.rescale_betas_zero_snr) betas = rescaleZeroTerminalSnr(betas);
    this.betas = betas;
    ({ alphas: this.alphas, alphasCumprod: this.alphasCumprod } = alphasFromBetas(betas));
    this.finalAlphaCumprod = c.set_alpha_to_one ? 1 : this.alphasCumprod[0]!;
    this.timesteps = descendingTimesteps(c.num_train_timesteps);
  }

  /**
   * From a scheduler_config.json object, with diffusers' from_config rules: another scheduler's
   * keys are ignored (so SD 1.5's PNDM config loads into DDIM), missing keys take DDIM's
   * defaults, and `overrides` win over the file.
   */
  static fromConfig(
    json: Readonly<Record<string, unknown>>,
    overrides: Partial<DDIMSchedulerConfig> = {},
  ): DDIMScheduler {
    const { known, ignored } = splitConfig(DEFAULTS, json);
    return new DDIMScheduler({ ...known, ...overrides }, ignored);
  }

  /** From `folder/scheduler_config.json` or a pipeline's `folder/scheduler/scheduler_config.json`. */
  static fromPretrained(
    folder: string,
    overrides: Partial<DDIMSchedulerConfig> = {},
  ): DDIMScheduler {
    return DDIMScheduler.fromConfig(readSchedulerConfig(folder), overrides);
  }

  /** Chooses n inference timesteps by timestep_spacing (see spacedTimesteps). */
  setTimesteps(numInferenceSteps: number): void {
    const T = this.config.num_train_timesteps;
    checkStepCount(numInferenceSteps, T);
    this.numInferenceSteps = numInferenceSteps;
    this.timesteps = spacedTimesteps(
      this.config.timestep_spacing,
      T,
      numInferenceSteps,
      this.config.steps_offset,
    ).reverse();
  }

  /** DDIM does not scale the model input; here for a uniform scheduler interface. */
  scaleModelInput(sample: Tensor, _timestep?: number | Tensor): Tensor {
    return sample;
  }

  /** ᾱ at a timestep, or the final ᾱ for a negative one (past the last step). */
  private alphaProd(t: number): number {
    return t >= 0 ? this.alphasCumprod[t]! : this.finalAlphaCumprod;
  }

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
    const n = this.numInferenceSteps;
    if (n === null) {
      throw new Error('DDIMScheduler.step needs setTimesteps(n) first (numInferenceSteps is null)');
    }
    const { eta = 0, useClippedModelOutput = false, generator, varianceNoise } = options;
    if (!(Number.isFinite(eta) && eta >= 0)) {
      throw new RangeError(`Expected a non-negative number for eta but received ${eta}`);
    }
    if (varianceNoise !== undefined && generator !== undefined) {
      throw new Error('DDIMScheduler.step takes a generator or varianceNoise, not both');
    }
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

  /** Forward process x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, one timestep per batch element or one for all. */
  addNoise(originalSamples: Tensor, noise: Tensor, timesteps: Timesteps): Tensor {
    return addNoise(this.alphasCumprod, originalSamples, noise, timesteps);
  }

  /** v = √ᾱ_t ε − √(1 − ᾱ_t) x_0. */
  getVelocity(sample: Tensor, noise: Tensor, timesteps: Timesteps): Tensor {
    return getVelocity(this.alphasCumprod, sample, noise, timesteps);
  }

  /** The training target for prediction_type: ε, v, or x_0. */
  trainingTarget(originalSamples: Tensor, noise: Tensor, timesteps: Timesteps): Tensor {
    return trainingTarget(
      this.config.prediction_type,
      this.alphasCumprod,
      originalSamples,
      noise,
      timesteps,
    );
  }
}
