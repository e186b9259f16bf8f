// Every refusal the API makes, as one error type with its HTTP status, and the mapping from the
// library's own errors (a bad setting, a refused job, a bad click) to a 4xx. The server's error
// handler turns all of them into ApiError bodies, so a request never crashes the server.
import { JobError } from '../../src/jobs/job.js';
import { AnnotationError } from '../../src/p3s/supervision/annotations.js';
import { KindError, SettingError } from '../../src/settings/kinds.js';
import type { ApiError } from './api.js';

/** A request the API refuses: its status and a message for a person. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export const badRequest = (message: string): HttpError => new HttpError(400, message);
export const notFound = (message: string): HttpError => new HttpError(404, message);
export const conflict = (message: string): HttpError => new HttpError(409, message);

const JOB_ERROR_STATUS: Record<JobError['code'], number> = {
  'not-found': 404,
  finished: 409,
  invalid: 400,
};

/** The status for an error thrown while serving a request (500 when nothing says otherwise). */
export function statusOf(err: unknown): number {
  if (err instanceof HttpError) return err.statusCode;
  if (err instanceof JobError) return JOB_ERROR_STATUS[err.code];
  if (err instanceof SettingError || err instanceof KindError) return 400;
  if (err instanceof AnnotationError) return 400;
  // fastify's and its plugins' errors carry their own 4xx (bad JSON, body too large, ...)
  const code = (err as { statusCode?: unknown } | null)?.statusCode;
  if (typeof code === 'number' && code >= 400 && code < 600) return code;
  return 500;
}

/** The ApiError body for an error: its own words for a 4xx, a generic line plus the message for a 5xx. */
export function apiErrorOf(err: unknown): ApiError {
  const statusCode = statusOf(err);
  const message = err instanceof Error ? err.message : String(err);
  return {
    error: statusCode >= 500 ? `Internal error: ${message}` : message,
    statusCode,
  };
}
