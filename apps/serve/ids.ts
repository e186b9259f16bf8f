// Ids in URLs: made by the server, and checked on every request before they name a file, so no
// request can reach a path outside the data folder.
import { randomBytes } from 'node:crypto';
import { badRequest } from './errors.js';

const ID_RE = /^[a-z0-9-]{1,64}$/;

export function isId(value: unknown): value is string {
  return typeof value === 'string' && ID_RE.test(value);
}

/** The id, or a 400 naming what it was for. */
export function checkId(value: unknown, what: string): string {
  if (isId(value)) return value;
  throw badRequest(
    `Expected a ${what} id ([a-z0-9-], 1 to 64 characters) but received ${JSON.stringify(value)}`,
  );
}

/** A new id: a time part (so names sort by creation) and a random part. */
export function newId(prefix: string): string {
  const time = Date.now().toString(36);
  return `${prefix}-${time}-${randomBytes(4).toString('hex')}`;
}
