// What the job-queue tests share: job configs on the tiny fixtures, and waiting for an event
// (never for a length of time: the timeout only turns a hang into a failure that says what it
// waited for).
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { JobEvent, JobInput, JobQueue, JobRecord } from '../../src/jobs/index.js';
import { fixturePath } from '../helpers/paths.js';

export const BASE = fixturePath('tiny-sd');
export const CLIP = fixturePath('tiny-clip-vision');

/** A training job on the toy references; outDir is the caller's, which the queue replaces. */
export function trainInput(refDir: string, over: Record<string, unknown> = {}): JobInput {
  return {
    kind: 'train',
    config: {
      baseModel: BASE,
      clipModel: CLIP,
      outDir: '/nonexistent/ignored-by-the-queue',
      references: [refDir],
      classWord: 'toy',
      learningRate: 1e-3,
      evaluate: false,
      maxSteps: 4,
      checkpointEvery: 0,
      ...over,
    },
  };
}

export function generateInput(adapter: string, over: Record<string, unknown> = {}): JobInput {
  return {
    kind: 'generate',
    config: {
      baseModel: BASE,
      adapter,
      outDir: '/nonexistent/ignored-by-the-queue',
      prompts: ['a sks toy'],
      numImages: 1,
      steps: 3,
      ...over,
    },
  };
}

export function maskInput(annotationPath: string): JobInput {
  return {
    kind: 'mask',
    config: { annotationPath, clipFolder: CLIP, outDir: '/nonexistent/ignored-by-the-queue' },
  };
}

/** Resolves with the first event that `match` accepts (subscribe before causing it). */
export function nextEvent(
  queue: JobQueue,
  match: (e: JobEvent) => boolean,
  what: string,
  timeoutMs = 60_000,
): Promise<JobEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    const stop = queue.subscribe((e) => {
      if (!match(e)) return;
      clearTimeout(timer);
      stop();
      resolve(e);
    });
  });
}

/** The job's record once it has ended. */
export async function ended(queue: JobQueue, id: string): Promise<JobRecord> {
  const waiting = nextEvent(queue, (e) => e.type === 'finished' && e.job.id === id, `${id} to end`);
  const now = queue.get(id);
  if (['succeeded', 'failed', 'cancelled'].includes(now.state)) return now;
  return (await waiting).job;
}

/** Every event, in order, until the returned function is called. */
export function recordEvents(queue: JobQueue): { events: JobEvent[]; stop: () => void } {
  const events: JobEvent[] = [];
  const stop = queue.subscribe((e) => events.push(e));
  return { events, stop };
}

/** Files an interrupted atomic write would leave in the data folder's jobs/. */
export function temporaries(dataDir: string): string[] {
  return readdirSync(join(dataDir, 'jobs')).filter((f) => /\.tmp-\d+$/.test(f));
}

/** The record as written on disk. */
export function recordOnDisk(dataDir: string, id: string): JobRecord {
  return JSON.parse(readFileSync(join(dataDir, 'jobs', `${id}.json`), 'utf8')) as JobRecord;
}

/** The pid in a training folder's run.lock: the job's child process while it trains. */
export function trainingPid(dir: string): number {
  return (JSON.parse(readFileSync(join(dir, 'run.lock'), 'utf8')) as { pid: number }).pid;
}
