// Job records on disk: one JSON file per job, <dataDir>/jobs/<id>.json, next to the folder the
// job writes into, <dataDir>/jobs/<id>/. A record is written atomically (a temporary file
// `<id>.json.tmp-<pid>`, then a rename), so a server killed mid-write leaves the previous record
// whole; the temporaries such kills leave are removed when the store opens (the convention of
// training/run_folder.ts).
//
// Ids are made here, never taken from a request: `j-<time>-<random>`, lowercase base 36, with
// the time part fixed-width and strictly increasing within a process, so ids sort in submission
// order (the order jobs run in, also after a restart).
import {
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { writeFailure } from '../training/errors.js';
import { removeStaleTemporaries } from '../training/run_folder.js';
import type { JobKind, JobRecord } from './job.js';

export const JOB_KINDS: readonly JobKind[] = ['mask', 'train', 'generate'];

const JOB_ID_RE = /^[a-z0-9-]{1,64}$/;

/** Whether `value` can be a job id (a request's, checked before it names a file). */
export function isJobId(value: unknown): value is string {
  return typeof value === 'string' && JOB_ID_RE.test(value);
}

/** Base-36 digits of the time part: enough for every millisecond until the year 5188. */
const TIME_DIGITS = 9;
let lastTime = 0;

/** A new id, later in sort order than every id this process made before. */
export function newJobId(now: number = Date.now()): string {
  lastTime = Math.max(now, lastTime + 1);
  const time = lastTime.toString(36).padStart(TIME_DIGITS, '0');
  const random = Math.floor(Math.random() * 36 ** 6)
    .toString(36)
    .padStart(6, '0');
  return `j-${time}-${random}`;
}

/** A record file the store could not read back (damaged by hand, or by another program). */
export interface UnreadableRecord {
  path: string;
  reason: string;
}

export class JobStore {
  private constructor(
    /** <dataDir>/jobs: the records and the jobs' folders. */
    readonly root: string,
  ) {}

  /** Creates <dataDir>/jobs if needed and removes the temporaries of interrupted writes. */
  static open(dataDir: string): JobStore {
    const root = join(dataDir, 'jobs');
    try {
      mkdirSync(root, { recursive: true });
    } catch (err) {
      throw writeFailure(err, root, 'create the jobs folder');
    }
    removeStaleTemporaries(root);
    return new JobStore(root);
  }

  /** The folder job `id` writes into (not created here). */
  folderOf(id: string): string {
    return join(this.root, id);
  }

  private fileOf(id: string): string {
    if (!isJobId(id))
      throw new RangeError(
        `Expected a job id ([a-z0-9-]{1,64}) but received ${JSON.stringify(id)}`,
      );
    return join(this.root, `${id}.json`);
  }

  /** Writes the record atomically: whole or not at all. */
  write(record: JobRecord): void {
    const path = this.fileOf(record.id);
    const tmp = `${path}.tmp-${process.pid}`;
    try {
      writeFileSync(tmp, `${JSON.stringify(record, null, 2)}\n`);
      renameSync(tmp, path);
    } catch (err) {
      try {
        unlinkSync(tmp);
      } catch {
        // never written
      }
      throw writeFailure(err, path, 'write the job record');
    }
  }

  /** Every record, in id (submission) order, and the files that could not be read. */
  readAll(): { records: JobRecord[]; unreadable: UnreadableRecord[] } {
    const records: JobRecord[] = [];
    const unreadable: UnreadableRecord[] = [];
    const names = readdirSync(this.root)
      .filter((name) => name.endsWith('.json') && isJobId(name.slice(0, -5)))
      .sort();
    for (const name of names) {
      const path = join(this.root, name);
      try {
        records.push(checkRecord(JSON.parse(readFileSync(path, 'utf8')), name.slice(0, -5)));
      } catch (err) {
        unreadable.push({ path, reason: (err as Error).message });
      }
    }
    return { records, unreadable };
  }
}

const STATES = new Set(['queued', 'running', 'succeeded', 'failed', 'cancelled']);
const KINDS = new Set<string>(JOB_KINDS);

/** The parsed file as a record, if it has the fields the queue relies on. */
function checkRecord(value: unknown, id: string): JobRecord {
  const r = value as Partial<JobRecord> | null;
  if (typeof r !== 'object' || r === null) throw new Error('not a JSON object');
  if (r.id !== id) throw new Error(`its id ${JSON.stringify(r.id)} is not its file name's`);
  if (!STATES.has(r.state as string)) throw new Error(`unknown state ${JSON.stringify(r.state)}`);
  if (!KINDS.has(r.input?.kind as string) || typeof r.input?.config !== 'object')
    throw new Error('its input is not a mask, train or generate job');
  if (typeof r.dir !== 'string' || !Number.isSafeInteger(r.attempts))
    throw new Error('its dir or attempts are missing');
  return r as JobRecord;
}
