// What a training run tells the world while it runs: progress after each step, notes, and the
// checkpoints it writes. Displays (a progress bar, a web page), sample writers and test probes
// are observers; the run does not know which are attached.
import type { Tensor } from '../engine/tensor.js';
import type { Module } from '../nn/module.js';

export interface StepReport {
  /** Optimizer steps done (1 after the first). */
  step: number;
  totalSteps: number;
  /** The step this session started from (0, or the resumed checkpoint's). */
  startStep: number;
  /** This step's loss, and its named parts (e.g. ldm, ac). */
  loss: number;
  parts: Record<string, number>;
  /** Passes over the data so far, where the run has epochs. */
  epoch?: number;
  /** Seconds per step in this session, and the estimate of what is left. */
  secondsPerStep: number;
  etaSeconds: number;
}

export interface TrainingObserver {
  /** A note on what the run does (references found, checkpoint written ...). */
  onLog?(message: string): void;
  /** Once the run knows its start (0, or the resumed checkpoint's step), before the first step. */
  onStart?(step: number): void | Promise<void>;
  /** After each optimizer step; the run waits for a returned promise (e.g. writing samples). */
  onStep?(report: StepReport): void | Promise<void>;
  /** After each checkpoint is written. */
  onCheckpoint?(path: string, step: number): void;
  /**
   * Probes for tests and debugging. afterBackward: a step's gradients exist and are not yet
   * applied; `modules` are every model the run holds, by name. interceptLoss: sees each
   * (micro-batch) loss before it is checked and back-propagated, and may replace it.
   */
  afterBackward?(step: number, modules: Record<string, Module>): void;
  interceptLoss?(step: number, loss: Tensor): Tensor;
}

/** Calls one hook on every observer, in order. */
export async function notify<K extends keyof TrainingObserver>(
  observers: readonly TrainingObserver[],
  hook: K,
  ...args: Parameters<NonNullable<TrainingObserver[K]>>
): Promise<void> {
  for (const o of observers) {
    const f = o[hook] as ((...a: typeof args) => void | Promise<void>) | undefined;
    await f?.apply(o, args);
  }
}

/** Each observer's interceptLoss in turn (the loss unchanged when none has one). */
export function interceptLoss(
  observers: readonly TrainingObserver[],
  step: number,
  loss: Tensor,
): Tensor {
  return observers.reduce((l, o) => (o.interceptLoss ? o.interceptLoss(step, l) : l), loss);
}

/** Tells every observer a note (synchronously, in order). */
export function logTo(observers: readonly TrainingObserver[], message: string): void {
  for (const o of observers) o.onLog?.(message);
}
