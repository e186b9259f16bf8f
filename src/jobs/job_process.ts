// The parent's side of a job's child process (job_worker.ts): starts it with the job, passes its
// progress on, and tells how it ended — a result, the job's error, or a process that stopped
// without either (killed, crashed, out of memory). It never throws or rejects: whatever the
// child does, the queue gets a WorkerEnd.
import { fork, type ChildProcess } from 'node:child_process';
import type { JobProgress } from './job.js';
import type { RunMessage, WorkerMessage } from './worker_protocol.js';

export type WorkerEnd =
  | { type: 'result'; result: unknown }
  | { type: 'error'; name: string; message: string }
  /** Stopped without a result: `how` says how ("killed by SIGKILL", "exit code 1"). */
  | { type: 'stopped'; how: string };

export interface WorkerOptions {
  /** The compiled job_worker.js. */
  workerPath: string;
  /** libtorch threads in the child (P3S_NUM_THREADS there). */
  threads: number;
  message: RunMessage;
  onProgress(progress: JobProgress): void;
}

export interface WorkerHandle {
  readonly pid: number | undefined;
  /** Resolves once the process has exited and every message it sent has been read. */
  readonly ended: Promise<WorkerEnd>;
  /**
   * Asks the job to stop (SIGTERM: training finishes its step and writes a checkpoint) and, if
   * it has not ended after `killAfterMs`, kills it (SIGKILL). Resolves with how it ended.
   */
  stop(killAfterMs: number): Promise<WorkerEnd>;
}

function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  return signal !== null ? `killed by ${signal}` : `exit code ${code}`;
}

/** Starts the child and sends it the job. */
export function startWorker(options: WorkerOptions): WorkerHandle {
  let child: ChildProcess;
  try {
    child = fork(options.workerPath, [], {
      env: { ...process.env, P3S_NUM_THREADS: String(options.threads) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
  } catch (err) {
    const how = `could not be started: ${(err as Error).message}`;
    const ended = Promise.resolve<WorkerEnd>({ type: 'stopped', how });
    return { pid: undefined, ended, stop: () => ended };
  }
  const ended = watch(child, options);
  child.send(options.message, (err) => {
    // a child that died before reading its job: 'close' reports how
    if (err) child.kill('SIGKILL');
  });
  return {
    pid: child.pid,
    ended,
    stop(killAfterMs) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
      return ended.finally(() => clearTimeout(timer));
    },
  };
}

function watch(child: ChildProcess, options: WorkerOptions): Promise<WorkerEnd> {
  return new Promise((resolve) => {
    let reported: WorkerEnd | null = null;
    child.on('message', (raw) => {
      const m = raw as WorkerMessage;
      if (m.type === 'progress') {
        try {
          options.onProgress(m.progress);
        } catch {
          // a listener's failure is not the job's: it goes on
        }
      } else if (m.type === 'result') reported = { type: 'result', result: m.result };
      else if (m.type === 'error') reported = { type: 'error', name: m.name, message: m.message };
    });
    child.on('error', (err) => {
      // a process that never started has no 'close' to wait for
      if (child.pid === undefined)
        resolve({ type: 'stopped', how: `could not be started: ${err.message}` });
    });
    // 'exit' can come before the last message is read; 'close' comes after both
    child.on('close', (code, signal) => {
      resolve(reported ?? { type: 'stopped', how: describeExit(code, signal) });
    });
  });
}
