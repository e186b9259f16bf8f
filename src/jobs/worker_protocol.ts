// The messages between the queue (local_queue.ts, via job_process.ts) and a job's child process
// (job_worker.ts), over Node's IPC channel. Everything here is plain JSON.
import type { JobInput, JobProgress } from './job.js';

/** Parent → child: the one job the child runs, then exits. */
export interface RunMessage {
  type: 'run';
  input: JobInput;
  /** The job's folder: outputs, and the job's log (job.log). */
  dir: string;
  /** Bytes the job may use beyond its loaded models (a share of the machine), if limited. */
  memoryBudget?: number;
}

/** Child → parent. */
export type WorkerMessage =
  | { type: 'progress'; progress: JobProgress }
  | { type: 'result'; result: unknown }
  | { type: 'error'; name: string; message: string };
