// The HTTP server of `p3s serve`: the page at / and the JSON API under /api (api.ts), on fastify.
// createServer builds it (not listening: tests use inject); startServer listens and refuses to
// listen off this machine without a token. Every failure becomes an ApiError answer: nothing a
// request does can crash the server.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import multipart from '@fastify/multipart';
import Fastify, { type FastifyInstance } from 'fastify';
import type { JobQueue } from '../../src/jobs/job.js';
import { LIMITS } from './api.js';
import { checkToken } from './auth.js';
import type { ServerContext } from './context.js';
import { apiErrorOf, statusOf } from './errors.js';
import { liveMaskSettings } from './mask_settings.js';
import { MaskService } from './masks.js';
import { modelsInfo, subjectIdentifier } from './models_info.js';
import { openApiDocument } from './openapi.js';
import { eventRoutes } from './routes/events.js';
import { jobRoutes } from './routes/jobs.js';
import { subjectRoutes } from './routes/subjects.js';
import { registerStaticPage } from './static_page.js';
import { SubjectStore } from './subjects.js';
import { ensureToySubject } from './toy_subject.js';

export interface ServerOptions {
  /** Subjects, photos, masks and (through the queue) jobs are kept here. */
  dataDir: string;
  /** Stable Diffusion folder (diffusers layout) and CLIP vision folder (for the masks). */
  baseModel: string;
  clipModel: string;
  queue: JobQueue;
  /** Where startServer listens; createServer only records it. */
  host: string;
  /** Every /api request must carry it (Bearer header or ?token=); required off 127.0.0.1. */
  token?: string;
  /** The built page (index.html, main.js, style.css); without it / says how to build it. */
  pageDir?: string;
  /** Create the toy subject in a new data folder on the shipped toy models (default true). */
  toySubject?: boolean;
  /** Load CLIP for the masks when the server starts rather than at the first click (default false). */
  warmUp?: boolean;
  /** Heartbeat period of /api/events in ms (default 15 s; tests use less). */
  heartbeatMs?: number;
}

/** JSON bodies are small (clicks, settings); photos come as multipart, limited on their own. */
const JSON_BODY_LIMIT = 1024 * 1024;
const LOCAL_HOSTS = ['127.0.0.1', 'localhost', '::1'];

function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  try {
    return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string })
      .version;
  } catch {
    return 'unknown';
  }
}

const ROUTES = new WeakMap<FastifyInstance, string[]>();

/** Every route the server registered, as "GET /api/subjects/:sid" (the OpenAPI test reads it). */
export function registeredRoutes(app: FastifyInstance): string[] {
  return [...(ROUTES.get(app) ?? [])];
}

export function createServer(options: ServerOptions): FastifyInstance {
  const dataDir = resolve(options.dataDir);
  const models = modelsInfo(options.baseModel, options.clipModel);
  const subjects = new SubjectStore(dataDir, subjectIdentifier(models));
  const masks = new MaskService(subjects, liveMaskSettings(options.baseModel, options.clipModel));
  const ctx: ServerContext = { ...options, dataDir, subjects, masks, models };
  const app = Fastify({ bodyLimit: JSON_BODY_LIMIT, logger: false });
  const version = packageVersion();
  const routes: string[] = [];
  ROUTES.set(app, routes);
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat())
      if (method !== 'HEAD') routes.push(`${method} ${route.url}`);
  });

  app.setErrorHandler((err, request, reply) => {
    const body = apiErrorOf(err);
    if (statusOf(err) >= 500)
      console.error(`p3s serve: ${request.method} ${request.url} failed:`, err);
    return reply.code(body.statusCode).send(body);
  });
  app.setNotFoundHandler((request, reply) =>
    reply
      .code(404)
      .send({ error: `No route ${request.method} ${request.url.split('?')[0]}`, statusCode: 404 }),
  );
  const token = options.token;
  if (token) {
    app.addHook('onRequest', async (request) => {
      const route = request.routeOptions.url ?? '';
      if (request.url.startsWith('/api') || route.startsWith('/api')) checkToken(request, token);
    });
  }
  app.register(multipart, {
    limits: { fileSize: LIMITS.maxUploadBytes, files: LIMITS.maxPhotos },
    throwFileSizeLimit: true,
  });
  app.register(async (api) => {
    api.get('/api/health', async () => ({ ok: true, version }));
    api.get('/api/openapi.json', async () => openApiDocument(version));
    api.get('/api/models', async () => models);
    subjectRoutes(api, ctx);
    jobRoutes(api, ctx);
    eventRoutes(api, ctx, options.heartbeatMs);
  });
  registerStaticPage(app, options.pageDir);

  app.addHook('onReady', async () => {
    if ((options.toySubject ?? true) && models.toy) await ensureToySubject(subjects, dataDir);
    if (options.warmUp) masks.warmUp();
  });
  app.addHook('onClose', async () => masks.close());
  return app;
}

export interface RunningServer {
  /** http://host:port/ */
  url: string;
  app: FastifyInstance;
  /** Stops listening and ends open event streams (the job queue is the caller's to close). */
  close(): Promise<void>;
}

/** Why listening on `host` is refused (another address than this machine's without a token), or null. */
export function hostRefusal(host: string, token: string | null | undefined): string | null {
  if (LOCAL_HOSTS.includes(host) || token) return null;
  return (
    `Refusing to listen on ${host} without a token: anyone who can reach it could use the server. ` +
    'Give a token (--token or P3S_TOKEN), or listen on 127.0.0.1.'
  );
}

/** Listens on options.host (default 127.0.0.1) and port (default 7860; 0: any free port). */
export async function startServer(
  options: Omit<ServerOptions, 'host'> & { host?: string; port?: number },
): Promise<RunningServer> {
  const host = options.host ?? '127.0.0.1';
  const refused = hostRefusal(host, options.token);
  if (refused) throw new Error(refused);
  const app = createServer({ warmUp: true, ...options, host });
  await app.listen({ host, port: options.port ?? 7860 });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const shown = host.includes(':') ? `[${host}]` : host;
  return { url: `http://${shown}:${port}/`, app, close: () => app.close() };
}
