// What the schedulers share besides their base class: config parsing with diffusers' from_config
// rules, reading scheduler_config.json, timestep checks, and the forward-process helpers
// (add_noise, get_velocity).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { tidy } from '../engine/scope.js';
import { randn, tensor } from '../engine/creation.js';
import type { Generator } from '../engine/random.js';
import { Tensor } from '../engine/tensor.js';
import * as ops from '../engine/ops.generated.js';
import { ModelLoadError, readConfig } from '../models/loading.js';

export class SchedulerConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SchedulerConfigError';
  }
}

/** How one config key is checked: a test and the words for what it allows. */
export interface KeyRule {
  test: (value: unknown) => boolean;
  allowed: string;
}

export const rules = {
  oneOf: (...values: readonly (string | boolean)[]): KeyRule => ({
    test: (v) => values.includes(v as string | boolean),
    allowed: values.map((v) => JSON.stringify(v)).join(', '),
  }),
  boolean: { test: (v) => typeof v === 'boolean', allowed: 'true, false' } as KeyRule,
  positiveInt: {
    test: (v) => Number.isSafeInteger(v) && (v as number) > 0,
    allowed: 'a positive integer',
  } as KeyRule,
  nonNegativeInt: {
    test: (v) => Number.isSafeInteger(v) && (v as number) >= 0,
    allowed: 'a non-negative integer',
  } as KeyRule,
  number: {
    test: (v) => typeof v === 'number' && Number.isFinite(v),
    allowed: 'a finite number',
  } as KeyRule,
  positiveNumber: {
    test: (v) => typeof v === 'number' && Number.isFinite(v) && v > 0,
    allowed: 'a positive number',
  } as KeyRule,
  betasOrNull: {
    test: (v) =>
      v === null ||
      (Array.isArray(v) &&
        v.length > 0 &&
        v.every((b) => typeof b === 'number' && b >= 0 && b < 1)),
    allowed: 'null or an array of numbers in [0, 1)',
  } as KeyRule,
};

export function configError(
  className: string,
  key: string,
  value: unknown,
  allowed: string,
): Error {
  return new SchedulerConfigError(
    `${className}: unsupported value ${JSON.stringify(value)} for config key "${key}"; allowed: ${allowed}`,
  );
}

/**
 * The full config: defaults overlaid with `given`, every value checked against its rule. Keys the
 * class does not know are an error here (constructors are strict, like Python keyword
 * arguments); fromConfig sorts them out beforehand.
 */
export function resolveConfig<C extends object>(
  className: string,
  defaults: Readonly<C>,
  keyRules: { readonly [K in keyof C]: KeyRule },
  given: Partial<C>,
): Readonly<C> {
  const unknown = Object.keys(given).filter((k) => !(k in defaults));
  if (unknown.length > 0) {
    throw new SchedulerConfigError(
      `${className}: unknown config key${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `"${k}"`).join(', ')}; known keys: ${Object.keys(defaults).join(', ')}`,
    );
  }
  const config = { ...defaults } as C;
  for (const key of Object.keys(defaults) as (keyof C & string)[]) {
    const value = given[key] === undefined ? defaults[key] : given[key];
    const rule = keyRules[key];
    if (!rule.test(value)) throw configError(className, key, value, rule.allowed);
    config[key] = value as C[keyof C & string];
  }
  return Object.freeze(config);
}

/**
 * Splits a scheduler_config.json object as diffusers' from_config does: keys of this class are
 * used (missing ones take defaults), keys starting with "_" (_class_name, _diffusers_version) are
 * dropped, and any other key (another scheduler's, such as PNDM's skip_prk_steps when loading
 * SD 1.5's config into DDIM) is ignored but kept, so it survives a save.
 */
export function splitConfig<C extends object>(
  defaults: Readonly<C>,
  json: Readonly<Record<string, unknown>>,
): { known: Partial<C>; ignored: Record<string, unknown> } {
  const known: Record<string, unknown> = {};
  const ignored: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(json)) {
    if (key.startsWith('_')) continue;
    if (key in defaults) known[key] = value;
    else ignored[key] = value;
  }
  return { known: known as Partial<C>, ignored };
}

/**
 * scheduler_config.json from a scheduler folder, or from the `scheduler/` folder of a diffusers
 * pipeline folder.
 */
export function readSchedulerConfig(folder: string): Record<string, unknown> {
  const name = 'scheduler_config.json';
  const inPipeline = join(folder, 'scheduler');
  if (existsSync(join(inPipeline, name))) return readConfig(inPipeline, name);
  if (existsSync(folder) && !existsSync(join(folder, name))) {
    throw new ModelLoadError(`No ${name} in ${folder} or in ${inPipeline}`);
  }
  return readConfig(folder, name);
}

// ---- timesteps ----

/** Checks that t is an integer timestep in [0, T) and returns it as a number. */
export function checkTimestep(
  t: number | Tensor,
  numTrainTimesteps: number,
  what = 'timestep',
): number {
  const value = t instanceof Tensor ? t.item() : t;
  if (!Number.isInteger(value) || value < 0 || value >= numTrainTimesteps) {
    throw new RangeError(
      `Expected an integer in [0, ${numTrainTimesteps - 1}] for ${what} but received ${value}`,
    );
  }
  return value;
}

/** Timesteps as numbers: one per batch element (a tensor or array) or one for all (a number). */
export function timestepList(
  timesteps: Tensor | readonly number[] | number,
  numTrainTimesteps: number,
): number[] {
  const values =
    timesteps instanceof Tensor
      ? timesteps.toArray()
      : typeof timesteps === 'number'
        ? [timesteps]
        : [...timesteps];
  return values.map((t) => checkTimestep(t, numTrainTimesteps, 'timesteps'));
}

export type Timesteps = Tensor | readonly number[] | number;

// ---- forward process q(x_t | x_0) ----

/**
 * √ᾱ_t and √(1 − ᾱ_t) shaped [B, 1, ...] like `sample` (B = number of timesteps), in the sample's
 * dtype: diffusers casts ᾱ to that dtype before taking roots.
 */
function noiseCoefficients(
  alphasCumprod: Float32Array,
  timesteps: Timesteps,
  sample: Tensor,
): [Tensor, Tensor] {
  const ts = timestepList(timesteps, alphasCumprod.length);
  const shape = [ts.length, ...new Array<number>(Math.max(sample.ndim - 1, 0)).fill(1)];
  const alphaBar = tensor(
    Float32Array.from(ts, (t) => alphasCumprod[t]!),
    shape,
    { dtype: sample.dtype, device: sample.device },
  );
  return [alphaBar.pow(0.5), ops.rsubScalar(alphaBar, 1).pow(0.5)];
}

/** `combine(√ᾱ_t, √(1 − ᾱ_t))` with the coefficients shaped for `like`; they are freed here. */
function withCoefficients(
  alphasCumprod: Float32Array,
  timesteps: Timesteps,
  like: Tensor,
  combine: (sqrtAlphaProd: Tensor, sqrtOneMinusAlphaProd: Tensor) => Tensor,
): Tensor {
  return tidy(() => combine(...noiseCoefficients(alphasCumprod, timesteps, like)));
}

/** x_t = √ᾱ_t · x_0 + √(1 − ᾱ_t) · ε (DDPM, Ho et al. 2020, Eq. 4). */
export function addNoise(
  alphasCumprod: Float32Array,
  originalSamples: Tensor,
  noise: Tensor,
  timesteps: Timesteps,
): Tensor {
  return withCoefficients(alphasCumprod, timesteps, originalSamples, (a, s) =>
    a.mul(originalSamples).add(s.mul(noise)),
  );
}

/**
 * The v-prediction target v = √ᾱ_t · ε − √(1 − ᾱ_t) · x_0 (Salimans & Ho 2022, "Progressive
 * Distillation", Sec. 4).
 */
export function getVelocity(
  alphasCumprod: Float32Array,
  sample: Tensor,
  noise: Tensor,
  timesteps: Timesteps,
): Tensor {
  return withCoefficients(alphasCumprod, timesteps, sample, (a, s) =>
    a.mul(noise).sub(s.mul(sample)),
  );
}

export type PredictionType = 'epsilon' | 'v_prediction' | 'sample';

/** What the model learns to predict: ε, v, or x_0. A new tensor either way. */
export function trainingTarget(
  predictionType: PredictionType,
  alphasCumprod: Float32Array,
  originalSamples: Tensor,
  noise: Tensor,
  timesteps: Timesteps,
): Tensor {
  switch (predictionType) {
    case 'epsilon':
      timestepList(timesteps, alphasCumprod.length);
      return noise.clone();
    case 'v_prediction':
      return getVelocity(alphasCumprod, originalSamples, noise, timesteps);
    case 'sample':
      timestepList(timesteps, alphasCumprod.length);
      return originalSamples.clone();
  }
}

/** randn like `like`, drawn on the generator's device (as diffusers' randn_tensor), then moved. */
export function drawNoise(like: Tensor, generator: Generator | undefined): Tensor {
  const device = generator?.device ?? like.device;
  const noise = randn(like.shape, { generator, dtype: like.dtype, device });
  return device === like.device ? noise : noise.to(like.device);
}

/** Throws unless n is a valid number of inference steps for T training timesteps. */
export function checkStepCount(n: number, T: number): void {
  if (!Number.isSafeInteger(n) || n < 1 || n > T) {
    throw new RangeError(
      `Expected an integer in [1, ${T}] (num_train_timesteps) for numInferenceSteps but received ${n}`,
    );
  }
}

/** T−1, T−2, ..., 0: every training timestep, as a scheduler holds before setTimesteps. */
export function descendingTimesteps(T: number): number[] {
  return Array.from({ length: T }, (_, i) => T - 1 - i);
}
