// The ids of a request's path, checked before anything uses them (ids.ts).
import type { FastifyRequest } from 'fastify';
import { checkId } from '../ids.js';

const params = (request: FastifyRequest): Record<string, unknown> =>
  (request.params ?? {}) as Record<string, unknown>;

export const subjectIdOf = (request: FastifyRequest): string =>
  checkId(params(request).sid, 'subject');
export const photoIdOf = (request: FastifyRequest): string => checkId(params(request).pid, 'photo');
export const jobIdOf = (request: FastifyRequest): string => checkId(params(request).jid, 'job');
