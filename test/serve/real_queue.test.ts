// Through the real job queue (LocalJobQueue: child processes) on the tiny fixtures: a subject's
// clicks -> a short training run on its mask folder -> images from the adapter, read back through
// the files route and the zip.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { unzipSync } from 'fflate';
import type { JobRecord } from '../../apps/serve/api.js';
import { createServer } from '../../apps/serve/server.js';
import type { JobQueue } from '../../src/jobs/job.js';
import { LocalJobQueue } from '../../src/jobs/local_queue.js';
import { BASE, CLIP, click, subjectWithPhotos, toyPhotos } from './helpers.js';

/** The job once it has ended (events first, then the record, so none is missed). */
function ended(queue: JobQueue, id: string): Promise<JobRecord> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`job ${id} did not end in 4 min`)), 240_000);
    const done = (job: JobRecord) => {
      clearTimeout(timer);
      stop();
      resolve(job);
    };
    const stop = queue.subscribe((e) => {
      if (e.type === 'finished' && e.job.id === id) done(e.job);
    });
    const now = queue.get(id);
    if (['succeeded', 'failed', 'cancelled'].includes(now.state)) done(now);
  });
}

test('train a few steps and generate through LocalJobQueue', { timeout: 300_000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), 'p3s-serve-queue-'));
  const dataDir = join(root, 'data');
  const queue = await LocalJobQueue.open({ dataDir, concurrency: 1 });
  const app = createServer({ dataDir, baseModel: BASE, clipModel: CLIP, queue, host: '127.0.0.1' });
  try {
    await app.ready();
    const photos = await toyPhotos(2);
    let subject = await subjectWithPhotos(app, photos);
    subject = await click(app, subject, 0, [photos[0]!.positive], [photos[0]!.negative!]);
    const settings = { maxSteps: 2, learningRate: 0.001, checkpointEvery: 0, evaluate: false };
    const trainRes = await app.inject({
      method: 'POST',
      url: `/api/subjects/${subject.id}/train`,
      payload: { settings },
    });
    assert.equal(trainRes.statusCode, 202, trainRes.body);
    const trained = await ended(queue, trainRes.json<JobRecord>().id);
    assert.equal(trained.state, 'succeeded', JSON.stringify(trained.error));
    const adapter = await app.inject(`/api/jobs/${trained.id}/files/adapter.safetensors`);
    assert.equal(adapter.statusCode, 200);
    assert.ok(adapter.rawPayload.length > 100);

    const genRes = await app.inject({
      method: 'POST',
      url: `/api/subjects/${subject.id}/generate`,
      payload: { trainJob: trained.id, prompts: ['a {} on the beach'], numImages: 2, steps: 2 },
    });
    assert.equal(genRes.statusCode, 202, genRes.body);
    const generated = await ended(queue, genRes.json<JobRecord>().id);
    assert.equal(generated.state, 'succeeded', JSON.stringify(generated.error));
    const zip = await app.inject(`/api/jobs/${generated.id}/archive.zip`);
    assert.equal(zip.statusCode, 200);
    const images = Object.keys(unzipSync(new Uint8Array(zip.rawPayload)));
    assert.ok(images.filter((f) => f !== 'contact-sheet.png').length >= 2, images.join(', '));
    const first = await app.inject(
      `/api/jobs/${generated.id}/files/${encodeURIComponent(images[0]!)}`,
    );
    assert.equal(first.headers['content-type'], 'image/png');

    const cancel = await app.inject({ method: 'POST', url: `/api/jobs/${generated.id}/cancel` });
    assert.equal(cancel.statusCode, 409);
  } finally {
    await app.close();
    await queue.close();
    rmSync(root, { recursive: true, force: true });
  }
});

/** The job's record once a progress event reports at least `step` steps. */
function reached(queue: JobQueue, id: string, step: number): Promise<JobRecord> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`job ${id} never reached ${step}`)), 240_000);
    const stop = queue.subscribe((e) => {
      if (e.job.id !== id) return;
      if ((e.job.progress?.done ?? 0) >= step || e.type === 'finished') {
        clearTimeout(timer);
        stop();
        resolve(e.job);
      }
    });
  });
}

test(
  'a server restart in the middle of a training run resumes it from its checkpoint',
  { timeout: 300_000 },
  async () => {
    const root = mkdtempSync(join(tmpdir(), 'p3s-serve-restart-'));
    const dataDir = join(root, 'data');
    const open = async () => {
      const queue = await LocalJobQueue.open({ dataDir, concurrency: 1 });
      const app = createServer({
        dataDir,
        baseModel: BASE,
        clipModel: CLIP,
        queue,
        host: '127.0.0.1',
      });
      await app.ready();
      return { queue, app, stop: async () => (await app.close(), await queue.close()) };
    };
    try {
      let server = await open();
      const photos = await toyPhotos(2);
      let subject = await subjectWithPhotos(server.app, photos);
      subject = await click(server.app, subject, 0, [photos[0]!.positive], [photos[0]!.negative!]);
      const settings = { maxSteps: 40, learningRate: 0.001, checkpointEvery: 2, evaluate: false };
      const res = await server.app.inject({
        method: 'POST',
        url: `/api/subjects/${subject.id}/train`,
        payload: { settings },
      });
      assert.equal(res.statusCode, 202, res.body);
      const id = res.json<JobRecord>().id;
      const midway = await reached(server.queue, id, 3);
      assert.equal(midway.state, 'running', 'stopped before the run ended');
      await server.stop(); // as Ctrl-C does: the run checkpoints and goes back to the queue

      server = await open();
      const waiting = await server.app.inject(`/api/jobs/${id}`);
      assert.ok(['queued', 'running'].includes(waiting.json<JobRecord>().state), waiting.body);
      const done = await ended(server.queue, id);
      assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
      assert.equal(done.attempts, 2);
      const result = done.result as { steps: number; resumedFrom: number | null };
      assert.equal(result.steps, 40);
      assert.ok((result.resumedFrom ?? 0) >= 2, `resumed from ${result.resumedFrom}`);
      await server.stop();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  },
);
