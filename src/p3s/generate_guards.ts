// What generate.ts checks once the models are loaded and before it writes: a request is refused
// before it allocates more memory than there is, and no NaN or infinite value becomes an image.
import { join } from 'node:path';
import type { Tensor } from '../engine/tensor.js';
import { memory } from '../engine/scope.js';
import { memoryBudget } from '../io/available_memory.js';
import {
  estimateSamplingMemory,
  formatBytes,
  largestFittingSide,
  sizeMultiple,
} from '../pipelines/memory_budget.js';
import { usesGuidance, type NonFiniteError } from '../pipelines/stable_diffusion.js';
import { refuseSetting } from '../settings/table.js';
import { firstNonFinite } from '../engine/finite.js';
import type { SamplingModels } from './generate.js';
import type { Plan } from './generate_plan.js';
import { GENERATE_SETTINGS, type GenerateSettings } from './generate_settings.js';

// Memory: a request is refused before it allocates, not killed by the kernel half-way

/** The peak bytes sampling this plan needs at a size, beyond the loaded models. */
function samplingBytes(
  plan: Plan,
  models: SamplingModels,
  size: { height: number; width: number },
  batchSize = plan.batchSize,
): number {
  const images = plan.prompts.length * plan.seeds.length;
  return estimateSamplingMemory({
    unet: models.pipeline.unet.config,
    vae: models.pipeline.vae.config,
    ...size,
    batch: Math.min(batchSize, plan.seeds.length),
    guided: usesGuidance(plan.settings.guidanceScale),
    copy: true,
    keyFactor: models.p3s.settings.injectionMode === 'joint' ? 2 : 1,
    // the result returns every image; a contact sheet copies them and encodes the copy
    keptImages: images * (plan.settings.contactSheet ? 3 : 1),
    unetBytesPerValue: plan.settings.precision === 'half' ? 2 : 4,
    cacheLimitBytes: memory().cpuCache.limitBytes,
  }).peak;
}

/** What to pass instead: the largest square size that fits, and a smaller batch if that fits. */
function memoryAdvice(
  plan: Plan,
  models: SamplingModels,
  size: { height: number; width: number },
  budget: number,
): string {
  const multiple = sizeMultiple(models.pipeline.unet.config, models.pipeline.vae.config);
  const largest = largestFittingSide(
    (side) => samplingBytes(plan, models, { height: side, width: side }),
    budget,
    multiple,
    Math.max(size.height, size.width),
  );
  const smaller =
    largest > 0
      ? `pass a size of ${largest} or less (a multiple of ${multiple})`
      : `not even ${multiple}×${multiple} fits: free memory first`;
  const oneAtATime =
    plan.batchSize > 1 && samplingBytes(plan, models, size, 1) <= budget
      ? ', or a batch size of 1 (--batch-size 1)'
      : '';
  return smaller + oneAtATime;
}

/**
 * Refuses a size whose sampling would not fit in the memory available (the budget given, else
 * what the system or its cgroup has), naming the flag, the estimate and what to pass instead.
 */
export function checkMemory(
  plan: Plan,
  models: SamplingModels,
  size: { height: number; width: number },
  given?: number,
): void {
  const budget = memoryBudget(given);
  const needed = samplingBytes(plan, models, size);
  if (needed <= budget.bytes) return;
  const batch = Math.min(plan.batchSize, plan.seeds.length);
  const why =
    `it needs about ${formatBytes(needed)} (${batch} image${batch > 1 ? 's' : ''} per pass), ` +
    `and ${formatBytes(budget.bytes)} is available (${budget.source}): ` +
    memoryAdvice(plan, models, size, budget.bytes);
  const { settings: s } = plan;
  const key =
    s.size != null ? 'size' : s.height != null ? 'height' : s.width != null ? 'width' : null;
  if (key === null)
    throw new RangeError(
      `The adapter's training resolution, ${plan.metadata.resolution} px (the "resolution" in ` +
        `${s.adapter}'s metadata), is the default image size, but ${why} (--size)`,
    );
  const shown = key === 'size' ? s.size : `${size.height}×${size.width}`;
  refuseSetting(GENERATE_SETTINGS, key, 'an image size that fits in memory', shown, why);
}

// ---------------------------------------------------------------------------------------------
// Non-finite values: no black image is written, and the error names the likely cause

/** The weights of each file the models came from, the adapter first (the likeliest culprit). */
function weightFiles(
  models: SamplingModels,
  settings: GenerateSettings,
): [string, () => Iterable<readonly [string, Tensor]>][] {
  const { pipeline, p3s, condition } = models;
  const base = (part: string): string => join(settings.baseModel, part);
  return [
    [
      settings.adapter,
      () => [
        ...p3s.adapter.stateDict(),
        ['the reference latents', condition.latent],
        ['the reference CLIP states', condition.clipStates],
      ],
    ],
    [base('unet'), () => pipeline.unet.stateDict()],
    [base('vae'), () => pipeline.vae.stateDict()],
    [base('text_encoder'), () => pipeline.textEncoder.stateDict()],
  ];
}

/** "<tensor> in <file> holds NaN or infinite values", for the first such file; else null. */
function nonFiniteWeights(
  models: SamplingModels,
  settings: GenerateSettings,
  files = 4,
): string | null {
  for (const [file, tensors] of weightFiles(models, settings).slice(0, files)) {
    const bad = firstNonFinite(tensors());
    if (bad !== null) return `${bad} in ${file} holds NaN or infinite values`;
  }
  return null;
}

/** An adapter whose weights are not finite (a diverged run) is refused before any sampling. */
export function checkAdapterFinite(models: SamplingModels, settings: GenerateSettings): void {
  const bad = nonFiniteWeights(models, settings, 1);
  if (bad)
    throw new Error(
      `${bad}: the adapter cannot generate images (it comes from a training run that diverged); ` +
        'train it again, with a lower --lr',
    );
}

/** The error for a batch that sampled to NaN or infinity: which weights, else which settings. */
export function nonFiniteFailure(
  models: SamplingModels,
  s: GenerateSettings,
  prompt: string,
  seeds: readonly number[],
  err: NonFiniteError,
): Error {
  const cause =
    nonFiniteWeights(models, s) ??
    `every weight is finite, so the settings overflow (guidance ${s.guidanceScale}, latent bias ` +
      `${s.latentBias}, λ ${models.p3s.settings.lambda}): try their defaults`;
  return samplingFailure(prompt, seeds, err, cause);
}

/** The error for a batch that sampled to NaN or infinity, with its likely cause (any method). */
export function samplingFailure(
  prompt: string,
  seeds: readonly number[],
  err: NonFiniteError,
  cause: string,
): Error {
  return new Error(
    `Sampling "${prompt}" (seeds ${seeds.join(',')}) gave NaN or infinite ${err.stage}, so no ` +
      `image was written for it: ${cause}`,
    { cause: err },
  );
}
