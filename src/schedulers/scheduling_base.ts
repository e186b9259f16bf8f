// What every scheduler class shares, as diffusers' SchedulerMixin and ConfigMixin give it: the
// config checked against the class's defaults and rules, from_config / from_pretrained, the noise
// schedule (β, α, ᾱ), timestep spacing, and the forward process. A scheduler class declares its
// config (className, defaults, rules) as statics and adds its own step math.
import type { Generator } from '../engine/random.js';
import type { Tensor } from '../engine/tensor.js';
import {
  alphasFromBetas,
  makeBetas,
  rescaleZeroTerminalSnr,
  spacedTimesteps,
  type BetaConfig,
  type TimestepSpacing,
} from './betas.js';
import {
  addNoise,
  checkStepCount,
  descendingTimesteps,
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
} from './scheduling_utils.js';

/** The config keys every scheduler has. */
export interface CommonSchedulerConfig extends BetaConfig {
  prediction_type: PredictionType;
  timestep_spacing: TimestepSpacing;
  steps_offset: number;
}

/** Keys that some schedulers have and the schedule depends on where they are present. */
interface ScheduleOptions {
  /** ᾱ past the last step: 1 when true, ᾱ_0 when false; 1 without the key (diffusers' DDPM). */
  set_alpha_to_one?: boolean;
  rescale_betas_zero_snr?: boolean;
}

type Rules<C> = { readonly [K in keyof C]: KeyRule };

/** The rules of the keys every scheduler has; a class may narrow one (PNDM's prediction_type). */
export const COMMON_RULES: Rules<CommonSchedulerConfig> = {
  num_train_timesteps: rules.positiveInt,
  beta_start: rules.number,
  beta_end: rules.number,
  beta_schedule: rules.oneOf('linear', 'scaled_linear', 'squaredcos_cap_v2'),
  trained_betas: rules.betasOrNull,
  prediction_type: rules.oneOf('epsilon', 'v_prediction', 'sample'),
  timestep_spacing: rules.oneOf('leading', 'trailing', 'linspace'),
  steps_offset: rules.nonNegativeInt,
};

/** The keys that bound the predicted x_0 (DDPM and DDIM). */
export interface SampleClippingConfig {
  clip_sample: boolean;
  /** Dynamic thresholding (Imagen) is not implemented: only false. */
  thresholding: boolean;
  dynamic_thresholding_ratio: number;
  clip_sample_range: number;
  sample_max_value: number;
}

export const SAMPLE_CLIPPING_RULES: Rules<SampleClippingConfig> = {
  clip_sample: rules.boolean,
  thresholding: rules.oneOf(false),
  dynamic_thresholding_ratio: rules.number,
  clip_sample_range: rules.positiveNumber,
  sample_max_value: rules.positiveNumber,
};

/** The statics a scheduler class declares, and its constructor: all that fromConfig needs. */
export interface SchedulerClass<C, S = unknown> {
  /** The name config errors begin with. */
  readonly className: string;
  /** diffusers' defaults (the class's __init__ keyword defaults); their keys are the known keys. */
  readonly defaults: Readonly<C>;
  readonly rules: Rules<C>;
  new (config?: Partial<C>, ignoredConfig?: Record<string, unknown>): S;
}

/** What DDPM's and DDIM's steps return. */
export interface SampleStepOutput {
  /** The sample at the previous timestep. */
  prevSample: Tensor;
  /** The predicted x_0. */
  predOriginalSample: Tensor;
}

/** The noise sources a stochastic step accepts: a generator to draw from, or the noise itself. */
export interface StepNoiseOptions {
  /** Draws the step's noise (on the generator's device, then moved to the sample's). */
  generator?: Generator;
  /** The step's noise itself, instead of drawing it. */
  varianceNoise?: Tensor;
}

export abstract class SchedulerBase<C extends CommonSchedulerConfig> {
  readonly config: Readonly<C>;
  /** Keys given to fromConfig that this class does not use (kept, as diffusers keeps them). */
  readonly ignoredConfig: Readonly<Record<string, unknown>>;
  readonly betas: Float32Array;
  readonly alphas: Float32Array;
  /** ᾱ_t for t = 0..T−1 (float32, as diffusers). */
  readonly alphasCumprod: Float32Array;
  /** ᾱ used past the last step (see set_alpha_to_one). */
  readonly finalAlphaCumprod: number;
  readonly initNoiseSigma = 1;
  readonly order = 1;
  numInferenceSteps: number | null = null;
  /** The inference timesteps, descending; all T training timesteps until setTimesteps. */
  timesteps: readonly number[];
  protected readonly className: string;

  /**
   * Checks `config` against the class's rules (unknown keys are an error here, as keyword
   * arguments are in Python; fromConfig sets them aside) and builds the noise schedule.
   */
  constructor(config: Partial<C> = {}, ignoredConfig: Record<string, unknown> = {}) {
    // The subclass being built declares the config; new.target is that class.
    const cls = new.target as unknown as SchedulerClass<C>;
    this.className = cls.className;
    this.config = resolveConfig(cls.className, cls.defaults, cls.rules, config);
    this.ignoredConfig = Object.freeze({ ...ignoredConfig });
    const c: Readonly<CommonSchedulerConfig & ScheduleOptions> = this.config;
    this.betas = scheduleBetas(cls.className, c);
    ({ alphas: this.alphas, alphasCumprod: this.alphasCumprod } = alphasFromBetas(this.betas));
    this.finalAlphaCumprod = c.set_alpha_to_one === false ? this.alphasCumprod[0]! : 1;
    this.timesteps = descendingTimesteps(c.num_train_timesteps);
  }

  /**
   * From a scheduler_config.json object, with diffusers' from_config rules: another scheduler's
   * keys are ignored but kept (so SD 1.5's PNDM config loads into DDIM), keys starting with "_"
   * are dropped, missing keys take this class's defaults, and `overrides` win over the file.
   */
  static fromConfig<C, S>(
    this: SchedulerClass<C, S>,
    json: Readonly<Record<string, unknown>>,
    overrides: NoInfer<Partial<C>> = {},
  ): S {
    return fromConfig(this, json, overrides);
  }

  /** From `folder/scheduler_config.json` or a pipeline's `folder/scheduler/`. */
  static fromPretrained<C, S>(
    this: SchedulerClass<C, S>,
    folder: string,
    overrides: NoInfer<Partial<C>> = {},
  ): S {
    return fromConfig(this, readSchedulerConfig(folder), overrides);
  }

  /** Chooses n inference timesteps by timestep_spacing (see spacedTimesteps), descending. */
  setTimesteps(numInferenceSteps: number): void {
    this.timesteps = this.spacedTimesteps(numInferenceSteps).reverse();
  }

  /** Sets numInferenceSteps and returns its timesteps, ascending, for setTimesteps to order. */
  protected spacedTimesteps(numInferenceSteps: number): number[] {
    const c = this.config;
    checkStepCount(numInferenceSteps, c.num_train_timesteps);
    this.numInferenceSteps = numInferenceSteps;
    return spacedTimesteps(
      c.timestep_spacing,
      c.num_train_timesteps,
      numInferenceSteps,
      c.steps_offset,
    );
  }

  /** These schedulers do not scale the model input; here for a uniform scheduler interface. */
  scaleModelInput(sample: Tensor, _timestep?: number | Tensor): Tensor {
    return sample;
  }

  /** x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε, with one timestep per batch element or one for all. */
  addNoise(originalSamples: Tensor, noise: Tensor, timesteps: Timesteps): Tensor {
    return addNoise(this.alphasCumprod, originalSamples, noise, timesteps);
  }

  /** v = √ᾱ_t ε − √(1 − ᾱ_t) x_0, the v_prediction target. */
  getVelocity(sample: Tensor, noise: Tensor, timesteps: Timesteps): Tensor {
    return getVelocity(this.alphasCumprod, sample, noise, timesteps);
  }

  /** The training target for prediction_type: ε, v or x_0. */
  trainingTarget(originalSamples: Tensor, noise: Tensor, timesteps: Timesteps): Tensor {
    return trainingTarget(
      this.config.prediction_type,
      this.alphasCumprod,
      originalSamples,
      noise,
      timesteps,
    );
  }

  /** ᾱ at a timestep, or the final ᾱ for a negative one (past the last step). */
  protected alphaProd(t: number): number {
    return t >= 0 ? this.alphasCumprod[t]! : this.finalAlphaCumprod;
  }

  /** numInferenceSteps, which step needs: setTimesteps must have been called. */
  protected stepCount(): number {
    const n = this.numInferenceSteps;
    if (n === null) {
      throw new Error(
        `${this.className}.step needs setTimesteps(n) first (numInferenceSteps is null)`,
      );
    }
    return n;
  }

  /** Throws when a step is given both a generator and the noise itself. */
  protected checkNoiseOptions(options: StepNoiseOptions): void {
    if (options.varianceNoise !== undefined && options.generator !== undefined) {
      throw new Error(`${this.className}.step takes a generator or varianceNoise, not both`);
    }
  }
}

/** SchedulerBase.fromConfig for a class chosen at run time (see schedulerFromConfig). */
export function fromConfig<C, S>(
  cls: SchedulerClass<C, S>,
  json: Readonly<Record<string, unknown>>,
  overrides: Partial<C> = {},
): S {
  const { known, ignored } = splitConfig(cls.defaults, json);
  return new cls({ ...known, ...overrides }, ignored);
}

/** β from trained_betas or the named schedule, rescaled to zero terminal SNR if asked. */
function scheduleBetas(
  className: string,
  c: Readonly<CommonSchedulerConfig & ScheduleOptions>,
): Float32Array {
  if (c.trained_betas !== null && c.trained_betas.length !== c.num_train_timesteps) {
    throw new SchedulerConfigError(
      `${className}: trained_betas has ${c.trained_betas.length} values but num_train_timesteps is ${c.num_train_timesteps}`,
    );
  }
  const betas = makeBetas(c);
  return c.rescale_betas_zero_snr === true ? rescaleZeroTerminalSnr(betas) : betas;
}
