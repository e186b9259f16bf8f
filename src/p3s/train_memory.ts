// A training size is refused before the first allocation when even a lower bound of what one
// step needs exceeds the memory available: the forward passes of the trainable copy and of the
// frozen U-Net it injects into, which autograd keeps alive for the backward pass (the backward
// pass's own gradients come on top, so the bound is a floor, not an estimate of the peak).
import { memory } from '../engine/scope.js';
import { memoryBudget } from '../io/available_memory.js';
import {
  estimateSamplingMemory,
  formatBytes,
  largestFittingSide,
  sizeMultiple,
} from '../pipelines/memory_budget.js';
import type { StableDiffusionPipeline } from '../pipelines/stable_diffusion.js';
import { refuseSetting } from '../settings/table.js';
import type { InjectionMode } from './adapter/injection.js';
import { TRAIN_SETTINGS } from './train_settings.js';

export interface TrainingShape {
  resolution: number;
  batchSize: number;
  injectionMode: InjectionMode;
}

/** The bytes one training step needs at least, beyond the loaded weights. */
export function trainingMemoryFloor(pipeline: StableDiffusionPipeline, s: TrainingShape): number {
  return estimateSamplingMemory({
    unet: pipeline.unet.config,
    vae: pipeline.vae.config,
    height: s.resolution,
    width: s.resolution,
    batch: s.batchSize,
    guided: false,
    copy: true,
    keyFactor: s.injectionMode === 'joint' ? 2 : 1,
    cacheLimitBytes: memory().cpuCache.limitBytes,
  }).peak;
}

/**
 * Refuses a resolution whose floor does not fit in `given` bytes (default: what the system or
 * its cgroup has available), naming the flag and the largest resolution that would.
 */
export function checkTrainingMemory(
  pipeline: StableDiffusionPipeline,
  s: TrainingShape & { given: boolean },
  budgetBytes?: number,
): void {
  const budget = memoryBudget(budgetBytes);
  const floor = trainingMemoryFloor(pipeline, s);
  if (floor <= budget.bytes) return;
  const multiple = sizeMultiple(pipeline.unet.config, pipeline.vae.config);
  const largest = largestFittingSide(
    (side) => trainingMemoryFloor(pipeline, { ...s, resolution: side }),
    budget.bytes,
    multiple,
    s.resolution,
  );
  const instead =
    largest > 0
      ? `pass --resolution ${largest} or less (a multiple of ${multiple})`
      : `not even ${multiple} px fits: free memory first`;
  const why =
    `a training step at ${s.resolution} px needs at least ${formatBytes(floor)} ` +
    `(batch ${s.batchSize}), and ${formatBytes(budget.bytes)} is available (${budget.source}): ` +
    instead;
  if (!s.given)
    throw new RangeError(
      `The base model's own size, ${s.resolution} px (the default resolution), does not fit: ${why}`,
    );
  refuseSetting(
    TRAIN_SETTINGS,
    'resolution',
    'a resolution that fits in memory',
    s.resolution,
    why,
  );
}
