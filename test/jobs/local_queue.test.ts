// The local job queue on the tiny fixtures, with real child processes: each kind of job runs to
// its result with progress, jobs wait their turn, cancels (queued, running training with its
// checkpoint, finished), unknown ids, a failing and a crashing job that leave the queue working,
// and listeners that throw.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setNumThreads } from '../../src/engine/index.js';
import { JobError, LocalJobQueue, type JobEvent } from '../../src/jobs/index.js';
import { trainP3S } from '../../src/p3s/train.js';
import { listCheckpoints } from '../../src/training/checkpoint.js';
import { writeToySubject } from '../helpers/toy_subject.js';
import {
  BASE,
  CLIP,
  ended,
  generateInput,
  maskInput,
  nextEvent,
  recordEvents,
  temporaries,
  trainInput,
  trainingPid,
} from './helpers.js';

setNumThreads(1); // the adapter made in before(); see test/p3s/train.test.ts

let root = '';
let refDir = '';
let annotationPath = '';
let adapter = '';
let dataDir = '';
let queue: LocalJobQueue;
const warnings: string[] = [];

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'p3s-jobs-'));
  ({ refDir, annotationPath } = await writeToySubject(root, 11, 3));
  adapter = (
    await trainP3S({
      baseModel: BASE,
      clipModel: CLIP,
      outDir: join(root, 'adapter'),
      references: [refDir],
      classWord: 'toy',
      maxSteps: 2,
      checkpointEvery: 0,
      evaluate: false,
    })
  ).adapterPath;
  dataDir = join(root, 'data');
  queue = await LocalJobQueue.open({ dataDir, onWarning: (m) => warnings.push(m) });
});

after(async () => {
  await queue?.close();
  if (root) rmSync(root, { recursive: true, force: true });
});

test('a mask job reports each photo and succeeds with its summary, written in its own folder', async () => {
  const { events, stop } = recordEvents(queue);
  const submitted = await queue.submit(maskInput(annotationPath), 'subject-a');
  assert.equal(submitted.state, 'queued');
  assert.equal(submitted.attempts, 0);
  assert.equal(submitted.dir, join(dataDir, 'jobs', submitted.id));
  const done = await ended(queue, submitted.id);
  stop();
  assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
  assert.equal(done.attempts, 1);
  assert.ok(done.startedAt !== null && done.finishedAt !== null);
  const result = done.result as { summary: unknown[]; summaryPath: string };
  assert.equal(result.summary.length, 3);
  assert.equal(result.summaryPath, 'summary.json');
  assert.ok(existsSync(join(done.dir, 'summary.json')));
  assert.deepEqual(
    events.map((e) => e.type).filter((t, i, all) => t !== all[i - 1]),
    ['submitted', 'started', 'progress', 'finished'],
  );
  const last = events.filter((e) => e.type === 'progress').at(-1)!.job.progress!;
  assert.equal(last.total, 3);
  assert.match(last.message, /^photo \d\/3: ref-\d\.png$/);
});

test('a training job reports its steps and sample sheets and succeeds with its adapter', async () => {
  const { events, stop } = recordEvents(queue);
  const job = await queue.submit(
    trainInput(refDir, { maxSteps: 4, sampleEvery: 2, sampleSteps: 2, sampleImages: 1 }),
    'subject-a',
  );
  const done = await ended(queue, job.id);
  stop();
  assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
  // the queue put the outputs in the job's folder, whatever outDir the caller gave
  assert.equal((done.input.config as { outDir: string }).outDir, done.dir);
  const result = done.result as {
    adapterPath: string;
    steps: number;
    losses: number[];
    sampleSheets: string[];
  };
  assert.equal(result.adapterPath, 'adapter.safetensors');
  assert.equal(result.steps, 4);
  assert.equal(result.losses.length, 4);
  assert.ok(existsSync(join(done.dir, 'adapter.safetensors')));
  const progress = events.filter((e) => e.type === 'progress' && e.job.id === job.id);
  assert.ok(progress.length >= 1);
  const dones = progress.map((e) => e.job.progress!.done);
  assert.deepEqual(
    dones,
    [...dones].sort((a, b) => a - b),
  );
  // the last step always arrives, if late: the throttle holds it back, never drops it
  assert.equal(done.progress!.done, 4);
  assert.equal(done.progress!.total, 4);
  assert.match(done.progress!.message, /^step 4\/4, loss \d+\.\d{4}$/);
  assert.ok(Number.isFinite(done.progress!.loss));
  // the sample sheets, as they were written, relative to the job's folder
  assert.equal(result.sampleSheets.length, 2);
  assert.deepEqual(done.progress!.files, result.sampleSheets);
  for (const sheet of result.sampleSheets) {
    assert.match(sheet, /^samples\/[^/]+\.png$/);
    assert.ok(existsSync(join(done.dir, sheet)), sheet);
  }
});

test('progress events of one job come at least 200 ms apart', async () => {
  const stamps: number[] = [];
  const stop = queue.subscribe((e) => {
    if (e.type === 'progress') stamps.push(performance.now());
  });
  const job = await queue.submit(trainInput(refDir, { maxSteps: 12 }));
  const done = await ended(queue, job.id);
  stop();
  assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
  assert.equal(done.progress!.done, 12);
  const gaps = stamps.slice(1).map((t, i) => t - stamps[i]!);
  assert.ok(
    gaps.every((g) => g >= 190),
    `gaps ${gaps.map((g) => g.toFixed(0)).join(', ')} ms`,
  );
});

test('a generate job succeeds with its images named relative to its folder', async () => {
  const job = await queue.submit(generateInput(adapter), 'subject-a');
  const done = await ended(queue, job.id);
  assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
  const result = done.result as {
    images: { file: string; prompt: string; seed: number }[];
    contactSheet: string;
  };
  assert.deepEqual(result.images, [
    { file: '000-a-sks-toy-seed0.png', prompt: 'a sks toy', seed: 0, reference: 0 },
  ]);
  assert.equal(result.contactSheet, 'contact-sheet.png');
  assert.ok(existsSync(join(done.dir, '000-a-sks-toy-seed0.png')));
  assert.equal(done.progress!.done, 1);
  assert.deepEqual(done.progress!.files, ['000-a-sks-toy-seed0.png']);
});

test('with concurrency 1 a job waits for the one before it; list is newest first, by owner', async () => {
  const { events, stop } = recordEvents(queue);
  const first = await queue.submit(trainInput(refDir, { maxSteps: 3 }), 'order');
  const second = await queue.submit(generateInput(adapter), 'order');
  assert.equal(queue.get(second.id).state, 'queued');
  await ended(queue, second.id);
  stop();
  const starts = events.filter((e) => e.type !== 'progress').map((e) => `${e.type} ${e.job.id}`);
  assert.deepEqual(starts, [
    `submitted ${first.id}`,
    `started ${first.id}`,
    `submitted ${second.id}`,
    `finished ${first.id}`,
    `started ${second.id}`,
    `finished ${second.id}`,
  ]);
  assert.deepEqual(
    queue.list('order').map((j) => j.id),
    [second.id, first.id],
  );
  assert.ok(queue.list().length >= 2);
  assert.deepEqual(queue.list('nobody'), []);
});

test('with concurrency 2, two jobs run at once and a third waits for a free slot', async () => {
  const other = await LocalJobQueue.open({ dataDir: join(root, 'two'), concurrency: 2 });
  try {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await other.submit(maskInput(annotationPath))).id);
    assert.deepEqual(
      ids.map((id) => other.get(id).state),
      ['running', 'running', 'queued'],
    );
    const ends = await Promise.all(ids.map((id) => ended(other, id)));
    assert.deepEqual(
      ends.map((j) => j.state),
      ['succeeded', 'succeeded', 'succeeded'],
    );
    const firstEnd = Math.min(...ends.slice(0, 2).map((j) => Date.parse(j.finishedAt!)));
    assert.ok(Date.parse(ends[2]!.startedAt!) >= firstEnd);
  } finally {
    await other.close();
  }
  await assert.rejects(LocalJobQueue.open({ dataDir: root, concurrency: 0 }), /concurrency/);
  // one queue per data folder: a second would run the same jobs
  await assert.rejects(
    LocalJobQueue.open({ dataDir }),
    /Cannot open the job queue: another job queue \(process \d+/,
  );
});

test('cancel: a queued job at once, a running training after a checkpoint, a finished one refused', async () => {
  const running = await queue.submit(trainInput(refDir, { maxSteps: 500 }));
  const waiting = await queue.submit(maskInput(annotationPath));
  const cancelledWaiting = await queue.cancel(waiting.id);
  assert.equal(cancelledWaiting.state, 'cancelled');
  assert.equal(cancelledWaiting.startedAt, null);
  assert.equal(cancelledWaiting.attempts, 0);

  await nextEvent(
    queue,
    (e) => e.type === 'progress' && e.job.id === running.id && e.job.progress!.done >= 2,
    'two training steps',
  );
  const cancelled = await queue.cancel(running.id);
  assert.equal(cancelled.state, 'cancelled');
  assert.equal(cancelled.error, null);
  const checkpoints = listCheckpoints(join(cancelled.dir, 'checkpoints'));
  assert.equal(checkpoints.length, 1, 'SIGTERM wrote a checkpoint (checkpointEvery is 0)');
  assert.ok(checkpoints[0]!.step >= 2 && checkpoints[0]!.step < 500);
  assert.equal(existsSync(join(cancelled.dir, 'adapter.safetensors')), false);
  assert.equal(existsSync(join(cancelled.dir, 'run.lock')), false);

  await assert.rejects(queue.cancel(running.id), (err: unknown) => {
    assert.ok(err instanceof JobError);
    assert.equal(err.code, 'finished');
    assert.match(err.message, /already ended \(cancelled\)/);
    return true;
  });
});

test('unknown ids and bad inputs are JobErrors, not crashes', async () => {
  for (const id of ['j-00000000-none', '../etc', '']) {
    assert.throws(
      () => queue.get(id),
      (err: unknown) => err instanceof JobError && err.code === 'not-found',
    );
    await assert.rejects(
      queue.cancel(id),
      (err: unknown) => err instanceof JobError && err.code === 'not-found',
    );
  }
  const bad: unknown[] = [null, { kind: 'paint', config: {} }, { kind: 'train', config: 'x' }];
  for (const input of bad) {
    await assert.rejects(
      queue.submit(input as never),
      (err: unknown) => err instanceof JobError && err.code === 'invalid',
    );
  }
});

test('a job with a bad config fails with its message; a crashed one says how it stopped', async () => {
  const bad = await queue.submit(trainInput(refDir, { baseModel: join(root, 'no-such-model') }));
  const failed = await ended(queue, bad.id);
  assert.equal(failed.state, 'failed');
  assert.equal(failed.error!.name, 'ModelLoadError');
  assert.match(failed.error!.message, /Base model folder not found: .*no-such-model/);

  const doomed = await queue.submit(trainInput(refDir, { maxSteps: 500 }));
  await nextEvent(queue, (e) => e.type === 'progress' && e.job.id === doomed.id, 'a step');
  process.kill(trainingPid(queue.get(doomed.id).dir), 'SIGKILL');
  const crashed = await ended(queue, doomed.id);
  assert.equal(crashed.state, 'failed');
  assert.deepEqual(crashed.error, {
    name: 'JobProcessError',
    message: "The job's process stopped without a result (killed by SIGKILL)",
  });

  // the queue goes on
  const next = await queue.submit(maskInput(annotationPath));
  assert.equal((await ended(queue, next.id)).state, 'succeeded');
});

test('a listener that throws is reported, and neither the job nor the other listeners notice', async () => {
  warnings.length = 0;
  const unsubscribe = queue.subscribe(() => {
    throw new Error('listener bug');
  });
  const seen: JobEvent['type'][] = [];
  const stop = queue.subscribe((e) => seen.push(e.type));
  const job = await queue.submit(maskInput(annotationPath));
  const done = await ended(queue, job.id);
  unsubscribe();
  stop();
  assert.equal(done.state, 'succeeded');
  assert.ok(seen.includes('finished'));
  assert.ok(warnings.some((w) => w.includes('listener bug') && w.includes(job.id)));
  assert.deepEqual(temporaries(dataDir), []);
});
