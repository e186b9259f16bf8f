// The local backend of the job layer: jobs run in child processes on this machine, `concurrency`
// at a time, in submission order, with their records in the data folder (job_store.ts). The
// server's event loop only forks, reads messages and writes small JSON files.
//
// Restart safety: the record of a job is written at every change of state, so a server that
// dies leaves its running jobs recorded as running. The next open puts them back in the queue
// (attempts kept); a training job then resumes from the newest checkpoint in its folder, so a
// restart loses at most the steps since its last checkpoint. close() stops running jobs the same
// way, on purpose: SIGTERM makes training write a checkpoint first.
//
// Nothing a job does reaches the caller as an exception: a failing or crashing job ends as
// `failed` with a message, and a listener that throws, or a record that cannot be written, is
// reported through onWarning.
import { mkdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { latestCheckpoint } from '../training/checkpoint.js';
import { RunFolderError } from '../training/errors.js';
import { LOCK_FILE, lockRunFolder, processRuns, type RunLock } from '../training/run_lock.js';
import {
  FINISHED_STATES,
  JobError,
  queuedRecord,
  type JobEvent,
  type JobInput,
  type JobProgress,
  type JobQueue,
  type JobRecord,
  type JobState,
} from './job.js';
import { startWorker, type WorkerEnd, type WorkerHandle } from './job_process.js';
import { JOB_KINDS, JobStore, isJobId, newJobId } from './job_store.js';
import { Throttle } from './throttle.js';

export interface LocalJobQueueOptions {
  /** The data folder; records and job folders go to <dataDir>/jobs. */
  dataDir: string;
  /** Jobs running at once (default 1: one per device). */
  concurrency?: number;
  /** libtorch threads of each job's process (default 1). */
  threads?: number;
  /** The compiled job_worker.js (default: the one next to this module). */
  workerPath?: string;
  /** Least time between two progress events of one job (default 200 ms: 5 a second). */
  progressIntervalMs?: number;
  /**
   * How long a stopped job may take to end (training finishes its step and writes a
   * checkpoint) before its process is killed (default 10 minutes).
   */
  stopTimeoutMs?: number;
  /** Bytes each job may use beyond its loaded models (default: what the system has free). */
  memoryBudget?: number;
  /** Problems that stop nothing: an unreadable record, a listener that threw (default: process warnings). */
  onWarning?: (message: string) => void;
}

/** A job whose process runs. */
interface Running {
  handle: WorkerHandle;
  /** Why the queue stops it, if it does: a cancel ends it cancelled, a close queued. */
  stopping: 'cancel' | 'close' | null;
  /** Set once SIGTERM was sent: a second one would kill training without its checkpoint. */
  stopRequested: boolean;
  progress: Throttle<JobProgress>;
  /** Resolves once the job's record says how it ended. */
  done: Promise<void>;
}

const DEFAULT_WORKER = fileURLToPath(new URL('./job_worker.js', import.meta.url));

const clone = (job: JobRecord): JobRecord => structuredClone(job);
const isFinished = (state: JobState): boolean => FINISHED_STATES.includes(state);

function positiveInteger(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 1)
    throw new RangeError(`Expected a positive integer for ${name} but received ${value}`);
  return value;
}

export class LocalJobQueue implements JobQueue {
  private readonly jobs = new Map<string, JobRecord>();
  /** Ids of queued jobs, in the order they start. */
  private readonly waiting: string[] = [];
  private readonly running = new Map<string, Running>();
  private readonly listeners = new Set<(event: JobEvent) => void>();
  private closed = false;

  private constructor(
    private readonly store: JobStore,
    /** One queue per data folder: two would run the same jobs. */
    private readonly lock: RunLock,
    private readonly options: Required<Omit<LocalJobQueueOptions, 'memoryBudget'>> &
      Pick<LocalJobQueueOptions, 'memoryBudget'>,
  ) {}

  /**
   * Opens the queue on a data folder: reads its jobs, puts back in the queue the ones that were
   * running when the last server stopped, and starts jobs.
   */
  static async open(options: LocalJobQueueOptions): Promise<LocalJobQueue> {
    const settings = {
      ...options,
      concurrency: positiveInteger(options.concurrency ?? 1, 'concurrency'),
      threads: positiveInteger(options.threads ?? 1, 'threads'),
      workerPath: options.workerPath ?? DEFAULT_WORKER,
      progressIntervalMs: options.progressIntervalMs ?? 200,
      stopTimeoutMs: options.stopTimeoutMs ?? 10 * 60_000,
      onWarning: options.onWarning ?? ((m: string) => process.emitWarning(m, 'JobQueueWarning')),
    };
    const store = JobStore.open(options.dataDir);
    const queue = new LocalJobQueue(store, lockJobs(store.root, settings.onWarning), settings);
    try {
      const interrupted = queue.load();
      await queue.waitForOrphans(interrupted);
    } catch (err) {
      queue.lock.release();
      throw err;
    }
    queue.pump();
    return queue;
  }

  /** Reads the records; returns the jobs that were running (now queued again). */
  private load(): JobRecord[] {
    const { records, unreadable } = this.store.readAll();
    for (const u of unreadable)
      this.options.onWarning(`Skipped the job record ${u.path}: ${u.reason}`);
    const interrupted: JobRecord[] = [];
    for (const job of records) {
      this.jobs.set(job.id, job);
      if (job.state === 'running') {
        job.state = 'queued'; // the server stopped while it ran
        this.save(job);
        interrupted.push(job);
      }
      if (job.state === 'queued') this.waiting.push(job.id);
    }
    return interrupted;
  }

  /**
   * Waits until the processes of a killed server's training jobs have ended: they stop after
   * their step when they lose the server (job_worker.ts), and hold the run's folder (its lock
   * names them) until they have written their checkpoint.
   */
  private async waitForOrphans(jobs: JobRecord[]): Promise<void> {
    const deadline = Date.now() + this.options.stopTimeoutMs;
    for (const job of jobs) {
      if (job.input.kind !== 'train') continue;
      while (lockHolderRuns(job.dir) && Date.now() < deadline) await delay(100);
    }
  }

  async submit(input: JobInput, owner: string | null = null): Promise<JobRecord> {
    if (this.closed) throw new Error('The job queue is closed: it takes no new jobs');
    if (owner !== null && typeof owner !== 'string')
      throw new JobError(
        `Expected a string or null for owner but received ${typeof owner}`,
        'invalid',
      );
    const id = newJobId();
    const dir = this.store.folderOf(id);
    const job = queuedRecord(id, owner, inFolder(checkedInput(input), dir), dir);
    mkdirSync(dir, { recursive: true });
    this.store.write(job);
    this.jobs.set(id, job);
    this.waiting.push(id);
    this.emit('submitted', job);
    const submitted = clone(job); // as stored: queued, whether or not it starts at once
    this.pump();
    return submitted;
  }

  get(id: string): JobRecord {
    return clone(this.find(id));
  }

  list(owner?: string): JobRecord[] {
    return [...this.jobs.values()]
      .filter((job) => owner === undefined || job.owner === owner)
      .sort((a, b) => (a.id < b.id ? 1 : -1))
      .map(clone);
  }

  /**
   * Cancels a queued job at once, or stops a running one (training writes a checkpoint first)
   * and resolves once its process has ended. A job that ended meanwhile keeps its own end.
   */
  async cancel(id: string): Promise<JobRecord> {
    const job = this.find(id);
    if (isFinished(job.state))
      throw new JobError(
        `Job ${id} has already ended (${job.state}): nothing to cancel`,
        'finished',
      );
    const run = this.running.get(id);
    if (run) {
      await this.stop(run, 'cancel');
    } else {
      const at = this.waiting.indexOf(id);
      if (at >= 0) this.waiting.splice(at, 1);
      this.finish(job, 'cancelled');
    }
    return clone(job);
  }

  subscribe(listener: (event: JobEvent) => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /** Takes no more jobs; stops the running ones as a restart would (the next open resumes them). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.running.values()].map((run) => this.stop(run, 'close')));
    this.lock.release();
  }

  // -------------------------------------------------------------------------------------------

  private find(id: string): JobRecord {
    const job = isJobId(id) ? this.jobs.get(id) : undefined;
    if (job === undefined) throw new JobError(`No job ${JSON.stringify(id)}`, 'not-found');
    return job;
  }

  /** Starts queued jobs while there is room. */
  private pump(): void {
    while (!this.closed && this.running.size < this.options.concurrency) {
      const id = this.waiting.shift();
      if (id === undefined) return;
      const job = this.jobs.get(id);
      if (job?.state === 'queued') this.start(job);
    }
  }

  private start(job: JobRecord): void {
    job.input = resumeInput(job);
    job.state = 'running';
    job.startedAt = new Date().toISOString();
    job.attempts += 1;
    job.error = null;
    this.save(job);
    this.emit('started', job);
    const progress = new Throttle<JobProgress>(this.options.progressIntervalMs, (p) => {
      job.progress = p;
      this.save(job);
      this.emit('progress', job);
    });
    const handle = startWorker({
      workerPath: this.options.workerPath,
      threads: this.options.threads,
      message: {
        type: 'run',
        input: job.input,
        dir: job.dir,
        memoryBudget: this.options.memoryBudget,
      },
      onProgress: (p) => progress.push(p),
    });
    const run: Running = {
      handle,
      stopping: null,
      stopRequested: false,
      progress,
      done: Promise.resolve(),
    };
    run.done = handle.ended
      .then((end) => this.ended(job, run, end))
      .catch((err: unknown) => this.options.onWarning(`Job ${job.id}: ${(err as Error).message}`));
    this.running.set(job.id, run);
  }

  /** Stops a running job (a cancel wins over a close) and waits for its record's end. */
  private async stop(run: Running, why: 'cancel' | 'close'): Promise<void> {
    if (why === 'cancel' || run.stopping === null) run.stopping = why;
    if (!run.stopRequested) {
      run.stopRequested = true;
      void run.handle.stop(this.options.stopTimeoutMs);
    }
    await run.done;
  }

  /** A job's process has ended: its record says how, and the next job starts. */
  private ended(job: JobRecord, run: Running, end: WorkerEnd): void {
    this.running.delete(job.id);
    job.progress = run.progress.stop() ?? job.progress;
    if (end.type === 'result') {
      job.result = end.result;
      this.finish(job, 'succeeded');
    } else if (run.stopping === 'cancel') {
      this.finish(job, 'cancelled');
    } else if (run.stopping === 'close') {
      job.state = 'queued'; // resumed by the next open
      this.save(job);
    } else {
      job.error =
        end.type === 'error'
          ? { name: end.name, message: end.message }
          : {
              name: 'JobProcessError',
              message: `The job's process stopped without a result (${end.how})`,
            };
      this.finish(job, 'failed');
    }
    this.pump();
  }

  private finish(job: JobRecord, state: 'succeeded' | 'failed' | 'cancelled'): void {
    job.state = state;
    job.finishedAt = new Date().toISOString();
    this.save(job);
    this.emit('finished', job);
  }

  /** Persists a change of state; a failure to write is reported, never thrown at the job. */
  private save(job: JobRecord): void {
    try {
      this.store.write(job);
    } catch (err) {
      this.options.onWarning(`Job ${job.id}: ${(err as Error).message}`);
    }
  }

  private emit(type: JobEvent['type'], job: JobRecord): void {
    if (this.listeners.size === 0) return;
    const event: JobEvent = { type, job: clone(job) };
    for (const listener of [...this.listeners]) {
      try {
        listener(event);
      } catch (err) {
        this.options.onWarning(
          `A job event listener threw on ${type} of ${job.id}: ${(err as Error).message}`,
        );
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------

/** The input as plain JSON, if it is one of the job kinds with a config object. */
function checkedInput(input: JobInput): JobInput {
  const given = input as { kind?: unknown; config?: unknown } | null;
  if (typeof given !== 'object' || given === null)
    throw new JobError('Expected a job input { kind, config }', 'invalid');
  if (!JOB_KINDS.includes(given.kind as JobInput['kind']))
    throw new JobError(
      `Expected a job of kind ${JOB_KINDS.join(', ')} but received ${JSON.stringify(given.kind)}`,
      'invalid',
    );
  const config = given.config;
  if (typeof config !== 'object' || config === null || Array.isArray(config))
    throw new JobError(
      `Expected the ${given.kind as string} job's config to be an object`,
      'invalid',
    );
  try {
    return JSON.parse(JSON.stringify(input)) as JobInput;
  } catch (err) {
    throw new JobError(`The job's input is not plain JSON: ${(err as Error).message}`, 'invalid');
  }
}

/** The input with its outputs in the job's folder, whatever folder the caller gave. */
function inFolder(input: JobInput, dir: string): JobInput {
  return { ...input, config: { ...input.config, outDir: dir } } as JobInput;
}

/**
 * A training job's input for its next attempt: once its folder holds a checkpoint, it continues
 * from the newest (resume), rather than where it was first told to start.
 */
function resumeInput(job: JobRecord): JobInput {
  const { input } = job;
  if (input.kind !== 'train' || !hasCheckpoint(job.dir)) return input;
  const config = { ...input.config, resume: true };
  delete config.resumeFrom;
  delete config.branch;
  delete config.overwrite;
  return { kind: 'train', config };
}

/** Locks the jobs folder for this queue (training/run_lock.ts), or says who holds it. */
function lockJobs(root: string, note: (message: string) => void): RunLock {
  try {
    return lockRunFolder(root, note);
  } catch (err) {
    if (!(err instanceof RunFolderError)) throw err;
    throw new RunFolderError(
      `Cannot open the job queue: ${err.message.replace('Another run', 'another job queue')}`,
      err.path,
    );
  }
}

/** Whether a training folder holds a checkpoint (an unreadable one: the run will say why). */
function hasCheckpoint(dir: string): boolean {
  try {
    return latestCheckpoint(join(dir, 'checkpoints')) !== null;
  } catch {
    return false;
  }
}

/** Whether a process of this host holds the run lock in `dir` (training/run_lock.ts). */
function lockHolderRuns(dir: string): boolean {
  try {
    const holder = JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')) as {
      pid?: unknown;
      host?: unknown;
    };
    return (
      holder.host === hostname() &&
      typeof holder.pid === 'number' &&
      holder.pid !== process.pid &&
      processRuns(holder.pid)
    );
  } catch {
    return false;
  }
}
