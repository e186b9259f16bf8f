// A child process's messages to the parent that started it with an IPC channel (fork): the
// job workers (job_worker.ts) and the toy experiments' workers use the same two kinds.

/** Sends a message and resolves once it is handed to the channel (the result must be, before exit). */
export const postToParent = (m: object): Promise<void> =>
  new Promise((resolve, reject) =>
    process.send!(m, undefined, undefined, (err: Error | null) => (err ? reject(err) : resolve())),
  );

/**
 * Sends a message that needs no confirmation (progress: a lost tick only delays a bar); nothing
 * once the parent is gone, where a send would fail with EPIPE.
 */
export const tellParent = (m: object): void => {
  if (process.connected) process.send!(m, undefined, undefined, () => undefined);
};
