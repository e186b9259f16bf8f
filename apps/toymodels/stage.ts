// One resumable training stage of `npm run train:toy`: a module, an AdamW, a Generator and a
// step function, run for a fixed number of steps with a progress line, atomic checkpoints
// (p3s/checkpoint.ts: weights, optimizer moments, generator state, the stage's settings) and a
// loss log. Killed and restarted, it continues from the newest checkpoint and ends with the same
// weights as a run that never stopped (data is a function of the step, noise comes from the
// checkpointed generator; CPU, fixed thread count).
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Generator } from '../../src/engine/random.js';
import type { Module } from '../../src/nn/module.js';
import type { Adam } from '../../src/optim/adam.js';
import { clipGradNorm } from '../../src/optim/clip_grad.js';
import { tidy } from '../../src/engine/scope.js';
import type { Tensor } from '../../src/engine/tensor.js';
import {
  CheckpointError,
  latestCheckpoint,
  pruneCheckpoints,
  restoreCheckpoint,
  saveCheckpoint,
} from '../../src/training/checkpoint.js';
import { Progress } from '../terminal/progress.js';

/** What every toy-model stage is run with. */
export interface StageSettings {
  /** The stage's checkpoint folder. */
  dir: string;
  seed: number;
  steps: number;
  batchSize: number;
  /** Peak learning rate. */
  lr: number;
  progress?: boolean;
}

export interface StageOptions {
  /** Stage name for progress and errors ("vae", "clip", …). */
  name: string;
  /** The stage's folder: checkpoints and loss.jsonl. */
  dir: string;
  steps: number;
  checkpointEvery: number;
  /** Settings compared on resume: a checkpoint of other settings is refused. */
  settings: Record<string, unknown>;
  /**
   * Options added after checkpoints were already written, with the value that reproduces the
   * old recipe: a setting at this value counts as absent, so older checkpoints still resume.
   */
  settingDefaults?: Record<string, unknown>;
  model: Module;
  optimizer: Adam;
  generator: Generator;
  /** Peak learning rate; the stage warms up linearly, then decays by a cosine to 10 %. */
  lr: number;
  warmup: number;
  /** One optimizer step (zero grads, forward, backward, step); returns the loss. */
  step(step: number): number;
  /** Print a progress line (default true). */
  progress?: boolean;
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

export class TrainingDivergedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrainingDivergedError';
  }
}

/** Warm-up then cosine decay to 10 % of the peak, a pure function of the step. */
export function learningRate(step: number, total: number, peak: number, warmup: number): number {
  if (step < warmup) return (peak * (step + 1)) / warmup;
  const progress = (step - warmup) / Math.max(1, total - warmup);
  return peak * (0.1 + 0.45 * (1 + Math.cos(Math.PI * Math.min(1, progress))));
}

interface LossLine {
  step: number;
  loss: number;
  /** Wall-clock seconds of the step. */
  seconds: number;
}

/** The loss log, one JSON line per step, keeping only steps before `upTo`. */
export function readLossLog(dir: string, upTo = Infinity): LossLine[] {
  const path = join(dir, 'loss.jsonl');
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as LossLine)
    .filter((l) => l.step < upTo);
}

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** The settings without the keys at their default (absent and default compare equal). */
function withoutDefaults(
  settings: Record<string, unknown>,
  defaults: Record<string, unknown>,
): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(settings).filter(([k, v]) => !(k in defaults && sameJson(v, defaults[k]))),
  );
}

export async function runStage(options: StageOptions): Promise<StageResult> {
  const { name, dir, steps, model, optimizer, generator } = options;
  mkdirSync(dir, { recursive: true });
  let start = 0;
  const latest = latestCheckpoint(dir);
  if (latest) {
    let info: ReturnType<typeof restoreCheckpoint>;
    try {
      info = restoreCheckpoint(latest, { adapter: model, optimizer, generator });
    } catch (err) {
      // e.g. a checkpoint of an earlier version of the model: say how to start over
      if (!(err instanceof CheckpointError)) throw err;
      throw new CheckpointError(`${err.message}; delete ${dir} to start the ${name} stage afresh`);
    }
    const defaults = options.settingDefaults ?? {};
    const stored = withoutDefaults(info.config, defaults);
    if (!sameJson(stored, withoutDefaults(options.settings, defaults))) {
      throw new CheckpointError(
        `${latest} was written with other settings (${JSON.stringify(info.config)}); ` +
          `delete ${dir} to start the ${name} stage afresh`,
      );
    }
    start = info.step;
  }
  // The log may run past the checkpoint when a run was killed: drop the steps that will rerun.
  const kept = readLossLog(dir, start);
  writeFileSync(join(dir, 'loss.jsonl'), kept.map((l) => `${JSON.stringify(l)}\n`).join(''));

  const progress = options.progress === false ? null : new Progress(`${name}`, steps);
  const began = performance.now();
  let recent = kept.slice(-50).map((l) => l.loss);
  for (let step = start; step < steps; step++) {
    optimizer.lr = learningRate(step, steps, options.lr, options.warmup);
    const t0 = performance.now();
    const loss = options.step(step);
    const seconds = (performance.now() - t0) / 1000;
    if (!Number.isFinite(loss)) {
      throw new TrainingDivergedError(
        `The ${name} stage's loss became ${loss} at step ${step + 1}; weights were not updated ` +
          `past the last checkpoint in ${dir}. Lower the learning rate or resume from it.`,
      );
    }
    appendFileSync(join(dir, 'loss.jsonl'), `${JSON.stringify({ step, loss, seconds })}\n`);
    recent = [...recent.slice(-49), loss];
    const done = step + 1;
    if (done % options.checkpointEvery === 0 || done === steps) {
      saveCheckpoint(dir, {
        step: done,
        adapter: model,
        optimizer,
        generator,
        config: options.settings,
        loss,
      });
      pruneCheckpoints(dir, 2);
    }
    const mean = recent.reduce((a, b) => a + b, 0) / recent.length;
    progress?.update(done, `loss ${mean.toFixed(4)}`);
    // Let Node run tensor finalizers between steps (docs/engine.md).
    await new Promise((resolve) => setImmediate(resolve));
  }
  const log = readLossLog(dir);
  const last = log.slice(-50).map((l) => l.loss);
  return {
    ran: steps - start,
    seconds: (performance.now() - began) / 1000,
    finalLoss: last.length ? last.reduce((a, b) => a + b, 0) / last.length : NaN,
    totalSeconds: log.reduce((a, l) => a + (l.seconds ?? 0), 0),
  };
}

/**
 * One optimizer step on loss(): zero the gradients, back-propagate, clip their global norm
 * (unless null) and step. Returns the loss; a non-finite loss leaves the weights untouched.
 */
export function optimizerStep(
  optimizer: Adam,
  loss: () => Tensor,
  maxGradNorm: number | null = 1,
): number {
  optimizer.zeroGrad();
  const value = tidy(() => {
    const l = loss();
    l.backward();
    return l.item();
  });
  if (Number.isFinite(value)) {
    if (maxGradNorm !== null) clipGradNorm(optimizer.params, maxGradNorm);
    optimizer.step();
  }
  return value;
}

/**
 * runStage for a freshly built model and its optimizer: returns the trained model in eval mode
 * (the caller disposes it), disposes it on failure, and always frees the optimizer's moments.
 */
export async function trainModel<M extends Module>(
  stage: Omit<StageOptions, 'model' | 'optimizer'> & { model: M; optimizer: Adam },
): Promise<{ model: M; result: StageResult }> {
  try {
    const result = await runStage(stage);
    return { model: stage.model.eval(), result };
  } catch (err) {
    stage.model.dispose();
    throw err;
  } finally {
    stage.optimizer.dispose();
  }
}
