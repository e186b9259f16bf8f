// PNDM's pseudo linear multi-step sampler (Liu et al. 2022, "Pseudo Numerical Methods for
// Diffusion Models on Manifolds", arXiv:2202.09778) with skip_prk_steps: only the PLMS steps,
// as in Stable Diffusion 1.5's default scheduler config and diffusers 0.27.2's PNDMScheduler
// (after crowsonkb's PLMS sampler for latent diffusion). The Runge-Kutta (PRK) warm-up is not
// implemented: skip_prk_steps must be true.
//
// Notation (code name -> paper symbol):
//   alpha_prod_t      -> ᾱ_t (the paper's α_t)
//   alpha_prod_t_prev -> ᾱ_{t−δ}, δ = T/n
//   model_output      -> ε_θ(x_t, t), or its linear multi-step combination e'_t (PLMS: the
//                        Adams–Bashforth weights of orders 1–4 over past ε)
//   ets               -> the last four ε_θ (e_{t}, e_{t+δ}, ...)
//   prev_sample       -> x_{t−δ} = φ(x_t, e'_t, t, t−δ), the transfer part (Eq. 9)
//
// Without PRK steps, the first step is an Euler step and the second repeats the first timestep
// with the mean of the two ε (a Heun-like start); hence n + 1 timesteps for n steps (the second
// one repeated: 901, 801, 801, 701, ... for SD 1.5 with 10 steps).
import { keep, tidy } from '../engine/scope.js';
import type { Tensor } from '../engine/tensor.js';
import type { BetaSchedule } from './betas.js';
import { COMMON_RULES, SchedulerBase, type CommonSchedulerConfig } from './scheduling_base.js';
import { checkTimestep, rules, type KeyRule } from './scheduling_utils.js';

const f32 = Math.fround;

export interface PNDMSchedulerConfig extends CommonSchedulerConfig {
  beta_schedule: Exclude<BetaSchedule, 'sigmoid'>;
  /** Only true (PLMS only) is implemented. diffusers' default is false. */
  skip_prk_steps: boolean;
  set_alpha_to_one: boolean;
  prediction_type: 'epsilon' | 'v_prediction';
}

/** diffusers 0.27.2's defaults (PNDMScheduler.__init__), except that skip_prk_steps must be true. */
const DEFAULTS: Readonly<PNDMSchedulerConfig> = Object.freeze({
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: 'linear',
  trained_betas: null,
  skip_prk_steps: false,
  set_alpha_to_one: false,
  prediction_type: 'epsilon',
  timestep_spacing: 'leading',
  steps_offset: 0,
});

const RULES: { readonly [K in keyof PNDMSchedulerConfig]: KeyRule } = {
  ...COMMON_RULES,
  skip_prk_steps: {
    test: (v) => v === true,
    allowed: 'true (PLMS only; the PRK warm-up steps are not implemented)',
  },
  set_alpha_to_one: rules.boolean,
  prediction_type: rules.oneOf('epsilon', 'v_prediction'),
};

export interface PNDMStepOutput {
  prevSample: Tensor;
}

export class PNDMScheduler extends SchedulerBase<PNDMSchedulerConfig> {
  static readonly className = 'PNDMScheduler';
  static readonly defaults = DEFAULTS;
  static readonly rules = RULES;
  /** PNDM's order: the PLMS combination uses up to four past ε. */
  readonly pndmOrder = 4;
  /** The PLMS timesteps, descending, the second one repeated (n + 1 for n steps); [] at first. */
  override timesteps: readonly number[] = [];
  /** Steps taken since setTimesteps. */
  counter = 0;
  // Running state. These are the scheduler's own copies (callers free their tensors in tidy()).
  private ets: Tensor[] = [];
  private curSample: Tensor | null = null;

  /** Chooses the timesteps for n steps and clears the multi-step history. */
  override setTimesteps(numInferenceSteps: number): void {
    const ts = this.spacedTimesteps(numInferenceSteps);
    // ascending [.., t_{n−2}, t_{n−2}, t_{n−1}], then descending: the second timestep repeats
    this.timesteps = [...ts.slice(0, -1), ...ts.slice(-2, -1), ...ts.slice(-1)].reverse();
    this.reset();
  }

  /** Frees the multi-step history (setTimesteps does this too). */
  reset(): void {
    for (const e of this.ets) e.dispose();
    this.ets = [];
    this.curSample?.dispose();
    this.curSample = null;
    this.counter = 0;
  }

  /**
   * One PLMS step. Call it with the timesteps in order (the repeated one included): the
   * scheduler keeps copies of past model outputs and of the first sample.
   */
  step(modelOutput: Tensor, timestep: number | Tensor, sample: Tensor): PNDMStepOutput {
    const n = this.stepCount();
    const T = this.config.num_train_timesteps;
    let t = checkTimestep(timestep, T);
    const delta = Math.floor(T / n);
    let prevT = t - delta;

    if (this.counter !== 1) {
      while (this.ets.length > 3) this.ets.shift()!.dispose();
      this.ets.push(keep(modelOutput.clone()));
    } else {
      // the repeated timestep: redo the first step from x_T with the averaged ε
      prevT = t;
      t = t + delta;
    }

    const ets = this.ets;
    const prevSample = tidy(() => {
      let x = sample;
      let e: Tensor;
      if (ets.length === 1 && this.counter === 0) {
        // Euler step with e_t (and remember x_T for the second step)
        e = modelOutput;
        this.curSample = keep(sample.clone());
      } else if (ets.length === 1 && this.counter === 1) {
        // e' = (e_t + e_{t−δ}) / 2 from x_T
        e = modelOutput.add(ets[0]!).div(2);
        x = this.curSample!;
      } else if (ets.length === 2) {
        // e' = (3 e_t − e_{t+δ}) / 2
        e = ets[1]!.mul(3).sub(ets[0]!).div(2);
      } else if (ets.length === 3) {
        // e' = (23 e_t − 16 e_{t+δ} + 5 e_{t+2δ}) / 12
        e = ets[2]!.mul(23).sub(ets[1]!.mul(16)).add(ets[0]!.mul(5)).div(12);
      } else {
        // e' = (55 e_t − 59 e_{t+δ} + 37 e_{t+2δ} − 9 e_{t+3δ}) / 24  (fourth order, PLMS)
        e = ets[3]!
          .mul(55)
          .sub(ets[2]!.mul(59))
          .add(ets[1]!.mul(37))
          .sub(ets[0]!.mul(9))
          .mul(1 / 24);
      }
      return this.prevSampleFrom(x, t, prevT, e);
    });
    if (this.counter === 1 && this.curSample !== null) {
      this.curSample.dispose();
      this.curSample = null;
    }
    this.counter += 1;
    return { prevSample };
  }

  /**
   * The transfer part φ of Eq. 9:
   * x_{t−δ} = √(ᾱ_{t−δ}/ᾱ_t) x_t − (ᾱ_{t−δ} − ᾱ_t) e / (ᾱ_t √(1−ᾱ_{t−δ}) + √(ᾱ_t (1−ᾱ_t) ᾱ_{t−δ})).
   */
  private prevSampleFrom(sample: Tensor, t: number, prevT: number, modelOutput: Tensor): Tensor {
    const alphaProdT = this.alphasCumprod[t]!;
    const alphaProdTPrev = this.alphaProd(prevT);
    const betaProdT = f32(1 - alphaProdT);
    const betaProdTPrev = f32(1 - alphaProdTPrev);

    let e = modelOutput;
    if (this.config.prediction_type === 'v_prediction') {
      // ε = √ᾱ_t v + √(1−ᾱ_t) x_t
      e = e.mul(f32(Math.sqrt(alphaProdT))).add(sample.mul(f32(Math.sqrt(betaProdT))));
    }
    const sampleCoeff = f32(Math.sqrt(f32(alphaProdTPrev / alphaProdT)));
    const denomCoeff = f32(
      f32(alphaProdT * f32(Math.sqrt(betaProdTPrev))) +
        f32(Math.sqrt(f32(f32(alphaProdT * betaProdT) * alphaProdTPrev))),
    );
    return sample.mul(sampleCoeff).sub(e.mul(f32(alphaProdTPrev - alphaProdT)).div(denomCoeff));
  }
}
