// One training stage of `npm run train:toy` on the shared resumable loop (src/training/loop.ts):
// what every toy stage trains with is said here once — its folder holds the checkpoints and the
// loss log, a killed stage resumes from its newest checkpoint, a checkpoint of other settings is
// refused, the learning rate warms up then decays by a cosine, gradients are clipped. A stage
// only says how its model, optimizer and loss are made.
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Generator } from '../../src/engine/random.js';
import { tidy } from '../../src/engine/scope.js';
import type { Tensor } from '../../src/engine/tensor.js';
import type { Module } from '../../src/nn/module.js';
import type { Adam } from '../../src/optim/adam.js';
import { latestCheckpoint } from '../../src/training/checkpoint.js';
import { runTraining, type StepLoss } from '../../src/training/loop.js';
import { readLossLog, type LossLine } from '../../src/training/loss_log.js';
import { warmupCosine } from '../../src/training/lr_schedule.js';
import { trainingProgress } from '../terminal/progress.js';

/** What every toy-model stage is run with. */
export interface StageSettings {
  /** The stage's folder: checkpoints and loss.jsonl. */
  dir: string;
  seed: number;
  steps: number;
  batchSize: number;
  /** Peak learning rate. */
  lr: number;
  /** Draw a progress bar (default true). */
  progress?: boolean;
}

/** A stage: its model, optimizer and generator, and its loss at a step. */
export interface StageTraining<M extends Module> {
  /** Names the stage in progress and messages ("vae", "clip", …). */
  name: string;
  /** Every setting but `dir` and `progress` is part of the run's identity. */
  settings: StageSettings;
  /** Further identity values (the models' configs …). */
  identity?: Record<string, unknown>;
  /** Settings added after checkpoints existed, with the value those checkpoints ran at. */
  olderDefaults?: Record<string, unknown>;
  /** Steps of linear warm-up before the cosine decay. */
  warmup: number;
  /** Clip the gradients' global norm to this (default 1); null: no clipping. */
  maxGradNorm?: number | null;
  model: M;
  optimizer: Adam;
  generator: Generator;
  /**
   * The loss at a step (in a tidy scope): data must be a function of the step and noise must
   * come from `generator`, so that a resumed stage draws what an uninterrupted one would.
   */
  loss(step: number): Tensor;
}

export interface StageResult {
  /** Steps run by this call (0 when the stage was already complete). */
  ran: number;
  seconds: number;
  /** Mean loss of the last 50 steps of the whole stage (from the log). */
  finalLoss: number;
  /** Training seconds of the whole stage, over every resumed run (from the log). */
  totalSeconds: number;
}

const CHECKPOINT_EVERY = 100;
const KEEP_CHECKPOINTS = 2;
const MAX_GRAD_NORM = 1;
/** Steps the progress bar and finalLoss average the loss over. */
const LOSS_WINDOW = 50;

/** A stage's loss log: one line per step, 1-based (src/training/loss_log.ts). */
export function stageLossLog(dir: string): LossLine[] {
  return readLossLog(join(dir, 'loss.jsonl'));
}

/** Forward and backward passes of one step; a non-finite loss is not back-propagated. */
function gradientsOf(loss: () => Tensor): StepLoss {
  return {
    loss: tidy(() => {
      const l = loss();
      const value = l.item();
      if (Number.isFinite(value)) l.backward();
      return value;
    }),
  };
}

/** The settings that name the run: all but where it is written and how it is shown. */
function identityValues(stage: StageTraining<Module>): Record<string, unknown> {
  const values: Record<string, unknown> = { ...stage.identity, ...stage.settings };
  delete values.dir;
  delete values.progress;
  return values;
}

function summary(dir: string, ran: number, seconds: number): StageResult {
  const log = stageLossLog(dir);
  const last = log.slice(-LOSS_WINDOW).map((l) => l.loss);
  return {
    ran,
    seconds,
    finalLoss: last.length ? last.reduce((a, b) => a + b, 0) / last.length : NaN,
    totalSeconds: log.reduce((a, l) => a + (l.seconds ?? 0), 0),
  };
}

/**
 * Trains a freshly built model through its stage, resuming from the stage folder's newest
 * checkpoint: returns the model in eval mode (the caller disposes it), disposes it on failure,
 * and always frees the optimizer's moments.
 */
export async function trainStage<M extends Module>(
  stage: StageTraining<M>,
): Promise<{ model: M; result: StageResult }> {
  const { name, settings, model, optimizer, generator } = stage;
  const { dir } = settings;
  const began = performance.now();
  try {
    const outcome = await runTraining({
      name: `the ${name} stage`,
      checkpointDir: dir,
      logPath: join(dir, 'loss.jsonl'),
      totalSteps: settings.steps,
      checkpointEvery: CHECKPOINT_EVERY,
      keepCheckpoints: KEEP_CHECKPOINTS,
      identity: { values: identityValues(stage), olderDefaults: stage.olderDefaults },
      state: { model, optimizer, generator },
      resumeFrom: latestCheckpoint(dir),
      learningRate: warmupCosine(settings.lr, stage.warmup, settings.steps),
      maxGradNorm: stage.maxGradNorm === undefined ? MAX_GRAD_NORM : stage.maxGradNorm,
      computeGradients: (step) => gradientsOf(() => stage.loss(step)),
      observers:
        settings.progress === false ? [] : [trainingProgress(name, { window: LOSS_WINDOW })],
      divergenceAdvice: `Its loss log is ${join(dir, 'loss.jsonl')}.`,
      resumeAdvice: `delete ${dir} to start the ${name} stage afresh`,
    });
    const seconds = (performance.now() - began) / 1000;
    return { model: model.eval(), result: summary(dir, outcome.step - outcome.startStep, seconds) };
  } catch (err) {
    model.dispose();
    throw err;
  } finally {
    optimizer.dispose();
  }
}
