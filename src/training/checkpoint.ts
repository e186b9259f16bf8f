// Training checkpoints: everything a P3S run needs to continue exactly where it stopped, in one
// safetensors file written atomically (temporary file, fsync, rename), so a crash or a kill
// during the write leaves the previous checkpoint intact and never a half-written one.
//
//   adapter/<key>          the trained weights (adapter.stateDict())
//   optimizer/<i>.exp_avg  Adam's moments by parameter index (Adam.stateDict())
//   optimizer/<i>.exp_avg_sq
//   generator/state        the training Generator's state (copies, timesteps, noise, dropout)
//   __metadata__           format, step (optimizer steps done), Adam's per-parameter step
//                          counts, the run's config (JSON), the loss of the last step
//
// The data order is a function of (seed, sample index), so the step count restores it.
import { existsSync, mkdirSync, readdirSync, unlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Tensor } from '../engine/tensor.js';
import { disposeAll } from '../engine/scope.js';
import type { Generator } from '../engine/random.js';
import { SafetensorsFile, saveSafetensors } from '../io/safetensors.js';
import type { Adam } from '../optim/adam.js';
import type { Module } from '../nn/module.js';

export const CHECKPOINT_FORMAT = 'p3s-checkpoint';
const CHECKPOINT_RE = /^checkpoint-(\d+)\.safetensors$/;

export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CheckpointError';
  }
}

export interface CheckpointState {
  /** Optimizer steps done. */
  step: number;
  adapter: Module;
  optimizer: Adam;
  generator: Generator;
  /** The run's settings (JSON-serialisable), compared on resume. */
  config: Record<string, unknown>;
  /** Loss of the last step (for the log). */
  loss: number;
}

export function checkpointPath(dir: string, step: number): string {
  return join(dir, `checkpoint-${String(step).padStart(6, '0')}.safetensors`);
}

/** Checkpoints in a folder, by step ascending. */
export function listCheckpoints(dir: string): { step: number; path: string }[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((f) => CHECKPOINT_RE.exec(f))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ step: Number(m[1]), path: join(dir, m[0]) }))
    .sort((a, b) => a.step - b.step);
}

export function latestCheckpoint(dir: string): string | null {
  const all = listCheckpoints(dir);
  return all.length ? all[all.length - 1]!.path : null;
}

/** Writes a checkpoint atomically; returns its path. */
export function saveCheckpoint(dir: string, state: CheckpointState): string {
  mkdirSync(dir, { recursive: true });
  const tensors = new Map<string, Tensor>();
  for (const [key, t] of state.adapter.stateDict()) tensors.set(`adapter/${key}`, t);
  const opt = state.optimizer.stateDict();
  for (const [key, t] of opt.tensors) tensors.set(`optimizer/${key}`, t);
  const generatorState = state.generator.getState();
  tensors.set('generator/state', generatorState);
  const path = checkpointPath(dir, state.step);
  try {
    saveSafetensors(path, tensors, {
      format: CHECKPOINT_FORMAT,
      step: String(state.step),
      optimizer_steps: JSON.stringify(opt.steps),
      config: JSON.stringify(state.config),
      loss: String(state.loss),
    });
  } finally {
    generatorState.dispose();
  }
  return path;
}

/** Deletes all but the newest `keep` checkpoints (keep ≥ 1). */
export function pruneCheckpoints(dir: string, keep: number): void {
  const all = listCheckpoints(dir);
  for (const { path } of all.slice(0, Math.max(0, all.length - Math.max(1, keep)))) {
    try {
      unlinkSync(path);
    } catch {
      // already gone
    }
  }
}

export interface CheckpointInfo {
  path: string;
  step: number;
  config: Record<string, unknown>;
  loss: number;
}

function openCheckpoint(path: string): { file: SafetensorsFile; info: CheckpointInfo } {
  if (!existsSync(path)) throw new CheckpointError(`Checkpoint not found: ${path}`);
  const file = SafetensorsFile.open(path);
  const m = file.metadata;
  if (m.format !== CHECKPOINT_FORMAT) {
    throw new CheckpointError(
      `${basename(path)} is not a p3s training checkpoint (format ${JSON.stringify(m.format ?? null)})`,
    );
  }
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(m.config ?? 'null') as Record<string, unknown>;
  } catch {
    throw new CheckpointError(`${basename(path)}: its config is not valid JSON`);
  }
  return {
    file,
    info: { path, step: Number(m.step), config: config ?? {}, loss: Number(m.loss) },
  };
}

/** A checkpoint's step, config and loss, without reading its tensors. */
export function readCheckpointInfo(path: string): CheckpointInfo {
  return openCheckpoint(path).info;
}

/** Loads a checkpoint into the adapter, the optimizer and the generator; returns its info. */
export function restoreCheckpoint(
  path: string,
  target: { adapter: Module; optimizer: Adam; generator: Generator },
): CheckpointInfo {
  const { file, info } = openCheckpoint(path);
  const prefixed = (prefix: string): Map<string, Tensor> => {
    const out = new Map<string, Tensor>();
    for (const key of file.keys())
      if (key.startsWith(prefix)) out.set(key.slice(prefix.length), file.tensor(key));
    return out;
  };
  const adapter = prefixed('adapter/');
  const optimizer = prefixed('optimizer/');
  const generator = prefixed('generator/');
  try {
    target.adapter.loadStateDict(adapter);
    let steps: number[];
    try {
      steps = JSON.parse(file.metadata.optimizer_steps ?? '') as number[];
    } catch {
      throw new CheckpointError(`${basename(path)}: optimizer_steps is not valid JSON`);
    }
    target.optimizer.loadStateDict({ steps, tensors: optimizer });
    const state = generator.get('state');
    if (!state) throw new CheckpointError(`${basename(path)} lacks generator/state`);
    target.generator.setState(state);
  } catch (err) {
    if (err instanceof CheckpointError) throw err;
    throw new CheckpointError(`Cannot resume from ${basename(path)}: ${(err as Error).message}`);
  } finally {
    disposeAll([...adapter.values(), ...optimizer.values(), ...generator.values()]);
  }
  return info;
}
