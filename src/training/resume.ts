// Where a run continues from. A checkpoint is taken only if it belongs to this run (the same
// identity; its lineage is inherited) or — for a branch — to a run on the same models and data,
// and only if, once restored, its weights are fit (finite.ts). When the caller allows it (a
// resume from "the newest checkpoint"), one that cannot be read or holds unfit weights gives way
// to the next older one in its folder, with a note naming it. Checkpoints newer than the one
// taken are set aside (renamed *.abandoned), so that the run's own never mix with them.
import { renameSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { SafetensorsError } from '../io/safetensors.js';
import {
  CheckpointError,
  listCheckpoints,
  readCheckpointInfo,
  restoreCheckpoint,
  type CheckpointInfo,
} from './checkpoint.js';
import { writeFailure } from './errors.js';
import { unfitState } from './finite.js';
import {
  identityDifferences,
  identityDigest,
  lineageOf,
  type Lineage,
  type RunIdentity,
} from './identity.js';
import type { TrainingLoop } from './loop.js';

export interface ResumePoint {
  /** The checkpoint taken, and its step. */
  path: string;
  step: number;
  /** Where the run branched from (this session's branch, or inherited), or null. */
  lineage: Lineage | null;
}

/** A checkpoint that cannot be used (unreadable, unfit); the fallback moves past it. */
class Unusable extends Error {}

/** A resume (not a branch) continues only the run that wrote the checkpoint. */
function refuseDifferences(info: CheckpointInfo, identity: RunIdentity, advice: string): void {
  const differ = identityDifferences(info.config, identity);
  if (differ.length > 0)
    throw new CheckpointError(
      `Cannot resume from ${basename(info.path)}: the run differs in ${differ.join(', ')}${advice}`,
    );
}

/**
 * The same refusal before a run's costly preparation (a baseline's class images): a checkpoint
 * that cannot be read is left to resumeRun, which may fall back to an older one.
 */
export function refuseOtherRun(path: string, identity: RunIdentity, resumeAdvice?: string): void {
  let info: CheckpointInfo;
  try {
    info = readCheckpointInfo(path);
  } catch (err) {
    if (err instanceof SafetensorsError || err instanceof CheckpointError) return;
    throw err;
  }
  refuseDifferences(info, identity, resumeAdvice ? `; ${resumeAdvice}` : '');
}

/** The lineage the run continues under, or a refusal when the checkpoint is of another run. */
function lineageFor(loop: TrainingLoop, info: CheckpointInfo): Lineage | null {
  const name = basename(info.path);
  const advice = loop.resumeAdvice ? `; ${loop.resumeAdvice}` : '';
  const identity: RunIdentity = loop.identity;
  if (!loop.branch) {
    refuseDifferences(info, identity, advice);
    return lineageOf(info.config);
  }
  const fixed = identityDifferences(info.config, identity, identity.fixed ?? []);
  const changed = identityDifferences(info.config, identity);
  if (identity.fixed === undefined || fixed.length > 0)
    throw new CheckpointError(
      `Cannot branch from ${name}: a branch keeps the models and the data, but the run differs in ${(identity.fixed ? fixed : changed).join(', ')}`,
    );
  if (changed.length === 0)
    throw new CheckpointError(
      `Nothing to branch: this run's settings are those of ${name}; resume it without branching, or change a setting (e.g. a lower learning rate)`,
    );
  return {
    checkpoint: resolve(info.path),
    step: info.step,
    run: identityDigest(info.config),
    changed,
  };
}

/** Reads, checks and restores one checkpoint; Unusable when it cannot be read or is unfit. */
function take(loop: TrainingLoop, path: string): ResumePoint {
  const unreadable = (err: unknown): unknown =>
    err instanceof SafetensorsError || err instanceof CheckpointError
      ? new Unusable(err.message)
      : err;
  let info: CheckpointInfo;
  try {
    info = readCheckpointInfo(path);
  } catch (err) {
    throw unreadable(err);
  }
  const lineage = lineageFor(loop, info);
  try {
    restoreCheckpoint(path, {
      adapter: loop.state.model,
      optimizer: loop.state.optimizer,
      generator: loop.state.generator,
    });
  } catch (err) {
    throw unreadable(err);
  }
  const unfit = unfitState(loop.state, loop.probeLoss);
  if (unfit !== null) throw new Unusable(`${basename(path)} holds unfit weights: ${unfit}`);
  return { path, step: info.step, lineage };
}

/** The given checkpoint, then (with resumeFallback) the older ones of its folder, newest first. */
function candidates(loop: TrainingLoop): string[] {
  const given = resolve(loop.resumeFrom!);
  const folder = listCheckpoints(dirname(given)).map((c) => resolve(c.path));
  const at = folder.indexOf(given);
  return loop.resumeFallback && at >= 0 ? folder.slice(0, at + 1).reverse() : [given];
}

/** Renames the checkpoints of the run's folder newer than `step` to *.abandoned. */
function setAsideNewer(loop: TrainingLoop, step: number, log: (m: string) => void): void {
  for (const c of listCheckpoints(loop.checkpointDir).filter((c) => c.step > step)) {
    try {
      renameSync(c.path, `${c.path}.abandoned`);
    } catch (err) {
      throw writeFailure(err, c.path, 'set aside the newer checkpoint');
    }
    log(`Set aside ${c.path} (renamed *.abandoned): the run continues from step ${step}`);
  }
}

/** Restores the run's resume point (see the top of this file); `log` gets the notes. */
export function resumeRun(loop: TrainingLoop, log: (message: string) => void): ResumePoint {
  const advice = loop.resumeAdvice ? `; ${loop.resumeAdvice}` : '';
  const tried = candidates(loop);
  const skipped: string[] = [];
  for (const path of tried) {
    try {
      const point = take(loop, path);
      setAsideNewer(loop, point.step, log);
      return point;
    } catch (err) {
      if (!(err instanceof Unusable)) throw err;
      if (tried.length === 1) throw new CheckpointError(`${err.message}${advice}`);
      skipped.push(err.message);
      log(`Warning: cannot resume from ${path} (${err.message}); trying the checkpoint before it`);
    }
  }
  throw new CheckpointError(
    `No usable checkpoint in ${dirname(tried[0]!)}: ${skipped.join('; ')}${advice}`,
  );
}
