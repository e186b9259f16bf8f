// The OpenAPI description lists every /api route the server registers, and nothing else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { API_ROUTES, openApiPath } from '../../apps/serve/openapi.js';
import { registeredRoutes } from '../../apps/serve/server.js';
import { testServer } from './helpers.js';

interface Document {
  openapi: string;
  paths: Record<string, Record<string, { summary?: string; responses?: object }>>;
  components: { schemas: Record<string, unknown> };
}

test('openapi.json describes exactly the /api routes the server registers', async () => {
  const s = await testServer();
  try {
    const doc = (await s.app.inject('/api/openapi.json')).json<Document>();
    assert.match(doc.openapi, /^3\.1/);
    const described = Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
    );
    const registered = registeredRoutes(s.app)
      .filter((r) => r.split(' ')[1]!.startsWith('/api'))
      .map((r) => {
        const [method, path] = r.split(' ') as [string, string];
        return `${method} ${openApiPath(path)}`;
      });
    assert.equal(registered.length, API_ROUTES.length);
    assert.deepEqual([...registered].sort(), [...described].sort());
    for (const [path, ops] of Object.entries(doc.paths))
      for (const [method, op] of Object.entries(ops))
        assert.ok(op.summary && op.responses, `${method} ${path} has a summary and responses`);
    // every schema a route names is defined
    const refs = JSON.stringify(doc.paths).match(/#\/components\/schemas\/\w+/g) ?? [];
    for (const ref of refs) assert.ok(doc.components.schemas[ref.split('/').at(-1)!], ref);
  } finally {
    await s.close();
  }
});
