// How a training run ends early: it diverged (a non-finite loss, gradient or weights), it was
// asked to stop — both name the checkpoint a resume continues from — or its folder could not
// take it (another run holds it, or it cannot be written).

export class TrainingDivergedError extends Error {
  constructor(
    message: string,
    /**
     * The step that diverged (1-based): its loss or gradient was not finite (nothing of it was
     * applied), or its update left weights that are not (they were not saved).
     */
    readonly step: number,
    /** The newest checkpoint written before it, or null. */
    readonly lastCheckpoint: string | null,
  ) {
    super(message);
    this.name = 'TrainingDivergedError';
  }
}

export class TrainingInterruptedError extends Error {
  constructor(
    message: string,
    /** Steps done when the run stopped. */
    readonly step: number,
    /** The checkpoint holding them. */
    readonly checkpoint: string | null,
  ) {
    super(message);
    this.name = 'TrainingInterruptedError';
  }
}

/**
 * A run's folder cannot take the run: another run holds it or its files, or it cannot be
 * written. The message names the file and says what to do.
 */
export class RunFolderError extends Error {
  constructor(
    message: string,
    /** The file or folder concerned. */
    readonly path: string,
  ) {
    super(message);
    this.name = 'RunFolderError';
  }
}

/** What an errno means for a file the run writes, and what to do about it. */
const WRITE_FAILURES: Record<string, string> = {
  ENOSPC: 'the disk is full: free some space or give another output folder',
  EDQUOT: 'the disk quota is used up: free some space or give another output folder',
  EROFS: 'the file system is read-only: give another output folder',
  EACCES: 'permission denied: make the folder writable or give another output folder',
  EPERM: 'permission denied: make the folder writable or give another output folder',
  EISDIR: 'a folder is in the way of the file: move it away or give another output folder',
  ENOTDIR: 'a file is in the way of a folder on its path: give another output folder',
  EEXIST: 'a file is in the way of the folder: give another output folder',
};

/**
 * A filesystem error met doing `action` to `path` ("write the checkpoint", "create the output
 * folder"), as an error that names the file and says what to do; other errors pass unchanged.
 */
export function writeFailure(err: unknown, path: string, action: string): unknown {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (typeof code !== 'string' || !/^E[A-Z]+$/.test(code)) return err;
  const advice = WRITE_FAILURES[code] ?? (err as Error).message;
  return new RunFolderError(`Cannot ${action} ${path}: ${advice} (${code})`, path);
}

/** Runs `write`, turning a filesystem error into writeFailure's, which names `path`. */
export async function writingTo<T>(
  path: string,
  action: string,
  write: () => Promise<T> | T,
): Promise<T> {
  try {
    return await write();
  } catch (err) {
    throw writeFailure(err, path, action);
  }
}
