// The token check: with a token, every /api request carries "Authorization: Bearer <token>" or,
// for URLs a browser loads itself (EventSource, <img>), "?token=<token>". Compared in constant
// time (digests of equal length), so the answer's timing tells nothing about the token.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { HttpError } from './errors.js';

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

export function tokenMatches(given: string, token: string): boolean {
  return timingSafeEqual(digest(given), digest(token));
}

/** The token a request carries, if any. */
function tokenOf(request: FastifyRequest): string | null {
  const header = request.headers.authorization;
  if (typeof header === 'string') {
    const m = /^Bearer\s+(.+)$/i.exec(header.trim());
    if (m) return m[1]!;
  }
  const query = (request.query as Record<string, unknown> | undefined)?.token;
  return typeof query === 'string' ? query : null;
}

/** Throws a 401 unless the request carries the token. */
export function checkToken(request: FastifyRequest, token: string): void {
  const given = tokenOf(request);
  if (given !== null && tokenMatches(given, token)) return;
  throw new HttpError(
    401,
    given === null
      ? 'This server needs its token: send "Authorization: Bearer <token>" or add ?token=<token> to the URL'
      : 'Wrong token',
  );
}
