// The subject routes on a real in-process server: create, list, read, rename, delete, the
// validation of every field and id, and the server's answers to what is not a route or not JSON.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ApiError, ModelsInfo, Subject } from '../../apps/serve/api.js';
import { subjectIdentifier } from '../../apps/serve/models_info.js';
import { SubjectStore } from '../../apps/serve/subjects.js';
import { testServer, type TestServer } from './helpers.js';

let s: TestServer;
before(async () => {
  s = await testServer();
});
after(async () => s.close());

const post = (url: string, payload: unknown) =>
  s.app.inject({ method: 'POST', url, payload: payload as object });

test('a subject is created, listed, read, renamed and deleted', async () => {
  const res = await post('/api/subjects', { name: '  Rex ', classWord: 'dog' });
  assert.equal(res.statusCode, 201);
  const subject = res.json<Subject>();
  assert.match(subject.id, /^[a-z0-9-]{1,64}$/);
  assert.equal(subject.name, 'Rex');
  assert.equal(subject.identifier, 'sks');
  assert.deepEqual(subject.photos, []);
  assert.ok(existsSync(join(s.dataDir, 'subjects', subject.id, 'subject.json')));

  const list = (await s.app.inject('/api/subjects')).json<Subject[]>();
  assert.ok(list.some((x) => x.id === subject.id));
  const patched = await s.app.inject({
    method: 'PATCH',
    url: `/api/subjects/${subject.id}`,
    payload: { name: 'Rex II' },
  });
  assert.equal(patched.json<Subject>().name, 'Rex II');
  assert.equal(patched.json<Subject>().classWord, 'dog');
  assert.equal((await s.app.inject(`/api/subjects/${subject.id}`)).json<Subject>().name, 'Rex II');

  const del = await s.app.inject({ method: 'DELETE', url: `/api/subjects/${subject.id}` });
  assert.equal(del.statusCode, 204);
  assert.equal((await s.app.inject(`/api/subjects/${subject.id}`)).statusCode, 404);
  assert.equal(existsSync(join(s.dataDir, 'subjects', subject.id)), false);
});

test('bad subjects are refused with 400 and a message naming the field', async () => {
  for (const [body, pattern] of [
    [{ name: 'A', classWord: 'two words' }, /classWord/],
    [{ name: 'A', classWord: 'Dog' }, /lowercase/],
    [{ name: '', classWord: 'dog' }, /name/],
    [{ name: 'A' }, /classWord/],
    [{ name: 'A', classWord: 'dog', extra: 1 }, /Unknown field "extra"/],
    [[1, 2], /JSON object/],
    [{ name: 7, classWord: 'dog' }, /name/],
  ] as const) {
    const res = await post('/api/subjects', body);
    assert.equal(res.statusCode, 400, JSON.stringify(body));
    const err = res.json<ApiError>();
    assert.equal(err.statusCode, 400);
    assert.match(err.error, pattern);
  }
});

test('odd ids are 400, unknown ids 404, and no id reaches outside the data folder', async () => {
  for (const url of [
    '/api/subjects/..%2F..%2Fetc',
    '/api/subjects/ABC',
    '/api/subjects/a_b',
    `/api/subjects/${'a'.repeat(65)}`,
    '/api/jobs/..%2Fsubjects',
  ]) {
    const res = await s.app.inject(url);
    assert.equal(res.statusCode, 400, url);
    assert.match(res.json<ApiError>().error, /id/);
  }
  // a client may resolve the dots before sending: then it is no route
  assert.equal((await s.app.inject('/api/subjects/%2E%2E')).statusCode, 404);
  assert.equal((await s.app.inject('/api/subjects/s-unknown')).statusCode, 404);
  assert.equal((await s.app.inject('/api/subjects/../../etc/passwd')).statusCode, 404);
  assert.equal((await s.app.inject('/api/subjects/s-unknown/photos/p-x')).statusCode, 404);
  assert.equal(
    (await s.app.inject({ method: 'DELETE', url: '/api/subjects/s-unknown' })).statusCode,
    404,
  );
  assert.equal((await s.app.inject('/api/jobs/j-unknown')).statusCode, 404);
  assert.equal((await s.app.inject('/api/jobs?subject=..')).statusCode, 400);
});

test('bad JSON, wrong content and too large bodies are 4xx ApiErrors; unknown routes 404 JSON', async () => {
  const bad = await s.app.inject({
    method: 'POST',
    url: '/api/subjects',
    headers: { 'content-type': 'application/json' },
    payload: '{"name": ',
  });
  assert.equal(bad.statusCode, 400);
  assert.equal(bad.json<ApiError>().statusCode, 400);
  const huge = await s.app.inject({
    method: 'POST',
    url: '/api/subjects',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({ name: 'x'.repeat(2 * 1024 * 1024), classWord: 'dog' }),
  });
  assert.equal(huge.statusCode, 413);
  assert.equal(huge.json<ApiError>().statusCode, 413);
  const unknown = await s.app.inject('/api/nothing-here');
  assert.equal(unknown.statusCode, 404);
  assert.equal(unknown.json<ApiError>().statusCode, 404);
  const method = await s.app.inject({ method: 'PUT', url: '/api/subjects' });
  assert.equal(method.statusCode, 404);
  // the server still answers
  assert.equal((await s.app.inject('/api/health')).json<{ ok: boolean }>().ok, true);
});

test('/api/models describes the fixture models', async () => {
  const info = (await s.app.inject('/api/models')).json<ModelsInfo>();
  assert.equal(info.base, 'tiny-sd');
  assert.equal(info.toy, false);
  assert.ok(info.resolution > 0);
  assert.ok(info.exampleContexts.some((c) => c.includes('{}')));
});

test('the page: its files when built, else a page saying how to build it', async () => {
  const notBuilt = await s.app.inject('/');
  assert.equal(notBuilt.statusCode, 200);
  assert.match(notBuilt.headers['content-type'] as string, /text\/html/);
  assert.match(notBuilt.body, /build-page/);

  const pageDir = mkdtempSync(join(tmpdir(), 'p3s-page-'));
  mkdirSync(join(pageDir, 'assets'));
  writeFileSync(join(pageDir, 'index.html'), '<!doctype html><title>p3s</title>');
  writeFileSync(join(pageDir, 'main.js'), 'console.log(1)');
  writeFileSync(join(pageDir, 'assets', 'style.css'), 'body{}');
  const built = await testServer({ pageDir });
  try {
    const index = await built.app.inject('/');
    assert.equal(index.body, '<!doctype html><title>p3s</title>');
    const js = await built.app.inject('/main.js');
    assert.match(js.headers['content-type'] as string, /javascript/);
    assert.equal((await built.app.inject('/assets/style.css')).statusCode, 200);
    assert.equal((await built.app.inject('/../package.json')).statusCode, 404);
    assert.equal((await built.app.inject('/%2e%2e/package.json')).statusCode, 404);
    assert.equal((await built.app.inject('/missing.js')).statusCode, 404);
  } finally {
    await built.close();
    rmSync(pageDir, { recursive: true, force: true });
  }
});

test("new subjects take the served models' recipe's identifier, else sks", () => {
  const dir = mkdtempSync(join(tmpdir(), 'p3s-subjects-'));
  try {
    const info = (identifier?: string): ModelsInfo =>
      ({ trainDefaults: identifier === undefined ? {} : { identifier } }) as ModelsInfo;
    const named = new SubjectStore(join(dir, 'a'), subjectIdentifier(info('zwx')));
    assert.equal(named.create({ name: 'Rex', classWord: 'dog' }).identifier, 'zwx');
    const plain = new SubjectStore(join(dir, 'b'), subjectIdentifier(info()));
    assert.equal(plain.create({ name: 'Rex', classWord: 'dog' }).identifier, 'sks');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
