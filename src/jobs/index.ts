// The job layer: long work (masks, P3S training, generation) as jobs run outside the server's
// event loop. job.ts is the contract; LocalJobQueue runs jobs in child processes on this machine.
export {
  FINISHED_STATES,
  JobError,
  type JobEvent,
  type JobInput,
  type JobKind,
  type JobProgress,
  type JobQueue,
  type JobRecord,
  type JobState,
} from './job.js';
export { JOB_KINDS, JobStore, isJobId, newJobId } from './job_store.js';
export { LocalJobQueue, type LocalJobQueueOptions } from './local_queue.js';
