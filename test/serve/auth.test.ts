// The token: with one, every /api request needs it (Bearer header or ?token=), else 401; the page
// itself loads without it; startServer will not listen off this machine without one.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ApiError } from '../../apps/serve/api.js';
import { tokenMatches } from '../../apps/serve/auth.js';
import { startServer } from '../../apps/serve/server.js';
import { BASE, CLIP, FakeJobQueue, testServer, type TestServer } from './helpers.js';

const TOKEN = 's3cret-token';
let s: TestServer;
before(async () => {
  s = await testServer({ token: TOKEN });
});
after(async () => s.close());

test('with a token, /api requests without it are 401', async () => {
  for (const url of [
    '/api/subjects',
    '/api/health',
    '/api/events',
    '/api/nothing',
    '/api/jobs/j-x/files/a.png',
  ]) {
    const res = await s.app.inject(url);
    assert.equal(res.statusCode, 401, url);
    assert.equal(res.json<ApiError>().statusCode, 401);
    assert.match(res.json<ApiError>().error, /token/);
  }
  const wrong = await s.app.inject({
    url: '/api/subjects',
    headers: { authorization: 'Bearer nope' },
  });
  assert.equal(wrong.statusCode, 401);
  assert.equal((await s.app.inject(`/api/subjects?token=${TOKEN}x`)).statusCode, 401);
  const post = await s.app.inject({
    method: 'POST',
    url: '/api/subjects',
    payload: { name: 'A', classWord: 'a' },
  });
  assert.equal(post.statusCode, 401);
});

test('with the token in the header or the query, requests pass; the page needs none', async () => {
  const header = await s.app.inject({
    url: '/api/subjects',
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  assert.equal(header.statusCode, 200);
  assert.equal((await s.app.inject(`/api/subjects?token=${TOKEN}`)).statusCode, 200);
  assert.equal((await s.app.inject('/')).statusCode, 200);
});

test('tokens are compared whole', () => {
  assert.equal(tokenMatches(TOKEN, TOKEN), true);
  assert.equal(tokenMatches(TOKEN.slice(0, -1), TOKEN), false);
  assert.equal(tokenMatches('', TOKEN), false);
});

test('startServer listens on 127.0.0.1 by default and refuses another host without a token', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'p3s-serve-host-'));
  const options = {
    dataDir,
    baseModel: BASE,
    clipModel: CLIP,
    queue: new FakeJobQueue(dataDir),
    port: 0,
  };
  try {
    await assert.rejects(startServer({ ...options, host: '0.0.0.0' }), /without a token/);
    const server = await startServer(options);
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
    const res = await fetch(`${server.url}api/health`);
    assert.equal(res.status, 200);
    await server.close();
    const open = await startServer({ ...options, host: '0.0.0.0', token: TOKEN });
    assert.equal(
      (await fetch(open.url.replace('0.0.0.0', '127.0.0.1') + 'api/health')).status,
      401,
    );
    await open.close();
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});
