// GET /api/openapi.json: an OpenAPI 3.1 description of the API, built from one table of routes
// (API_ROUTES) and the JSON shapes of api.ts as named schemas. test/serve checks that every route
// the server registers is in the table, so the description cannot drift from the routes.
import { LIMITS } from './api.js';

type Method = 'get' | 'post' | 'put' | 'patch' | 'delete';

export interface RouteDoc {
  method: Method;
  /** OpenAPI path: fastify's ":sid" written "{sid}", a trailing "*" as "{name}". */
  path: string;
  summary: string;
  /** A schema name of `components.schemas`, or 'multipart' for the photo upload. */
  request?: string;
  /** The success status and what it returns: a schema name, a media type, or null (no body). */
  status: number;
  response: string | null;
  /** Array of response items. */
  list?: boolean;
}

export const API_ROUTES: RouteDoc[] = [
  {
    method: 'get',
    path: '/api/health',
    summary: 'The server is up',
    status: 200,
    response: 'Health',
  },
  {
    method: 'get',
    path: '/api/openapi.json',
    summary: 'This description',
    status: 200,
    response: 'application/json',
  },
  {
    method: 'get',
    path: '/api/models',
    summary: 'The models the server runs on',
    status: 200,
    response: 'ModelsInfo',
  },
  {
    method: 'get',
    path: '/api/subjects',
    summary: 'Every subject',
    status: 200,
    response: 'Subject',
    list: true,
  },
  {
    method: 'post',
    path: '/api/subjects',
    summary: 'Create a subject',
    request: 'NewSubject',
    status: 201,
    response: 'Subject',
  },
  {
    method: 'get',
    path: '/api/subjects/{sid}',
    summary: 'One subject',
    status: 200,
    response: 'Subject',
  },
  {
    method: 'patch',
    path: '/api/subjects/{sid}',
    summary: 'Rename a subject or change its class word',
    request: 'SubjectPatch',
    status: 200,
    response: 'Subject',
  },
  {
    method: 'delete',
    path: '/api/subjects/{sid}',
    summary: 'Delete a subject (409 while a job of it runs)',
    status: 204,
    response: null,
  },
  {
    method: 'post',
    path: '/api/subjects/{sid}/photos',
    summary: `Add photos (multipart field "photos", JPEG/PNG/WebP, at most ${LIMITS.maxPhotos} per subject)`,
    request: 'multipart',
    status: 201,
    response: 'Subject',
  },
  {
    method: 'get',
    path: '/api/subjects/{sid}/photos/{pid}',
    summary: 'A photo as stored (PNG, upright, scaled)',
    status: 200,
    response: 'image/png',
  },
  {
    method: 'delete',
    path: '/api/subjects/{sid}/photos/{pid}',
    summary: 'Delete a photo',
    status: 200,
    response: 'Subject',
  },
  {
    method: 'put',
    path: '/api/subjects/{sid}/photos/{pid}/points',
    summary: "Set a photo's clicks",
    request: 'Points',
    status: 200,
    response: 'Subject',
  },
  {
    method: 'post',
    path: '/api/subjects/{sid}/masks',
    summary: "Make the subject's masks from its clicks (live preview)",
    status: 200,
    response: 'MaskPreview',
  },
  {
    method: 'get',
    path: '/api/subjects/{sid}/masks/{pid}/{file}',
    summary: 'A mask layer: file is subject.png, distractor.png, overlay.png or filled.png',
    status: 200,
    response: 'image/png',
  },
  {
    method: 'post',
    path: '/api/subjects/{sid}/train',
    summary: 'Start training an adapter on the subject',
    request: 'TrainRequest',
    status: 202,
    response: 'JobRecord',
  },
  {
    method: 'post',
    path: '/api/subjects/{sid}/generate',
    summary: "Start generating images with a training job's adapter",
    request: 'GenerateRequest',
    status: 202,
    response: 'JobRecord',
  },
  {
    method: 'get',
    path: '/api/jobs',
    summary: 'Jobs, newest first (?subject= filters)',
    status: 200,
    response: 'JobRecord',
    list: true,
  },
  {
    method: 'get',
    path: '/api/jobs/{jid}',
    summary: 'One job',
    status: 200,
    response: 'JobRecord',
  },
  {
    method: 'post',
    path: '/api/jobs/{jid}/cancel',
    summary: 'Cancel a queued or running job (409 when finished)',
    status: 200,
    response: 'JobRecord',
  },
  {
    method: 'get',
    path: '/api/jobs/{jid}/files/{name}',
    summary: 'A file the job wrote ("adapter.safetensors", "samples/step-000010.png")',
    status: 200,
    response: 'application/octet-stream',
  },
  {
    method: 'get',
    path: '/api/jobs/{jid}/archive.zip',
    summary: 'Every image of a generate job, zipped',
    status: 200,
    response: 'application/zip',
  },
  {
    method: 'get',
    path: '/api/events',
    summary: 'Job events as server-sent events (data: JobEvent)',
    status: 200,
    response: 'text/event-stream',
  },
];

const obj = (
  properties: Record<string, unknown>,
  required: string[] = Object.keys(properties),
) => ({
  type: 'object',
  properties,
  required,
});
const str = { type: 'string' };
const int = { type: 'integer' };
const num = { type: 'number' };
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const point = { type: 'array', items: num, minItems: 2, maxItems: 2 };
const points = { type: 'array', items: point, maxItems: LIMITS.maxPoints };
const id = { type: 'string', pattern: '^[a-z0-9-]{1,64}$' };

const SCHEMAS: Record<string, unknown> = {
  ApiError: obj({ error: str, statusCode: int }),
  Health: obj({ ok: { const: true }, version: str }),
  ModelsInfo: obj({
    base: str,
    clip: str,
    toy: { type: 'boolean' },
    resolution: int,
    exampleContexts: { type: 'array', items: str },
  }),
  NewSubject: obj({ name: str, classWord: { type: 'string', pattern: '^[a-z][a-z0-9]{0,31}$' } }),
  SubjectPatch: obj({ name: str, classWord: str }, []),
  Points: obj({ positive: points, negative: points }, []),
  Photo: obj({ id, name: str, width: int, height: int, positive: points, negative: points }),
  Subject: obj({
    id,
    name: str,
    classWord: str,
    identifier: str,
    createdAt: str,
    photos: { type: 'array', items: ref('Photo') },
  }),
  PhotoMask: obj({
    photoId: id,
    propagated: { type: 'boolean' },
    subjectShare: num,
    layers: { type: 'object', additionalProperties: str },
  }),
  MaskPreview: obj({
    photos: { type: 'array', items: ref('PhotoMask') },
    millis: num,
    encoded: num,
  }),
  TrainRequest: obj(
    {
      settings: {
        type: 'object',
        description: "TRAIN_SETTINGS by API key (paths and the subject's words excluded)",
      },
    },
    [],
  ),
  GenerateRequest: obj(
    {
      trainJob: id,
      prompts: {
        type: 'array',
        items: { type: 'string', maxLength: LIMITS.maxPromptLength },
        minItems: 1,
        maxItems: LIMITS.maxPrompts,
      },
      numImages: { type: 'integer', minimum: 1, maximum: LIMITS.maxImages },
      seed: int,
      guidanceScale: num,
      steps: { type: 'integer', minimum: 1, maximum: LIMITS.maxSteps },
    },
    ['trainJob', 'prompts'],
  ),
  JobRecord: obj({
    id,
    owner: { type: ['string', 'null'] },
    input: { type: 'object' },
    state: { enum: ['queued', 'running', 'succeeded', 'failed', 'cancelled'] },
    createdAt: str,
    startedAt: { type: ['string', 'null'] },
    finishedAt: { type: ['string', 'null'] },
    progress: { type: ['object', 'null'] },
    result: {},
    error: { type: ['object', 'null'] },
    attempts: int,
    dir: str,
  }),
  JobEvent: obj({
    type: { enum: ['submitted', 'started', 'progress', 'finished'] },
    job: ref('JobRecord'),
  }),
};

function content(what: string, list = false): Record<string, unknown> {
  if (what.includes('/')) return { [what]: { schema: { type: 'string', format: 'binary' } } };
  const schema = list ? { type: 'array', items: ref(what) } : ref(what);
  return { 'application/json': { schema } };
}

function operation(r: RouteDoc): Record<string, unknown> {
  const params = [...r.path.matchAll(/\{(\w+)\}/g)].map((m) => ({
    name: m[1],
    in: 'path',
    required: true,
    schema: m[1] === 'name' || m[1] === 'file' ? str : id,
  }));
  const body =
    r.request === 'multipart'
      ? {
          required: true,
          content: {
            'multipart/form-data': {
              schema: obj({
                photos: { type: 'array', items: { type: 'string', format: 'binary' } },
              }),
            },
          },
        }
      : r.request
        ? { required: true, content: content(r.request) }
        : undefined;
  const success =
    r.response === null
      ? { description: 'Done' }
      : { description: 'OK', content: content(r.response, r.list) };
  return {
    summary: r.summary,
    ...(params.length ? { parameters: params } : {}),
    ...(body ? { requestBody: body } : {}),
    responses: {
      [String(r.status)]: success,
      '4XX': { description: 'Refused', content: content('ApiError') },
    },
  };
}

export function openApiDocument(version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of API_ROUTES) (paths[r.path] ??= {})[r.method] = operation(r);
  return {
    openapi: '3.1.0',
    info: {
      title: 'p3s serve',
      version,
      description: 'The JSON API of `p3s serve` (apps/serve/api.ts).',
    },
    components: {
      schemas: SCHEMAS,
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer' },
        query: { type: 'apiKey', in: 'query', name: 'token' },
      },
    },
    security: [{}, { bearer: [] }, { query: [] }],
    paths,
  };
}

/** A fastify route path in OpenAPI's form: ":sid" -> "{sid}", a trailing "*" -> "{name}". */
export function openApiPath(fastifyPath: string): string {
  return fastifyPath.replace(/:(\w+)/g, '{$1}').replace(/\/\*$/, '/{name}');
}
