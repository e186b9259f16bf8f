// A job's child process (started by job_process.ts only): receives one job over IPC, runs it
// (job_runs.ts), reports progress and the result or the error, and exits. The libtorch thread
// count comes from P3S_NUM_THREADS, which the parent sets.
//
// Stopping: SIGTERM (a cancel, or the queue closing) stops training after the current step with
// a checkpoint; other kinds stop at once. The parent going away (the IPC channel closes: the
// server was killed) stops the job the same way, so no orphan keeps writing into a folder that
// the next server resumes. SIGINT is ignored: Ctrl-C in the server's terminal reaches the whole
// process group, and it is the server's to decide what its jobs do then.
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { runJob } from './job_runs.js';
import type { RunMessage, WorkerMessage } from './worker_protocol.js';
import { postToParent, tellParent } from './parent_channel.js';

const post = (m: WorkerMessage): Promise<void> => postToParent(m);
const tell = (m: WorkerMessage): void => tellParent(m);

const controller = new AbortController();
let kind: RunMessage['input']['kind'] | null = null;
/** Set once the job has reported its end: from then on there is nothing to stop. */
let ended = false;

/** Training stops at the next step boundary; anything else (or a job not yet begun) at once. */
function stop(why: string): void {
  if (ended) return;
  if (kind !== 'train' || controller.signal.aborted) process.exit(143);
  logLine(`${why}: stopping after this step, with a checkpoint`);
  controller.abort();
}

let logFile: string | null = null;
function logLine(message: string): void {
  if (logFile === null) return;
  try {
    appendFileSync(logFile, `${new Date().toISOString()} ${message}\n`);
  } catch {
    // the log is a convenience; the job's own outputs report write failures
  }
}

async function run(m: RunMessage): Promise<void> {
  kind = m.input.kind;
  logFile = join(m.dir, 'job.log');
  const result = await runJob(m.input, m.dir, {
    progress: (progress) => tell({ type: 'progress', progress }),
    log: logLine,
    signal: controller.signal,
    memoryBudget: m.memoryBudget,
  });
  await post({ type: 'result', result });
}

if (!process.send) {
  console.error('job_worker is started by the job queue (src/jobs/local_queue.ts), not on its own');
  process.exit(2);
}
process.on('SIGINT', () => undefined);
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('disconnect', () => stop('The job queue went away'));
process.once('message', (raw) => {
  run(raw as RunMessage)
    .catch(async (err: unknown) => {
      const e = err instanceof Error ? err : new Error(String(err));
      logLine(`${e.name}: ${e.message}`);
      await post({ type: 'error', name: e.name, message: e.message }).catch(() => undefined);
      process.exitCode = 1;
    })
    .finally(() => {
      ended = true;
      if (process.connected) process.disconnect();
    });
});
