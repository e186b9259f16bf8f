// The page at /: the files scripts/build-page.mjs bundled into pageDir (index.html, main.js,
// style.css ...), or, when it has not been built, a short page saying how to build it.
import { createReadStream, existsSync, lstatSync } from 'node:fs';
import { extname, join, resolve, sep } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { notFound } from './errors.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
};

const NOT_BUILT = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>p3s serve</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>p3s serve: the page is not built</h1>
<p>The API runs (<a href="/api/openapi.json">/api/openapi.json</a>), but the page's files are
missing. Build them with</p>
<pre>node scripts/build-page.mjs</pre>
<p>(npm install does it), then reload.</p>
</body></html>
`;

/** The file under pageDir a URL path names, or null (no "..", no dot files, regular files only). */
function pageFile(pageDir: string, urlPath: string): string | null {
  const rel = urlPath === '/' ? 'index.html' : urlPath.replace(/^\/+/, '');
  if (!rel.split('/').every((part) => /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/.test(part))) return null;
  const root = resolve(pageDir);
  const path = resolve(root, rel);
  if (!path.startsWith(root + sep)) return null;
  try {
    return lstatSync(path).isFile() ? path : null;
  } catch {
    return null;
  }
}

export function registerStaticPage(app: FastifyInstance, pageDir: string | undefined): void {
  const built = pageDir !== undefined && existsSync(join(pageDir, 'index.html'));
  app.get('/', async (_request, reply) => {
    if (!built) return reply.type('text/html; charset=utf-8').send(NOT_BUILT);
    return reply
      .type(TYPES['.html']!)
      .header('cache-control', 'no-cache')
      .send(createReadStream(join(pageDir, 'index.html')));
  });
  app.get('/*', async (request, reply) => {
    const path = built ? pageFile(pageDir, request.url.split('?')[0]!) : null;
    if (!path) throw notFound(`Not found: ${request.url.split('?')[0]}`);
    return reply
      .type(TYPES[extname(path)] ?? 'application/octet-stream')
      .header('cache-control', 'no-cache')
      .send(createReadStream(path));
  });
}
