// Training and generating through the API with an in-memory queue: what a request may set and
// what it may not (paths, the subject's words), the job built from it, the job routes (list, get,
// cancel), a job's files (no way out of its folder), a generate job's zip, and the event stream.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { unzipSync } from 'fflate';
import type { ApiError, JobRecord, Subject } from '../../apps/serve/api.js';
import { startServer } from '../../apps/serve/server.js';
import type { TrainP3SConfig } from '../../src/p3s/train_settings.js';
import type { GenerateP3SConfig } from '../../src/p3s/generate_settings.js';
import {
  BASE,
  CLIP,
  click,
  FakeJobQueue,
  subjectWithPhotos,
  testServer,
  toyPhotos,
  type TestServer,
} from './helpers.js';

let s: TestServer;
let subject: Subject;
before(async () => {
  s = await testServer();
  const photos = await toyPhotos(2);
  subject = await subjectWithPhotos(s.app, photos);
});
after(async () => s.close());

const train = (sid: string, payload: unknown) =>
  s.app.inject({ method: 'POST', url: `/api/subjects/${sid}/train`, payload: payload as object });
const generate = (sid: string, payload: unknown) =>
  s.app.inject({
    method: 'POST',
    url: `/api/subjects/${sid}/generate`,
    payload: payload as object,
  });

/** A training job of the subject that succeeded, with an adapter file. */
async function trainedJob(): Promise<JobRecord> {
  const res = await train(subject.id, { settings: { maxSteps: 2 } });
  assert.equal(res.statusCode, 202, res.body);
  return s.queue.finish(res.json<JobRecord>().id, 'succeeded', {
    'adapter.safetensors': 'not really weights',
    'train-log.jsonl': '{"step":1}\n',
    'samples/step-000010.png': 'png bytes',
  });
}

test('training needs a positive click first', async () => {
  const res = await train(subject.id, {});
  assert.equal(res.statusCode, 400);
  assert.match(res.json<ApiError>().error, /positive point/);
  subject = await click(s.app, subject, 0, [[20, 20]]);
});

test("train settings are validated by TRAIN_SETTINGS; paths and the subject's words are refused", async () => {
  for (const key of [
    'baseModel',
    'clipModel',
    'outDir',
    'references',
    'annotation',
    'initAdapter',
    'resumeFrom',
    'classWord',
  ]) {
    const res = await train(subject.id, { settings: { [key]: '/etc' } });
    assert.equal(res.statusCode, 400, key);
    assert.match(res.json<ApiError>().error, new RegExp(`settings\\.${key} is set by the server`));
  }
  const cases: [unknown, RegExp][] = [
    [{ settings: { maxSteps: -1 } }, /Expected a positive integer for maxSteps but received -1/],
    [{ settings: { learningRate: 'fast' } }, /learningRate/],
    [{ settings: { maxStep: 3 } }, /Unknown field "maxStep".*did you mean "maxSteps"/],
    [{ steps: 3 }, /Unknown field "steps"/],
    [{ settings: [1] }, /JSON object/],
  ];
  for (const [body, pattern] of cases) {
    const res = await train(subject.id, body);
    assert.equal(res.statusCode, 400, JSON.stringify(body));
    assert.match(res.json<ApiError>().error, pattern);
  }
  assert.equal(s.queue.jobs.size, 0, 'nothing was submitted');
});

test('a train request becomes a train job on a copy of the mask folder', async () => {
  const res = await train(subject.id, { settings: { maxSteps: 3, learningRate: 0.001 } });
  assert.equal(res.statusCode, 202, res.body);
  const job = res.json<JobRecord>();
  assert.equal(job.owner, subject.id);
  assert.equal(job.input.kind, 'train');
  const config = job.input.config as TrainP3SConfig;
  assert.equal(config.baseModel, BASE);
  assert.equal(config.clipModel, CLIP);
  assert.equal(config.classWord, 'toy');
  assert.equal(config.identifier, 'sks');
  assert.equal(config.maxSteps, 3);
  assert.equal(config.learningRate, 0.001);
  assert.equal(config.outDir, job.dir);
  const [refs] = config.references!;
  assert.ok(refs!.startsWith(join(s.dataDir, 'subjects', subject.id)));
  assert.ok(existsSync(join(refs!, 'summary.json')));
  s.queue.finish(job.id, 'failed');
});

test('generate: the adapter of a succeeded training job of this subject, prompts checked', async () => {
  const trained = await trainedJob();
  const ok = await generate(subject.id, {
    trainJob: trained.id,
    prompts: ['a {} on the beach', '  a {} at night '],
    numImages: 2,
    seed: 7,
    steps: 10,
  });
  assert.equal(ok.statusCode, 202, ok.body);
  const config = ok.json<JobRecord>().input.config as GenerateP3SConfig;
  assert.equal(config.adapter, join(trained.dir, 'adapter.safetensors'));
  assert.deepEqual(config.prompts, ['a {} on the beach', 'a {} at night']);
  assert.equal(config.numImages, 2);
  assert.equal(config.baseModel, BASE);

  const other = (
    await s.app.inject({
      method: 'POST',
      url: '/api/subjects',
      payload: { name: 'B', classWord: 'cat' },
    })
  ).json<Subject>();
  const running = (await train(subject.id, {})).json<JobRecord>();
  const cases: [string, unknown, number, RegExp][] = [
    [subject.id, { trainJob: 'j-nope', prompts: ['a {}'] }, 404, /No training job/],
    [other.id, { trainJob: trained.id, prompts: ['a {}'] }, 404, /for subject/],
    [subject.id, { trainJob: running.id, prompts: ['a {}'] }, 409, /queued/],
    [subject.id, { trainJob: '../x', prompts: ['a {}'] }, 400, /id/],
    [subject.id, { trainJob: trained.id, prompts: [] }, 400, /prompts/],
    [subject.id, { trainJob: trained.id, prompts: ['x'.repeat(301)] }, 400, /prompts\[0\]/],
    [subject.id, { trainJob: trained.id, prompts: Array(17).fill('a {}') }, 400, /prompts/],
    [subject.id, { trainJob: trained.id, prompts: ['a {}'], numImages: 17 }, 400, /numImages/],
    [subject.id, { trainJob: trained.id, prompts: ['a {}'], seed: -1 }, 400, /seed/],
    [
      subject.id,
      { trainJob: trained.id, prompts: ['a {}'], adapter: '/etc/x' },
      400,
      /Unknown field "adapter"/,
    ],
  ];
  for (const [sid, body, status, pattern] of cases) {
    const res = await generate(sid, body);
    assert.equal(res.statusCode, status, JSON.stringify(body));
    assert.match(res.json<ApiError>().error, pattern);
  }
  s.queue.finish(running.id, 'cancelled');
});

test('jobs: listed newest first by subject, read, cancelled; a finished one is 409', async () => {
  const job = (await train(subject.id, {})).json<JobRecord>();
  const list = (await s.app.inject(`/api/jobs?subject=${subject.id}`)).json<JobRecord[]>();
  assert.equal(list[0]!.id, job.id);
  assert.ok(list.every((j) => j.owner === subject.id));
  assert.equal((await s.app.inject('/api/jobs?subject=s-none')).json<JobRecord[]>().length, 0);
  assert.equal((await s.app.inject(`/api/jobs/${job.id}`)).json<JobRecord>().state, 'queued');

  // a subject with a job that has not ended cannot be deleted
  const del = await s.app.inject({ method: 'DELETE', url: `/api/subjects/${subject.id}` });
  assert.equal(del.statusCode, 409);

  const cancel = () => s.app.inject({ method: 'POST', url: `/api/jobs/${job.id}/cancel` });
  const first = await cancel();
  assert.equal(first.statusCode, 200);
  assert.equal(first.json<JobRecord>().state, 'cancelled');
  const second = await cancel();
  assert.equal(second.statusCode, 409);
  assert.equal(second.json<ApiError>().statusCode, 409);
  assert.equal(
    (await s.app.inject({ method: 'POST', url: '/api/jobs/j-nope/cancel' })).statusCode,
    404,
  );
});

test('job files: by name with one folder, typed; nothing outside the job folder', async () => {
  const job = await trainedJob();
  const base = `/api/jobs/${job.id}/files`;
  const adapter = await s.app.inject(`${base}/adapter.safetensors`);
  assert.equal(adapter.statusCode, 200);
  assert.equal(adapter.headers['content-type'], 'application/octet-stream');
  assert.equal(adapter.body, 'not really weights');
  for (const name of ['samples/step-000010.png', 'samples%2Fstep-000010.png']) {
    const res = await s.app.inject(`${base}/${name}`);
    assert.equal(res.statusCode, 200, name);
    assert.equal(res.headers['content-type'], 'image/png');
  }
  assert.match(
    (await s.app.inject(`${base}/train-log.jsonl`)).headers['content-type'] as string,
    /ndjson/,
  );

  writeFileSync(join(s.dataDir, 'secret.txt'), 'secret');
  mkdirSync(join(job.dir, 'linked'));
  symlinkSync(join(s.dataDir, 'secret.txt'), join(job.dir, 'linked', 'secret.txt'));
  symlinkSync(s.dataDir, join(job.dir, 'up'));
  for (const name of [
    '..%2F..%2Fsecret.txt',
    '..%2Fsecret.txt',
    '%2Fetc%2Fpasswd',
    'samples%2F..%2F..%2Fsecret.txt',
    'a%2Fb%2Fc.png',
    '.hidden',
    '%00',
    '%E0%A4%A',
  ]) {
    const res = await s.app.inject(`${base}/${name}`);
    assert.equal(res.statusCode, 400, name);
  }
  for (const name of ['missing.png', 'samples', 'linked%2Fsecret.txt', 'up%2Fsecret.txt']) {
    const res = await s.app.inject(`${base}/${name}`);
    assert.equal(res.statusCode, 404, name);
    assert.doesNotMatch(res.body, /secret"?$/);
  }
});

test("archive.zip: a generate job's PNGs; other jobs are refused", async () => {
  const trained = await trainedJob();
  const gen = (
    await generate(subject.id, { trainJob: trained.id, prompts: ['a {}'], numImages: 2 })
  ).json<JobRecord>();
  assert.equal((await s.app.inject(`/api/jobs/${gen.id}/archive.zip`)).statusCode, 404);
  s.queue.finish(gen.id, 'succeeded', {
    'a-sks-toy-0.png': 'image 0',
    'a-sks-toy-1.png': 'image 1',
    'generation.json': '{}',
  });
  const res = await s.app.inject(`/api/jobs/${gen.id}/archive.zip`);
  assert.equal(res.statusCode, 200);
  assert.equal(res.headers['content-type'], 'application/zip');
  const files = unzipSync(new Uint8Array(res.rawPayload));
  assert.deepEqual(Object.keys(files).sort(), ['a-sks-toy-0.png', 'a-sks-toy-1.png']);
  assert.equal(Buffer.from(files['a-sks-toy-1.png']!).toString(), 'image 1');
  assert.equal((await s.app.inject(`/api/jobs/${trained.id}/archive.zip`)).statusCode, 400);
});

test('/api/events streams job events as SSE, with heartbeats, and lets go on close', async () => {
  const queue = new FakeJobQueue(join(s.dataDir, 'sse'));
  const server = await startServer({
    dataDir: join(s.dataDir, 'sse'),
    baseModel: BASE,
    clipModel: CLIP,
    queue,
    port: 0,
    heartbeatMs: 50,
  });
  try {
    const abort = new AbortController();
    const res = await fetch(`${server.url}api/events`, { signal: abort.signal });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    assert.equal(res.headers.get('connection'), 'close', 'a stream does not keep its socket');
    const reader = res.body!.getReader();
    let text = '';
    const until = async (pattern: RegExp) => {
      while (!pattern.test(text)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`the stream ended before ${pattern}: ${text}`);
        text += Buffer.from(value).toString();
      }
    };
    await until(/: connected/);
    assert.equal(queue.listenerCount(), 1);
    const job = await queue.submit(
      { kind: 'train', config: { baseModel: BASE, clipModel: CLIP, outDir: '-' } },
      's-x',
    );
    await until(/data: .*\n\n/);
    const data = /data: (.*)\n\n/.exec(text)![1]!;
    const event = JSON.parse(data) as { type: string; job: JobRecord };
    assert.equal(event.type, 'submitted');
    assert.equal(event.job.id, job.id);
    await until(/: heartbeat/);
    abort.abort();
    for (let i = 0; i < 100 && queue.listenerCount() > 0; i++)
      await new Promise((r) => setTimeout(r, 10));
    assert.equal(queue.listenerCount(), 0, 'the listener is dropped when the client goes');
    // an open stream does not hold up close
    const again = await fetch(`${server.url}api/events`);
    await again.body!.getReader().read();
  } finally {
    await server.close();
  }
});
