// A run owns its folder while it runs: a lock file (run.lock) naming the process, its host and
// when it started. It appears complete or not at all (written to a temporary file, then linked
// to its name, which fails if the name exists), so of two runs started at once exactly one gets
// it. A second run is refused, naming the holder. A lock whose process is gone (killed) is taken
// over with a note; one held on another host cannot be checked and is refused, saying how to
// remove it.
import { linkSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { RunFolderError, writeFailure } from './errors.js';

export const LOCK_FILE = 'run.lock';

interface LockHolder {
  pid: number;
  host: string;
  started: string;
}

export interface RunLock {
  path: string;
  /** Removes the lock if it is still this run's. */
  release(): void;
}

/** Whether a process of this host runs (EPERM: it does, under another user). */
export function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readHolder(path: string): LockHolder | null {
  try {
    const holder = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockHolder>;
    return Number.isSafeInteger(holder.pid) && typeof holder.host === 'string'
      ? (holder as LockHolder)
      : null;
  } catch {
    return null;
  }
}

/** Creates the lock unless it exists (false); other failures name the file. */
function tryCreate(path: string, me: LockHolder): boolean {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, `${JSON.stringify(me)}\n`);
    linkSync(tmp, path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw writeFailure(err, path, 'write the lock file');
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      // never written
    }
  }
}

function busy(dir: string, path: string, holder: LockHolder): RunFolderError {
  const who = `process ${holder.pid} on ${holder.host}, started ${holder.started}`;
  const todo =
    holder.host === hostname()
      ? `wait for it to finish or stop it (kill ${holder.pid}), or give another output folder`
      : `p3s cannot check a process on another host: if it no longer runs, delete ${path}; else give another output folder`;
  return new RunFolderError(`Another run (${who}) is using ${dir}: ${todo}`, path);
}

/**
 * Locks `dir` for this run, or refuses if a running process holds it; a stale lock (its process
 * gone, or the file unreadable) is taken over and `note` says so.
 */
export function lockRunFolder(dir: string, note: (message: string) => void): RunLock {
  const path = join(dir, LOCK_FILE);
  const me: LockHolder = { pid: process.pid, host: hostname(), started: new Date().toISOString() };
  for (let attempt = 0; !tryCreate(path, me); attempt++) {
    const holder = readHolder(path);
    const running =
      holder !== null &&
      (holder.host !== me.host || holder.pid === me.pid || processRuns(holder.pid));
    if (running) throw busy(dir, path, holder);
    if (attempt > 0)
      throw new RunFolderError(
        `Cannot take over the lock ${path}: if no run uses ${dir}, delete the file`,
        path,
      );
    try {
      unlinkSync(path);
    } catch {
      // removed meanwhile by the run that left it, or by another run taking it over
    }
    note(
      holder === null
        ? `Took over the unreadable lock ${path}`
        : `Took over the lock ${path} of process ${holder.pid}, which no longer runs`,
    );
  }
  return {
    path,
    release() {
      const holder = readHolder(path);
      if (holder?.pid !== me.pid || holder.started !== me.started) return;
      try {
        unlinkSync(path);
      } catch {
        // already gone
      }
    },
  };
}
