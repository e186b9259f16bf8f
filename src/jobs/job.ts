// The job layer's contract: long work (masks, P3S training, generation) submitted as a job,
// reported as it runs, cancelled, and read back when done. Routes and the CLI see only this
// interface; the local backend (local_queue.ts: one child process per job, state in a data
// folder) implements it today, and a distributed backend (BullMQ on Redis) can implement it
// later without touching them.
import type { GenerateP3SConfig } from '../p3s/generate_settings.js';
import type { MaskJob } from '../p3s/supervision/mask_settings.js';
import type { TrainP3SConfig } from '../p3s/train_settings.js';

/** What a job does; its input is the library call's config, with paths inside the data folder. */
export type JobInput =
  | { kind: 'mask'; config: MaskJob }
  | { kind: 'train'; config: TrainP3SConfig }
  | { kind: 'generate'; config: GenerateP3SConfig };

export type JobKind = JobInput['kind'];

/** queued → running → one of the three ends; a running job goes back to queued on restart. */
export type JobState = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

export const FINISHED_STATES: readonly JobState[] = ['succeeded', 'failed', 'cancelled'];

/** How far a job is: comparable across kinds, with the kind's own details. */
export interface JobProgress {
  /** Units done and in all (photos, optimizer steps, images). */
  done: number;
  total: number;
  /** One line for a person: "step 40/120, loss 0.0712". */
  message: string;
  /** Seconds left, when the job can tell. */
  etaSeconds?: number;
  /** Training: the step's loss. */
  loss?: number;
  /** Files written so far, relative to the job's folder (sample sheets, images), in order. */
  files?: string[];
}

/** A job as stored in the data folder and returned by the API (plain JSON). */
export interface JobRecord {
  id: string;
  /** Who or what the job is for (a subject's id), so lists can be filtered. */
  owner: string | null;
  input: JobInput;
  state: JobState;
  /** ISO 8601 times. */
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  progress: JobProgress | null;
  /** The library call's result (plain JSON), when succeeded. */
  result: unknown;
  /** Why it failed: the error's name and message, as the CLI would print them. */
  error: { name: string; message: string } | null;
  /** Times it was started: more than 1 after a restart resumed it. */
  attempts: number;
  /** The folder the job writes into (absolute). */
  dir: string;
}

/** What subscribers hear: a job's new state or progress, with the whole record. */
export interface JobEvent {
  type: 'submitted' | 'started' | 'progress' | 'finished';
  job: JobRecord;
}

/** A request the queue refuses (unknown id, cancel of a finished job): a 4xx, not a crash. */
export class JobError extends Error {
  constructor(
    message: string,
    readonly code: 'not-found' | 'finished' | 'invalid',
  ) {
    super(message);
    this.name = 'JobError';
  }
}

export interface JobQueue {
  /** Stores the job (queued) and starts it when its turn comes; jobs run in submission order. */
  submit(input: JobInput, owner?: string | null): Promise<JobRecord>;
  /** Throws JobError('not-found') for an unknown id. */
  get(id: string): JobRecord;
  /** Newest first; only the owner's when given. */
  list(owner?: string): JobRecord[];
  /**
   * Stops a queued or running job (a training run writes a checkpoint first); resolves with the
   * cancelled record. Throws JobError('finished') for a job that already ended.
   */
  cancel(id: string): Promise<JobRecord>;
  /** Calls listener on every event until the returned function is called. */
  subscribe(listener: (event: JobEvent) => void): () => void;
  /** Stops taking jobs; running ones are stopped as on a restart (resumed by the next open). */
  close(): Promise<void>;
}

/** A job's record as submitted: queued, not started, nothing reported yet. */
export function queuedRecord(
  id: string,
  owner: string | null,
  input: JobInput,
  dir: string,
): JobRecord {
  const nothingYet = { startedAt: null, finishedAt: null, progress: null, result: null };
  return {
    id,
    owner,
    input,
    state: 'queued',
    createdAt: new Date().toISOString(),
    ...nothingYet,
    error: null,
    attempts: 0,
    dir,
  };
}
