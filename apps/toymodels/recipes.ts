// Adapter settings for selective runs on the toy models: the recipe that makes the tiny base
// model draw the subject (p3s demo's default; what it gives is in docs/toy.md), and the paper's.
import type { InjectionMode } from '../../src/p3s/adapter/injection.js';
import { formatWeightCurve, PAPER_CURVE } from '../../src/p3s/adapter/weight_schedule.js';
import type { GenerateP3SConfig, ReferenceChoice } from '../../src/p3s/generate_settings.js';
import { DEFAULT_IDENTIFIER } from '../../src/p3s/prompts.js';
import type { TrainP3SConfig } from '../../src/p3s/train_settings.js';
import type { LrScheduleName } from '../../src/training/lr_schedule.js';
import type { ExperimentOptions } from './experiment.js';

/**
 * Subjects (reference-set seeds) recipes may be tuned on: seeds 0–31, the demo's subject (0)
 * among them. Thirty-two, because seven could not tell recipes apart and sixteen read 13 points
 * higher than sixteen more the recipe was not chosen on (docs/toy.md).
 */
export const TUNING_SUBJECTS: readonly number[] = Array.from({ length: 32 }, (_, i) => i);

/**
 * Subjects the model card reports, fixed by rule before any tuning (seeds 100–107) and disjoint
 * from TUNING_SUBJECTS, so a recipe's numbers are never measured on what it was chosen on.
 */
export const EVALUATION_SUBJECTS: readonly number[] = [100, 101, 102, 103, 104, 105, 106, 107];

export interface AdapterRecipe {
  /** The rare token that names the subject in prompts ("a sks cross in the snow"). */
  identifier: string;
  steps: number;
  learningRate: number;
  /** The learning rate held or decayed along a cosine (p3s train --lr-schedule). */
  lrSchedule: LrScheduleName;
  /** Training timesteps shifted towards noise by this factor (p3s train --timestep-shift). */
  timestepShift: number;
  /** Reference samples per fine-tuning step. */
  batchSize: number;
  injectionMode: InjectionMode;
  /** References cut to this many times the subject mask's box, or null: whole photos. */
  subjectCrop: number | null;
  /** ε_t at generation, in its text form. */
  weightCurve: string;
  /** Subject condition on the conditional half of the guidance batch only. */
  subjectGuidance: boolean;
  /** With subject guidance, the subject's own guidance scale, or null: the guidance scale. */
  subjectGuidanceScale: number | null;
  /** The condition shows the subject alone (the rest of each reference grey). */
  subjectOnlyCondition: boolean;
  /** Weight of the denoising error outside the subject mask (1: the paper's loss). */
  backgroundLossWeight: number;
  /** Each fine-tuning sample mirrored left-right at random (p3s train --flip). */
  flip: boolean;
  /** Each fine-tuning sample's crop scaled and moved at random by up to this (p3s train --crop-jitter). */
  cropJitter: number;
  /** Local injection's share (p3s generate --local-injection), or null: everywhere. */
  localInjection: number | null;
  /** Classifier-free guidance scale at generation. */
  guidanceScale: number;
  /** Which reference conditions the images (p3s generate --reference). */
  reference: ReferenceChoice;
}

/**
 * Draws the subject on the toy models: the copy carries its reference in at its own positions
 * (aligned), fine-tuned on subject crops shown alone with no loss outside the subject, two samples
 * a step (with one, each subject's result hung on its draws), each mirrored at random (the four
 * references become eight layouts), at full strength, kept to where the
 * base model draws the subject (local injection) so that the prompted context survives, and
 * guidance amplifies it, every image drawn from the reference whose own images look most like the
 * other references (docs/toy.md: chosen on the tuning subjects). The subject keeps "sks":
 * tokens the toy base model draws its shapes better with did not draw the subject more often.
 */
export const TOY_RECIPE: AdapterRecipe = {
  identifier: DEFAULT_IDENTIFIER,
  steps: 900,
  learningRate: 5e-4,
  lrSchedule: 'constant',
  timestepShift: 1,
  batchSize: 2,
  injectionMode: 'aligned',
  subjectCrop: 1.5,
  weightCurve: 'fixed:1',
  subjectGuidance: true,
  subjectGuidanceScale: null,
  subjectOnlyCondition: true,
  backgroundLossWeight: 0,
  flip: true,
  cropJitter: 0,
  localInjection: 0.3,
  guidanceScale: 3,
  reference: 'best',
};

/**
 * The paper's adapter (Sec. IV-A's form), with a learning rate and step count that let it move
 * the toy models in a short run.
 */
export const PAPER_RECIPE: AdapterRecipe = {
  identifier: DEFAULT_IDENTIFIER,
  steps: 100,
  learningRate: 1e-4,
  lrSchedule: 'constant',
  timestepShift: 1,
  batchSize: 1,
  injectionMode: 'decoupled',
  subjectCrop: null,
  weightCurve: formatWeightCurve(PAPER_CURVE),
  subjectGuidance: false,
  subjectGuidanceScale: null,
  subjectOnlyCondition: false,
  backgroundLossWeight: 1,
  flip: false,
  cropJitter: 0,
  localInjection: null,
  guidanceScale: 5,
  reference: 'cycle',
};

/**
 * Where each recipe field goes: the `p3s train` or `p3s generate` setting of that key (the
 * steps are train's maxSteps). The one mapping the experiments, the demo's flags and the web
 * app's defaults derive from, so a new recipe field is added here once.
 */
const RECIPE_SETTINGS = {
  identifier: ['train', 'identifier'],
  steps: ['train', 'maxSteps'],
  learningRate: ['train', 'learningRate'],
  lrSchedule: ['train', 'lrSchedule'],
  timestepShift: ['train', 'timestepShift'],
  batchSize: ['train', 'batchSize'],
  injectionMode: ['train', 'injectionMode'],
  subjectCrop: ['train', 'subjectCrop'],
  subjectOnlyCondition: ['train', 'subjectOnlyCondition'],
  backgroundLossWeight: ['train', 'backgroundLossWeight'],
  flip: ['train', 'flip'],
  cropJitter: ['train', 'cropJitter'],
  weightCurve: ['generate', 'weightCurve'],
  subjectGuidance: ['generate', 'subjectGuidance'],
  subjectGuidanceScale: ['generate', 'subjectGuidanceScale'],
  localInjection: ['generate', 'localInjection'],
  guidanceScale: ['generate', 'guidanceScale'],
  reference: ['generate', 'reference'],
} as const satisfies Record<
  keyof AdapterRecipe,
  readonly ['train', keyof TrainP3SConfig] | readonly ['generate', keyof GenerateP3SConfig]
>;

type Field = keyof typeof RECIPE_SETTINGS;
type SettingOf<F extends Field> = (typeof RECIPE_SETTINGS)[F][1];
type Side<S extends 'train' | 'generate'> = {
  [F in Field as (typeof RECIPE_SETTINGS)[F][0] extends S ? SettingOf<F> : never]: AdapterRecipe[F];
};

/** A recipe as `p3s train`'s and `p3s generate`'s settings. */
export interface RecipeSettings {
  train: Side<'train'>;
  generate: Side<'generate'>;
}

export function recipeSettings(recipe: AdapterRecipe): RecipeSettings {
  const out: Record<'train' | 'generate', Record<string, unknown>> = { train: {}, generate: {} };
  for (const [field, [side, key]] of Object.entries(RECIPE_SETTINGS))
    out[side][key] = recipe[field as Field];
  return out as unknown as RecipeSettings;
}

/** The recipe that settings keyed as `p3s train`'s and `p3s generate`'s give (recipeSettings' inverse). */
export function recipeFromSettings(settings: {
  [F in Field as SettingOf<F>]: AdapterRecipe[F];
}): AdapterRecipe {
  const values = settings as Record<string, unknown>;
  return Object.fromEntries(
    Object.entries(RECIPE_SETTINGS).map(([field, [, key]]) => [field, values[key]]),
  ) as unknown as AdapterRecipe;
}

/** A recipe as the settings of a selective experiment (runSubjectExperiment). */
export function recipeExperimentSettings(
  recipe: AdapterRecipe,
): Pick<ExperimentOptions, 'steps' | 'learningRate' | 'guidanceScale' | 'train' | 'generate'> {
  // the experiment takes steps, learning rate and guidance as options of its own
  const { train, generate } = recipeSettings(recipe);
  const { maxSteps: steps, learningRate, ...trainRest } = train;
  const { guidanceScale, ...generateRest } = generate;
  return { steps, learningRate, guidanceScale, train: trainRest, generate: generateRest };
}
