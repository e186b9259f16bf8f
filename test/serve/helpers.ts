// What the server tests share: an in-process server on the tiny fixture models with an in-memory
// job queue (FakeJobQueue: jobs end only when a test says so), multipart bodies, and toy-world
// photos with the subject and its look-alike at known pixels.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import sharp from 'sharp';
import {
  FINISHED_STATES,
  JobError,
  queuedRecord,
  type JobEvent,
  type JobInput,
  type JobQueue,
  type JobRecord,
  type JobState,
} from '../../src/jobs/job.js';
import { makeSubjectReferenceSet } from '../../src/toyworld/index.js';
import type { Point, Subject } from '../../apps/serve/api.js';
import { createServer, type ServerOptions } from '../../apps/serve/server.js';
import { fixturePath } from '../helpers/paths.js';

export const BASE = fixturePath('tiny-sd');
export const CLIP = fixturePath('tiny-clip-vision');

/** A job queue in memory: submit records jobs (queued), finish() ends them as a test says. */
export class FakeJobQueue implements JobQueue {
  readonly jobs = new Map<string, JobRecord>();
  private readonly listeners = new Set<(e: JobEvent) => void>();
  private n = 0;

  constructor(private readonly dataDir: string) {}

  async submit(input: JobInput, owner: string | null = null): Promise<JobRecord> {
    const id = `j-test-${++this.n}`;
    const dir = join(this.dataDir, 'jobs', id);
    mkdirSync(dir, { recursive: true });
    const withDir = { ...input, config: { ...input.config, outDir: dir } } as JobInput;
    const job = queuedRecord(id, owner, withDir, dir);
    this.jobs.set(id, job);
    this.emit('submitted', job);
    return structuredClone(job);
  }

  get(id: string): JobRecord {
    const job = this.jobs.get(id);
    if (!job) throw new JobError(`No job ${id}`, 'not-found');
    return structuredClone(job);
  }

  list(owner?: string): JobRecord[] {
    return [...this.jobs.values()]
      .filter((j) => owner === undefined || j.owner === owner)
      .reverse()
      .map((j) => structuredClone(j));
  }

  async cancel(id: string): Promise<JobRecord> {
    const job = this.jobs.get(id);
    if (!job) throw new JobError(`No job ${id}`, 'not-found');
    if (FINISHED_STATES.includes(job.state))
      throw new JobError(`Job ${id} has already ${job.state}`, 'finished');
    return this.finish(id, 'cancelled');
  }

  /** Ends a job, writing the given files (relative path -> bytes) into its folder first. */
  finish(id: string, state: JobState, files: Record<string, Uint8Array | string> = {}): JobRecord {
    const job = this.jobs.get(id)!;
    for (const [name, bytes] of Object.entries(files)) {
      const path = join(job.dir, name);
      mkdirSync(join(path, '..'), { recursive: true });
      writeFileSync(path, bytes);
    }
    job.state = state;
    job.finishedAt = new Date().toISOString();
    this.emit('finished', job);
    return structuredClone(job);
  }

  subscribe(listener: (e: JobEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  listenerCount(): number {
    return this.listeners.size;
  }

  async close(): Promise<void> {}

  private emit(type: JobEvent['type'], job: JobRecord): void {
    for (const l of this.listeners) l({ type, job: structuredClone(job) });
  }
}

export interface TestServer {
  app: FastifyInstance;
  dataDir: string;
  queue: FakeJobQueue;
  close(): Promise<void>;
}

/** A server on the tiny fixtures in a fresh data folder, with a FakeJobQueue. */
export async function testServer(over: Partial<ServerOptions> = {}): Promise<TestServer> {
  const root = mkdtempSync(join(tmpdir(), 'p3s-serve-'));
  const dataDir = join(root, 'data');
  const queue = new FakeJobQueue(dataDir);
  const app = createServer({
    dataDir,
    baseModel: BASE,
    clipModel: CLIP,
    queue,
    host: '127.0.0.1',
    ...over,
  });
  await app.ready();
  return {
    app,
    dataDir,
    queue,
    close: async () => {
      await app.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

export interface Upload {
  name: string;
  bytes: Uint8Array;
  type?: string;
  field?: string;
}

/** A multipart/form-data body with the files (field "photos" unless said otherwise). */
export function multipart(files: Upload[]): { payload: Buffer; headers: Record<string, string> } {
  const boundary = `----p3s-test-${Math.random().toString(16).slice(2)}`;
  const chunks: Buffer[] = [];
  for (const f of files) {
    chunks.push(
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="${f.field ?? 'photos'}"; filename="${f.name}"\r\n` +
          `Content-Type: ${f.type ?? 'application/octet-stream'}\r\n\r\n`,
      ),
      Buffer.from(f.bytes),
      Buffer.from('\r\n'),
    );
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return {
    payload: Buffer.concat(chunks),
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
  };
}

export interface ToyPhoto {
  png: Buffer;
  positive: Point;
  negative: Point | null;
}

/** Toy-world photos (64 px) of one subject, each beside a look-alike, as PNG files. */
export async function toyPhotos(count: number, seed = 11): Promise<ToyPhoto[]> {
  const set = makeSubjectReferenceSet(seed, { count, withDistractor: count, size: 64 });
  return Promise.all(
    set.images.map(async (im) => ({
      png: await sharp(Buffer.from(im.scene.rgb), {
        raw: { width: im.scene.size, height: im.scene.size, channels: 3 },
      })
        .png()
        .toBuffer(),
      positive: [im.positive.x, im.positive.y] as Point,
      negative: im.negative ? ([im.negative.x, im.negative.y] as Point) : null,
    })),
  );
}

/** Creates a subject through the API and uploads the photos; returns it. */
export async function subjectWithPhotos(
  app: FastifyInstance,
  photos: ToyPhoto[],
  headers: Record<string, string> = {},
): Promise<Subject> {
  const created = await app.inject({
    method: 'POST',
    url: '/api/subjects',
    headers,
    payload: { name: 'Toy', classWord: 'toy' },
  });
  if (created.statusCode !== 201) throw new Error(`create: ${created.body}`);
  const sid = created.json<Subject>().id;
  const body = multipart(photos.map((p, i) => ({ name: `toy-${i}.png`, bytes: p.png })));
  const res = await app.inject({
    method: 'POST',
    url: `/api/subjects/${sid}/photos`,
    payload: body.payload,
    headers: { ...headers, ...body.headers },
  });
  if (res.statusCode !== 201) throw new Error(`upload: ${res.body}`);
  return res.json<Subject>();
}

/** Sets the clicks of the subject's photo k. */
export async function click(
  app: FastifyInstance,
  subject: Subject,
  k: number,
  positive: Point[],
  negative: Point[] = [],
): Promise<Subject> {
  const res = await app.inject({
    method: 'PUT',
    url: `/api/subjects/${subject.id}/photos/${subject.photos[k]!.id}/points`,
    payload: { positive, negative },
  });
  if (res.statusCode !== 200) throw new Error(`points: ${res.body}`);
  return res.json<Subject>();
}
