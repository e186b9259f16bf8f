// The resumable training loop every trainer runs on (P3S fine-tuning, the toy models' stages):
// optimizer steps with a divergence stop, atomic checkpoints (checkpoint.ts) holding the weights,
// the optimizer's moments, the generator's state and the run's identity, a loss log, and
// observers told of each step. Killed and restarted from its newest checkpoint, a run ends with
// the same weights as one that never stopped, provided the data of a step is a function of the
// step and every random draw comes from the checkpointed generator (CPU, fixed thread count).
import { basename, dirname, resolve } from 'node:path';
import { mkdirSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import type { Generator } from '../engine/random.js';
import type { Module } from '../nn/module.js';
import type { Adam } from '../optim/adam.js';
import { clipGradNorm } from '../optim/clip_grad.js';
import {
  CheckpointError,
  pruneCheckpoints,
  readCheckpointInfo,
  restoreCheckpoint,
  saveCheckpoint,
} from './checkpoint.js';
import { TrainingDivergedError, TrainingInterruptedError } from './errors.js';
import { identityDifferences, type RunIdentity } from './identity.js';
import { appendLossLine, truncateLossLog } from './loss_log.js';
import { logTo, notify, type TrainingObserver } from './observer.js';

/** What one optimizer step's forward and backward passes measured. */
export interface StepLoss {
  /** The loss the gradients are of; not finite: nothing was back-propagated. */
  loss: number;
  parts?: Record<string, number>;
  epoch?: number;
}

/** The state a checkpoint holds and a resume restores. */
export interface TrainedState {
  model: Module;
  optimizer: Adam;
  generator: Generator;
}

export interface TrainingLoop {
  /** Names the run in messages ("P3S", "the vae stage"). */
  name: string;
  /** Checkpoints go here as checkpoint-NNNNNN.safetensors. */
  checkpointDir: string;
  /** The loss log (loss_log.ts). */
  logPath: string;
  totalSteps: number;
  /** A checkpoint every this many steps (0: only at the end), and how many to keep. */
  checkpointEvery: number;
  keepCheckpoints: number;
  identity: RunIdentity;
  state: TrainedState;
  /** Continue from this checkpoint; null starts at step 0. */
  resumeFrom: string | null;
  /** Sets the learning rate before each step (default: the optimizer's, constant). */
  learningRate?: (step: number) => number;
  /** Clip the gradients' global L2 norm to this before each update; null: no clipping. */
  maxGradNorm: number | null;
  /**
   * One step's forward and backward passes (`step` = steps done before it), accumulating the
   * gradients of state.model; the loop applies them. A non-finite loss must not be
   * back-propagated.
   */
  computeGradients(step: number): StepLoss;
  /** Every model the run holds, by name, for observers' afterBackward (tests, debugging). */
  modules?: Record<string, Module>;
  observers?: readonly TrainingObserver[];
  /** Stops between steps: a checkpoint is written, then TrainingInterruptedError is thrown. */
  signal?: AbortSignal;
  /** Added to the divergence message: what the user can do. */
  divergenceAdvice?: string;
  /** Added to the message when a checkpoint does not belong to this run. */
  resumeAdvice?: string;
}

export interface TrainingOutcome {
  /** Steps done, and the step this session started from. */
  step: number;
  startStep: number;
  /** Losses of this session's steps, in order. */
  losses: number[];
  /** The final checkpoint (written at the last step). */
  lastCheckpoint: string;
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Restores the checkpoint into the state after checking it belongs to this run; its step. */
export function resumeRun(loop: TrainingLoop, path: string): number {
  const info = readCheckpointInfo(path);
  const differ = identityDifferences(info.config, loop.identity);
  const advice = loop.resumeAdvice ? `; ${loop.resumeAdvice}` : '';
  if (differ.length > 0)
    throw new CheckpointError(
      `Cannot resume from ${basename(path)}: the run differs in ${differ.join(', ')}${advice}`,
    );
  try {
    restoreCheckpoint(path, {
      adapter: loop.state.model,
      optimizer: loop.state.optimizer,
      generator: loop.state.generator,
    });
  } catch (err) {
    if (err instanceof CheckpointError && advice)
      throw new CheckpointError(`${err.message}${advice}`);
    throw err;
  }
  return info.step;
}

function describeLoss(s: StepLoss): string {
  const parts = Object.entries(s.parts ?? {});
  const detail = parts.length ? ` (${parts.map(([k, v]) => `${k} ${v}`).join(', ')})` : '';
  return `the loss is ${s.loss}${detail}`;
}

/** Runs the loop from its resume point (or 0) to totalSteps. */
export async function runTraining(loop: TrainingLoop): Promise<TrainingOutcome> {
  const { state, observers = [] } = loop;
  mkdirSync(loop.checkpointDir, { recursive: true });
  mkdirSync(dirname(loop.logPath), { recursive: true });
  let step = loop.resumeFrom === null ? 0 : resumeRun(loop, loop.resumeFrom);
  const startStep = step;
  let lastCheckpoint = loop.resumeFrom === null ? null : resolve(loop.resumeFrom);
  let savedStep = loop.resumeFrom === null ? -1 : step;
  truncateLossLog(loop.logPath, step);
  if (loop.resumeFrom !== null) logTo(observers, `Resumed from ${loop.resumeFrom} at step ${step}`);
  await notify(observers, 'onStart', step);

  const checkpoint = async (loss: number): Promise<string> => {
    const path = saveCheckpoint(loop.checkpointDir, {
      step,
      adapter: state.model,
      optimizer: state.optimizer,
      generator: state.generator,
      config: loop.identity.values,
      loss,
    });
    pruneCheckpoints(loop.checkpointDir, loop.keepCheckpoints);
    [lastCheckpoint, savedStep] = [path, step];
    logTo(observers, `Checkpoint ${path}`);
    await notify(observers, 'onCheckpoint', path, step);
    return path;
  };
  const diverged = (what: string): TrainingDivergedError => {
    state.optimizer.zeroGrad();
    const kept = lastCheckpoint
      ? `the last good checkpoint is ${lastCheckpoint} (step ${savedStep})`
      : 'no checkpoint was written yet';
    const advice = loop.divergenceAdvice ? ` ${loop.divergenceAdvice}` : '';
    return new TrainingDivergedError(
      `${loop.name} diverged at step ${step + 1}: ${what}. Nothing of this step was applied; ${kept}.${advice}`,
      step + 1,
      lastCheckpoint,
    );
  };

  const losses: number[] = [];
  let lastLoss = NaN;
  const began = performance.now();
  while (step < loop.totalSteps) {
    if (loop.learningRate) state.optimizer.lr = loop.learningRate(step);
    const t0 = performance.now();
    const measured = loop.computeGradients(step);
    if (!Number.isFinite(measured.loss)) throw diverged(describeLoss(measured));
    await notify(observers, 'afterBackward', step, loop.modules ?? { model: state.model });
    if (loop.maxGradNorm !== null) {
      const norm = clipGradNorm(state.optimizer.params, loop.maxGradNorm);
      if (!Number.isFinite(norm)) throw diverged(`the gradient norm is ${norm}`);
    }
    state.optimizer.step();
    state.optimizer.zeroGrad();
    step += 1;
    lastLoss = measured.loss;
    losses.push(measured.loss);
    const seconds = (performance.now() - t0) / 1000;
    const parts = measured.parts ?? {};
    appendLossLine(loop.logPath, {
      step,
      loss: measured.loss,
      ...parts,
      ...(measured.epoch === undefined ? {} : { epoch: measured.epoch }),
      seconds: Number(seconds.toFixed(3)),
    });
    const secondsPerStep = (performance.now() - began) / 1000 / (step - startStep);
    await notify(observers, 'onStep', {
      step,
      totalSteps: loop.totalSteps,
      startStep,
      loss: measured.loss,
      parts,
      epoch: measured.epoch,
      secondsPerStep,
      etaSeconds: secondsPerStep * (loop.totalSteps - step),
    });
    if (loop.checkpointEvery > 0 && step % loop.checkpointEvery === 0 && step < loop.totalSteps)
      await checkpoint(measured.loss);
    // let the finalizers of this step's handles run (docs/engine.md, Memory)
    await tick();
    if (loop.signal?.aborted && step < loop.totalSteps) {
      const path = savedStep === step ? lastCheckpoint : await checkpoint(measured.loss);
      throw new TrainingInterruptedError(
        `Training stopped at step ${step} of ${loop.totalSteps}; resume from ${path}`,
        step,
        path,
      );
    }
  }
  const last =
    savedStep === step && lastCheckpoint !== null ? lastCheckpoint : await checkpoint(lastLoss);
  return { step, startStep, losses, lastCheckpoint: last };
}
