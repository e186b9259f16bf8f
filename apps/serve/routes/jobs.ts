// Training and generating for a subject, and the jobs: list, one, cancel, their files and a
// generate job's images as one zip (api.ts lists the routes).
import { createReadStream, lstatSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { extname, join, resolve, sep } from 'node:path';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { zipSync } from 'fflate';
import type { JobRecord } from '../../../src/jobs/job.js';
import type { ServerContext } from '../context.js';
import { badRequest, notFound } from '../errors.js';
import { checkId, newId } from '../ids.js';
import { checkTrainSettings, generateInput, trainInput } from '../job_requests.js';
import { jobIdOf, subjectIdOf } from './params.js';

const FILE_TYPES: Record<string, string> = {
  '.png': 'image/png',
  '.json': 'application/json',
  '.jsonl': 'application/x-ndjson',
  '.txt': 'text/plain; charset=utf-8',
  '.safetensors': 'application/octet-stream',
};
const FILE_PART_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,199}$/;

export function jobRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const { subjects, masks, queue } = ctx;

  app.post('/api/subjects/:sid/train', async (request, reply) => {
    const sid = subjectIdOf(request);
    const subject = subjects.get(sid);
    checkTrainSettings(request.body); // refused before the masks are made
    if (subject.photos.length === 0) throw badRequest(`${subject.name} has no photos to train on`);
    const references = join(subjects.dirOf(sid), 'references', newId('r'));
    await masks.snapshot(sid, references);
    const input = trainInput(request.body, { ...ctx, references, subject });
    return reply.code(202).send(await queue.submit(input, sid));
  });

  app.post('/api/subjects/:sid/generate', async (request, reply) => {
    const sid = subjectIdOf(request);
    subjects.get(sid);
    const input = generateInput(request.body, {
      baseModel: ctx.baseModel,
      queue,
      sid,
      models: ctx.models,
    });
    return reply.code(202).send(await queue.submit(input, sid));
  });

  app.get('/api/jobs', async (request) => {
    const subject = (request.query as Record<string, unknown>).subject;
    return queue.list(subject === undefined ? undefined : checkId(subject, 'subject'));
  });

  app.get('/api/jobs/:jid', async (request) => queue.get(jobIdOf(request)));

  app.post('/api/jobs/:jid/cancel', async (request) => queue.cancel(jobIdOf(request)));

  app.get('/api/jobs/:jid/files/*', async (request, reply) => {
    const job = queue.get(jobIdOf(request));
    const path = jobFile(job, fileNameOf(request));
    const type = FILE_TYPES[extname(path)] ?? 'application/octet-stream';
    if (type === 'application/octet-stream')
      reply.header('content-disposition', `attachment; filename="${path.split(sep).at(-1)}"`);
    return reply.type(type).header('cache-control', 'no-cache').send(createReadStream(path));
  });

  app.get('/api/jobs/:jid/archive.zip', async (request, reply) => {
    const job = queue.get(jobIdOf(request));
    if (job.input.kind !== 'generate')
      throw badRequest(
        `Job ${job.id} is a ${job.input.kind} job: only generate jobs have an archive`,
      );
    const files = pngsOf(job.dir);
    if (files.length === 0) throw notFound(`Job ${job.id} has written no images (yet)`);
    const zip = zipSync(
      Object.fromEntries(files.map((f) => [f, readFileSync(join(job.dir, f))])),
      { level: 0 }, // PNGs are compressed already
    );
    return reply
      .type('application/zip')
      .header('content-disposition', `attachment; filename="p3s-${job.id}.zip"`)
      .send(Buffer.from(zip));
  });
}

/**
 * The file name after /files/, taken from the raw URL and decoded once, so "samples/x.png" and
 * "samples%2Fx.png" (how the page escapes it) name the same file.
 */
function fileNameOf(request: FastifyRequest): string {
  const path = request.url.split('?')[0]!;
  const raw = path.slice(path.indexOf('/files/') + '/files/'.length);
  try {
    return decodeURIComponent(raw);
  } catch {
    throw badRequest(`Malformed file name ${JSON.stringify(raw)}`);
  }
}

/**
 * The job's file by a name of at most one folder and a file ("adapter.safetensors",
 * "samples/step-000010.png"): no "..", no absolute paths, no dot files; an existing regular file
 * whose real path stays inside the job's folder.
 */
export function jobFile(job: JobRecord, name: string): string {
  const parts = name.split('/');
  if (parts.length > 2 || !parts.every((p) => FILE_PART_RE.test(p)))
    throw badRequest(
      `Expected a file name such as "adapter.safetensors" or "samples/step-000010.png" (letters, digits, ".", "_", "-", at most one folder) but received ${JSON.stringify(name)}`,
    );
  const missing = () => notFound(`Job ${job.id} has no file ${name}`);
  const root = resolve(job.dir);
  const path = resolve(root, ...parts);
  try {
    if (!lstatSync(path).isFile() || !realpathSync(path).startsWith(realpathSync(root) + sep))
      throw missing();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code) throw missing();
    throw err;
  }
  return path;
}

/** The PNGs in a job's folder and its subfolders one level down, relative, sorted. */
function pngsOf(dir: string): string[] {
  const out: string[] = [];
  const visit = (rel: string, depth: number) => {
    let entries;
    try {
      entries = readdirSync(join(dir, rel), { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      const name = rel ? `${rel}/${e.name}` : e.name;
      if (e.isFile() && e.name.endsWith('.png')) out.push(name);
      else if (e.isDirectory() && depth === 0) visit(name, 1);
    }
  };
  visit('', 0);
  return out.sort();
}
