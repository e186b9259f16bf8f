// Subjects, their photos and clicks, and the live masks (api.ts lists the routes).
import { createReadStream, existsSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { FINISHED_STATES } from '../../../src/jobs/job.js';
import type { MaskLayer } from '../api.js';
import type { ServerContext } from '../context.js';
import { badRequest, conflict, notFound } from '../errors.js';
import { MASK_LAYERS } from '../masks.js';
import { receivePhotos } from '../uploads.js';
import { photoIdOf, subjectIdOf } from './params.js';

export function subjectRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const { subjects, masks, queue } = ctx;

  app.get('/api/subjects', async () => subjects.list());

  app.post('/api/subjects', async (request, reply) =>
    reply.code(201).send(subjects.create(request.body)),
  );

  app.get('/api/subjects/:sid', async (request) => subjects.get(subjectIdOf(request)));

  app.patch('/api/subjects/:sid', async (request) =>
    subjects.update(subjectIdOf(request), request.body),
  );

  app.delete('/api/subjects/:sid', async (request, reply) => {
    const sid = subjectIdOf(request);
    subjects.get(sid);
    const active = queue.list(sid).find((j) => !FINISHED_STATES.includes(j.state));
    if (active)
      throw conflict(
        `Subject ${sid} has a ${active.input.kind} job ${active.state} (${active.id}): cancel it or wait until it ends, then delete`,
      );
    subjects.delete(sid);
    return reply.code(204).send();
  });

  app.post('/api/subjects/:sid/photos', async (request, reply) => {
    const sid = subjectIdOf(request);
    return reply.code(201).send(await receivePhotos(request, subjects, sid));
  });

  app.get('/api/subjects/:sid/photos/:pid', async (request, reply) => {
    const sid = subjectIdOf(request);
    const pid = photoIdOf(request);
    subjects.photo(subjects.get(sid), pid);
    const path = subjects.photoPath(sid, pid);
    if (!existsSync(path)) throw notFound(`Photo ${pid} has no file`);
    return reply.type('image/png').header('cache-control', 'no-cache').send(createReadStream(path));
  });

  app.delete('/api/subjects/:sid/photos/:pid', async (request) =>
    subjects.deletePhoto(subjectIdOf(request), photoIdOf(request)),
  );

  app.put('/api/subjects/:sid/photos/:pid/points', async (request) =>
    subjects.setPoints(subjectIdOf(request), photoIdOf(request), request.body),
  );

  app.post('/api/subjects/:sid/masks', async (request) => {
    const sid = subjectIdOf(request);
    subjects.get(sid);
    return masks.preview(sid);
  });

  app.get('/api/subjects/:sid/masks/:pid/:file', async (request, reply) => {
    const sid = subjectIdOf(request);
    const pid = photoIdOf(request);
    const layer = layerOf((request.params as { file: string }).file);
    subjects.photo(subjects.get(sid), pid);
    const path = masks.layerPath(sid, pid, layer);
    if (!path || !existsSync(path))
      throw notFound(
        `Photo ${pid} has no ${layer} mask now: make the masks first (POST /api/subjects/${sid}/masks)`,
      );
    return reply.type('image/png').header('cache-control', 'no-cache').send(createReadStream(path));
  });
}

function layerOf(file: string): MaskLayer {
  const layer = file.endsWith('.png') ? file.slice(0, -4) : '';
  if ((MASK_LAYERS as string[]).includes(layer)) return layer as MaskLayer;
  throw badRequest(
    `Expected a mask layer file (${MASK_LAYERS.map((l) => `${l}.png`).join(', ')}) but received ${JSON.stringify(file)}`,
  );
}
