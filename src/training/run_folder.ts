// The folder a training run writes into, made ready before any work starts, so that a run fails
// at once rather than after hours: the folder can be written (a probe file is created and
// removed), the disk has room for what the run will write, the temporary files of writes that
// were killed midway are removed, and a new run does not silently replace the results of
// another (it is refused unless asked to replace them; then they are deleted just before the
// new run writes its own). Locking is run_lock.ts.
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  statfsSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { RunFolderError, writeFailure } from './errors.js';
import { processRuns } from './run_lock.js';

/** Creates the folder if needed and checks a file can be written in it (and removed). */
export function checkWritable(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw writeFailure(err, dir, 'create the output folder');
  }
  // named as a temporary file, so that a kill between its creation and removal leaves no litter
  const probe = join(dir, `.p3s-write-probe.tmp-${process.pid}`);
  try {
    const fd = openSync(probe, 'w');
    try {
      writeSync(fd, 'p3s');
    } finally {
      closeSync(fd);
    }
    unlinkSync(probe);
  } catch (err) {
    throw writeFailure(err, dir, 'write into the output folder');
  }
}

/** `<name>.tmp-<pid>`: what an atomic write leaves behind when its process is killed. */
const TEMPORARY_RE = /\.tmp-(\d+)$/;

/** Removes the temporary files of writes whose process no longer runs; returns their paths. */
export function removeStaleTemporaries(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const removed: string[] = [];
  for (const name of readdirSync(dir)) {
    const pid = Number(TEMPORARY_RE.exec(name)?.[1] ?? NaN);
    if (!Number.isSafeInteger(pid) || pid === process.pid || processRuns(pid)) continue;
    try {
      unlinkSync(join(dir, name));
      removed.push(join(dir, name));
    } catch {
      // removed meanwhile
    }
  }
  return removed;
}

const gigabytes = (bytes: number): string => `${(bytes / 1e9).toPrecision(3)} GB`;

/**
 * Refuses to start when the disk holding `dir` has less room than `bytes` (what the run will
 * write: `what`). A file system that cannot tell its free space is not checked.
 */
export function checkFreeSpace(
  dir: string,
  bytes: number,
  what: string,
  statfs: (path: string) => { bavail: number; bsize: number } = statfsSync,
): void {
  let free: number;
  try {
    const s = statfs(dir);
    free = s.bavail * s.bsize;
  } catch {
    return;
  }
  if (free >= bytes) return;
  throw new RunFolderError(
    `Not enough space in ${dir}: the run writes about ${gigabytes(bytes)} (${what}) but ${gigabytes(free)} are free: free some space or give another output folder`,
    dir,
  );
}

/**
 * Refuses a new (not resumed) run into a folder holding an earlier run's work (`work`: its
 * checkpoints, its result, those that exist); `advice` says what to do instead.
 */
export function refuseEarlierRun(dir: string, work: string[], advice: string): void {
  if (work.length === 0) return;
  const shown = work.slice(0, 3).map((p) => basename(p));
  throw new RunFolderError(
    `${dir} holds another run (${shown.join(', ')}${work.length > 3 ? ', ...' : ''}): ${advice}`,
    work[0]!,
  );
}

/** Deletes an earlier run's files (those that exist), so that a new run replaces it. */
export function deleteEarlierRun(
  dir: string,
  files: string[],
  note: (message: string) => void,
): void {
  let deleted = 0;
  for (const path of files) {
    try {
      unlinkSync(path);
      deleted++;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        throw writeFailure(err, path, "delete the earlier run's file");
    }
  }
  if (deleted > 0) note(`Replaced the earlier run in ${dir}: deleted its ${deleted} file(s)`);
}
