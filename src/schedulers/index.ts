// Diffusion schedulers, configured from diffusers' scheduler_config.json and matching
// diffusers 0.27.2 numerically.
import { DDIMScheduler } from './scheduling_ddim.js';
import { DDPMScheduler } from './scheduling_ddpm.js';
import { PNDMScheduler } from './scheduling_pndm.js';
import { fromConfig, type SchedulerClass } from './scheduling_base.js';
import { readSchedulerConfig, SchedulerConfigError } from './scheduling_utils.js';

export { DDIMScheduler } from './scheduling_ddim.js';
export type { DDIMSchedulerConfig, DDIMStepOptions, DDIMStepOutput } from './scheduling_ddim.js';
export { DDPMScheduler } from './scheduling_ddpm.js';
export type {
  DDPMSchedulerConfig,
  DDPMStepOptions,
  DDPMStepOutput,
  DDPMVarianceType,
} from './scheduling_ddpm.js';
export { PNDMScheduler } from './scheduling_pndm.js';
export type { PNDMSchedulerConfig, PNDMStepOutput } from './scheduling_pndm.js';
export {
  makeBetas,
  betasForAlphaBar,
  rescaleZeroTerminalSnr,
  alphasFromBetas,
  spacedTimesteps,
  type BetaSchedule,
  type TimestepSpacing,
} from './betas.js';
export {
  SchedulerBase,
  type CommonSchedulerConfig,
  type SampleClippingConfig,
  type SampleStepOutput,
  type SchedulerClass,
  type StepNoiseOptions,
} from './scheduling_base.js';
export {
  SchedulerConfigError,
  addNoise,
  getVelocity,
  readSchedulerConfig,
  type PredictionType,
  type Timesteps,
} from './scheduling_utils.js';

const CLASSES = { DDPMScheduler, DDIMScheduler, PNDMScheduler } as const;

export type SchedulerClassName = keyof typeof CLASSES;
export type Scheduler = DDPMScheduler | DDIMScheduler | PNDMScheduler;
type SchedulerOf<K extends SchedulerClassName> = InstanceType<(typeof CLASSES)[K]>;

export const schedulerClassNames = Object.keys(CLASSES) as SchedulerClassName[];

export interface SchedulerFromConfigOptions<K extends SchedulerClassName> {
  /** Build this class instead of the config's `_class_name` (diffusers' `Other.from_config(config)`). */
  className?: K;
}

/**
 * The scheduler a scheduler_config.json describes, chosen by its `_class_name`, or the class
 * named in options (so SD 1.5's PNDM config loads into DDIM: unknown keys are ignored, missing
 * ones take the class's defaults).
 */
export function schedulerFromConfig<K extends SchedulerClassName>(
  json: Readonly<Record<string, unknown>>,
  options: SchedulerFromConfigOptions<K> & { className: K },
): SchedulerOf<K>;
export function schedulerFromConfig(
  json: Readonly<Record<string, unknown>>,
  options?: SchedulerFromConfigOptions<SchedulerClassName>,
): Scheduler;
export function schedulerFromConfig(
  json: Readonly<Record<string, unknown>>,
  options: SchedulerFromConfigOptions<SchedulerClassName> = {},
): Scheduler {
  const name = options.className ?? json['_class_name'];
  if (!(typeof name === 'string' && name in CLASSES)) {
    throw new SchedulerConfigError(
      `Unsupported value ${JSON.stringify(name ?? null)} for config key "_class_name"; allowed: ${schedulerClassNames.map((n) => JSON.stringify(n)).join(', ')}` +
        (options.className === undefined ? ' (or pass options.className)' : ''),
    );
  }
  const cls: SchedulerClass<object, Scheduler> = CLASSES[name as SchedulerClassName];
  return fromConfig(cls, json);
}

/** schedulerFromConfig on `folder/scheduler_config.json` or a pipeline's `folder/scheduler/`. */
export function schedulerFromPretrained<K extends SchedulerClassName>(
  folder: string,
  options: SchedulerFromConfigOptions<K> & { className: K },
): SchedulerOf<K>;
export function schedulerFromPretrained(
  folder: string,
  options?: SchedulerFromConfigOptions<SchedulerClassName>,
): Scheduler;
export function schedulerFromPretrained(
  folder: string,
  options: SchedulerFromConfigOptions<SchedulerClassName> = {},
): Scheduler {
  return schedulerFromConfig(readSchedulerConfig(folder), options);
}
