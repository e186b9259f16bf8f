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

/** The state of one session of a run: where it stands and what it has written. */
class Session {
  readonly observers: readonly TrainingObserver[];
  readonly losses: number[] = [];
  readonly began = performance.now();
  /** The step this session started from. */
  readonly startStep: number;
  lastCheckpoint: string | null;
  savedStep: number;

  constructor(
    readonly loop: TrainingLoop,
    public step: number,
  ) {
    this.observers = loop.observers ?? [];
    this.startStep = step;
    this.lastCheckpoint = loop.resumeFrom === null ? null : resolve(loop.resumeFrom);
    this.savedStep = loop.resumeFrom === null ? -1 : step;
  }

  async checkpoint(loss: number): Promise<string> {
    const { loop } = this;
    const path = saveCheckpoint(loop.checkpointDir, {
      step: this.step,
      adapter: loop.state.model,
      optimizer: loop.state.optimizer,
      generator: loop.state.generator,
      config: loop.identity.values,
      loss,
    });
    pruneCheckpoints(loop.checkpointDir, loop.keepCheckpoints);
    [this.lastCheckpoint, this.savedStep] = [path, this.step];
    logTo(this.observers, `Checkpoint ${path}`);
    await notify(this.observers, 'onCheckpoint', path, this.step);
    return path;
  }

  diverged(what: string): TrainingDivergedError {
    this.loop.state.optimizer.zeroGrad();
    const kept = this.lastCheckpoint
      ? `the last good checkpoint is ${this.lastCheckpoint} (step ${this.savedStep})`
      : 'no checkpoint was written yet';
    const advice = this.loop.divergenceAdvice ? ` ${this.loop.divergenceAdvice}` : '';
    const at = this.step + 1;
    return new TrainingDivergedError(
      `${this.loop.name} diverged at step ${at}: ${what}. Nothing of this step was applied; ${kept}.${advice}`,
      at,
      this.lastCheckpoint,
    );
  }

  /** One optimizer step: gradients, checks, the update; returns what was measured. */
  async update(): Promise<StepLoss> {
    const { loop, observers } = this;
    const { optimizer } = loop.state;
    if (loop.learningRate) optimizer.lr = loop.learningRate(this.step);
    const measured = loop.computeGradients(this.step);
    if (!Number.isFinite(measured.loss)) throw this.diverged(describeLoss(measured));
    await notify(
      observers,
      'afterBackward',
      this.step,
      loop.modules ?? { model: loop.state.model },
    );
    if (loop.maxGradNorm !== null) {
      const norm = clipGradNorm(optimizer.params, loop.maxGradNorm);
      if (!Number.isFinite(norm)) throw this.diverged(`the gradient norm is ${norm}`);
    }
    optimizer.step();
    optimizer.zeroGrad();
    this.step += 1;
    this.losses.push(measured.loss);
    return measured;
  }

  /** The step's line in the loss log, and the observers' report. */
  async record(measured: StepLoss, seconds: number): Promise<void> {
    const { loop, step } = this;
    const parts = measured.parts ?? {};
    appendLossLine(loop.logPath, {
      step,
      loss: measured.loss,
      ...parts,
      ...(measured.epoch === undefined ? {} : { epoch: measured.epoch }),
      seconds: Number(seconds.toFixed(3)),
    });
    const secondsPerStep = (performance.now() - this.began) / 1000 / (step - this.startStep);
    await notify(this.observers, 'onStep', {
      step,
      totalSteps: loop.totalSteps,
      startStep: this.startStep,
      loss: measured.loss,
      parts,
      epoch: measured.epoch,
      secondsPerStep,
      etaSeconds: secondsPerStep * (loop.totalSteps - step),
    });
  }

  /** When asked to stop between steps: the checkpoint, then the error naming it. */
  async interrupted(loss: number): Promise<TrainingInterruptedError> {
    const path = this.savedStep === this.step ? this.lastCheckpoint : await this.checkpoint(loss);
    return new TrainingInterruptedError(
      `Training stopped at step ${this.step} of ${this.loop.totalSteps}; resume from ${path}`,
      this.step,
      path,
    );
  }
}

/** Runs the loop from its resume point (or 0) to totalSteps. */
export async function runTraining(loop: TrainingLoop): Promise<TrainingOutcome> {
  mkdirSync(loop.checkpointDir, { recursive: true });
  mkdirSync(dirname(loop.logPath), { recursive: true });
  const session = new Session(
    loop,
    loop.resumeFrom === null ? 0 : resumeRun(loop, loop.resumeFrom),
  );
  truncateLossLog(loop.logPath, session.step);
  if (loop.resumeFrom !== null)
    logTo(session.observers, `Resumed from ${loop.resumeFrom} at step ${session.step}`);
  await notify(session.observers, 'onStart', session.step);
  let lastLoss = NaN;
  while (session.step < loop.totalSteps) {
    const t0 = performance.now();
    const measured = await session.update();
    lastLoss = measured.loss;
    await session.record(measured, (performance.now() - t0) / 1000);
    const { step } = session;
    if (loop.checkpointEvery > 0 && step % loop.checkpointEvery === 0 && step < loop.totalSteps)
      await session.checkpoint(lastLoss);
    // let the finalizers of this step's handles run (docs/engine.md, Memory)
    await tick();
    if (loop.signal?.aborted && step < loop.totalSteps) throw await session.interrupted(lastLoss);
  }
  const done = session.savedStep === session.step && session.lastCheckpoint !== null;
  return {
    step: session.step,
    startStep: session.startStep,
    losses: session.losses,
    lastCheckpoint: done ? session.lastCheckpoint! : await session.checkpoint(lastLoss),
  };
}
