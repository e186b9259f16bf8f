// The resumable training loop every trainer runs on (P3S fine-tuning, the toy models' stages):
// optimizer steps with a divergence stop, atomic checkpoints (checkpoint.ts) holding the weights,
// the optimizer's moments, the generator's state and the run's identity, a loss log, and
// observers told of each step. Killed and restarted from its newest checkpoint, a run ends with
// the same weights as one that never stopped, provided the data of a step is a function of the
// step and every random draw comes from the checkpointed generator (CPU, fixed thread count).
// No checkpoint holds unfit weights (finite.ts): the run stops instead, keeping the last good
// one. Before the first step the checkpoint folder is cleared of killed writes' temporary files
// and checked for room; every write that fails names its file.
import { dirname, resolve } from 'node:path';
import { mkdirSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { ITEM_SIZE } from '../engine/dtype.js';
import type { Generator } from '../engine/random.js';
import type { Tensor } from '../engine/tensor.js';
import type { Module } from '../nn/module.js';
import type { Adam } from '../optim/adam.js';
import { clipGradNorm } from '../optim/clip_grad.js';
import { checkpointPath, listCheckpoints, pruneCheckpoints, saveCheckpoint } from './checkpoint.js';
import { TrainingDivergedError, TrainingInterruptedError, writeFailure } from './errors.js';
import { unfitState } from './finite.js';
import { LINEAGE_KEY, type Lineage, type RunIdentity } from './identity.js';
import { appendLossLine, truncateLossLog } from './loss_log.js';
import { logTo, notify, type TrainingObserver } from './observer.js';
import { resumeRun, type ResumePoint } from './resume.js';
import { checkFreeSpace, removeStaleTemporaries } from './run_folder.js';

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
  /**
   * When resumeFrom cannot be read or holds unfit weights, continue from the next older
   * checkpoint of its folder instead, with a note (for a resume from "the newest").
   */
  resumeFallback?: boolean;
  /**
   * resumeFrom starts a new run with this run's settings (identity.fixed must match); the run
   * records where it branched from (identity.ts, Lineage).
   */
  branch?: boolean;
  /**
   * A loss of the current weights on fixed data, without gradients and without touching the
   * generator: checked finite before every checkpoint (weights can be finite yet compute NaN).
   */
  probeLoss?: () => number;
  /** Bytes the caller writes after the run (the adapter), checked free with the checkpoints'. */
  reserveBytes?: number;
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
  /** Added to the divergence message: what the user can do (from the last good checkpoint). */
  divergenceAdvice?: string | ((lastCheckpoint: string | null) => string);
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
  /** The checkpoint this session started from (after any fallback), or null. */
  resumedFrom: string | null;
  /** Where the run branched from (in this session or before), or null. */
  lineage: Lineage | null;
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

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
  step: number;
  /** The identity its checkpoints record: the run's, with its lineage. */
  readonly identity: Record<string, unknown>;

  constructor(
    readonly loop: TrainingLoop,
    readonly resumed: ResumePoint | null,
  ) {
    this.observers = loop.observers ?? [];
    this.step = this.startStep = resumed?.step ?? 0;
    this.lastCheckpoint = resumed === null ? null : resolve(resumed.path);
    this.savedStep = resumed === null ? -1 : resumed.step;
    const lineage = resumed?.lineage ?? null;
    this.identity = { ...loop.identity.values, ...(lineage ? { [LINEAGE_KEY]: lineage } : {}) };
  }

  /** Writes a checkpoint of the current state, after checking its weights are fit. */
  async checkpoint(loss: number): Promise<string> {
    const { loop } = this;
    const unfit = unfitState(loop.state, loop.probeLoss);
    if (unfit !== null) throw this.unfit(unfit);
    let path: string;
    try {
      path = saveCheckpoint(loop.checkpointDir, {
        step: this.step,
        adapter: loop.state.model,
        optimizer: loop.state.optimizer,
        generator: loop.state.generator,
        config: this.identity,
        loss,
      });
    } catch (err) {
      throw writeFailure(
        err,
        checkpointPath(loop.checkpointDir, this.step),
        'write the checkpoint',
      );
    }
    pruneCheckpoints(loop.checkpointDir, loop.keepCheckpoints);
    [this.lastCheckpoint, this.savedStep] = [path, this.step];
    logTo(this.observers, `Checkpoint ${path}`);
    await notify(this.observers, 'onCheckpoint', path, this.step);
    return path;
  }

  /** What the run keeps, and what the user can do, for a divergence message. */
  private kept(): string {
    const kept = this.lastCheckpoint
      ? `the last good checkpoint is ${this.lastCheckpoint} (step ${this.savedStep})`
      : 'no checkpoint was written yet';
    const given = this.loop.divergenceAdvice;
    const advice = typeof given === 'function' ? given(this.lastCheckpoint) : given;
    return `${kept}.${advice ? ` ${advice}` : ''}`;
  }

  /** The next step's loss or gradient is not finite: stop before applying it. */
  diverged(what: string): TrainingDivergedError {
    this.loop.state.optimizer.zeroGrad();
    const at = this.step + 1;
    return new TrainingDivergedError(
      `${this.loop.name} diverged at step ${at}: ${what}. Nothing of this step was applied; ${this.kept()}`,
      at,
      this.lastCheckpoint,
    );
  }

  /** The weights the steps so far left are unfit to save: stop without saving them. */
  unfit(what: string): TrainingDivergedError {
    return new TrainingDivergedError(
      `${this.loop.name} diverged by step ${this.step}: ${what}. These weights were not saved; ${this.kept()}`,
      this.step,
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
    try {
      appendLossLine(loop.logPath, {
        step,
        loss: measured.loss,
        ...parts,
        ...(measured.epoch === undefined ? {} : { epoch: measured.epoch }),
        seconds: Number(seconds.toFixed(3)),
      });
    } catch (err) {
      throw writeFailure(err, loop.logPath, 'append to the loss log');
    }
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

/** Bytes of one checkpoint of the state: its tensors, the optimizer's two moments per weight. */
function checkpointBytes(state: TrainedState): number {
  const bytes = (t: Tensor): number => t.numel * ITEM_SIZE[t.dtype];
  const model = [...state.model.stateDict().values()].reduce((n, t) => n + bytes(t), 0);
  return model + 2 * state.optimizer.params.reduce((n, t) => n + bytes(t), 0);
}

/** Refuses to start without room for the checkpoints this session keeps, and reserveBytes. */
function checkRoom(loop: TrainingLoop, startStep: number): void {
  const every = loop.checkpointEvery;
  const writes =
    1 + (every > 0 ? Math.floor((loop.totalSteps - 1) / every) - Math.floor(startStep / every) : 0);
  const existing = listCheckpoints(loop.checkpointDir).length;
  // one more than kept: a new checkpoint is written before the oldest is deleted
  const extra = Math.max(0, Math.min(existing + writes, loop.keepCheckpoints + 1) - existing);
  const need = extra * checkpointBytes(loop.state) + (loop.reserveBytes ?? 0);
  checkFreeSpace(loop.checkpointDir, need, `${extra} checkpoint(s) and the results`);
}

/** The run's folders exist and hold no temporary file of a killed write. */
function prepareFolders(loop: TrainingLoop, log: (message: string) => void): void {
  for (const dir of new Set([resolve(loop.checkpointDir), dirname(resolve(loop.logPath))])) {
    try {
      mkdirSync(dir, { recursive: true });
    } catch (err) {
      throw writeFailure(err, dir, 'create the folder');
    }
    for (const path of removeStaleTemporaries(dir))
      log(`Removed ${path}, left by a write that was killed`);
  }
}

/** Runs the loop from its resume point (or 0) to totalSteps. */
export async function runTraining(loop: TrainingLoop): Promise<TrainingOutcome> {
  const log = (message: string): void => logTo(loop.observers ?? [], message);
  prepareFolders(loop, log);
  const session = new Session(loop, loop.resumeFrom === null ? null : resumeRun(loop, log));
  checkRoom(loop, session.step);
  try {
    truncateLossLog(loop.logPath, session.step);
  } catch (err) {
    throw writeFailure(err, loop.logPath, 'rewrite the loss log');
  }
  if (session.resumed !== null) {
    const branched = loop.branch ? ' as a new run (branch)' : '';
    log(`Resumed from ${session.resumed.path} at step ${session.step}${branched}`);
  }
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
    resumedFrom: session.resumed?.path ?? null,
    lineage: (session.identity[LINEAGE_KEY] as Lineage | undefined) ?? null,
  };
}
