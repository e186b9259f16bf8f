// The page's HTTP client for the API in ../api.ts: JSON in and out, ApiError bodies turned into
// thrown errors with the server's words, and the page's ?token= passed on (as a Bearer header on
// fetches, as ?token= on the URLs that <img> and EventSource load themselves).
import type { ApiError } from '../api.js';

const token = new URLSearchParams(location.search).get('token');

/** A refused or failed request: the server's message and its HTTP status (0: no answer). */
export class RequestError extends Error {
  constructor(
    message: string,
    readonly statusCode: number,
  ) {
    super(message);
    this.name = 'RequestError';
  }
}

/** The URL with ?token= added when the page has one (for <img>, <a href> and EventSource). */
export function withToken(url: string): string {
  if (!token) return url;
  const u = new URL(url, location.href);
  u.searchParams.set('token', token);
  return u.origin === location.origin ? u.pathname + u.search + u.hash : u.href;
}

function describe(method: string, path: string): string {
  return `${method} ${path.replace(/\?.*$/, '')}`;
}

export async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  let payload: BodyInit | undefined;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) {
    headers['content-type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let res: Response;
  try {
    res = await fetch(path, { method, headers, body: payload });
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new RequestError(`${describe(method, path)}: the server did not answer (${why})`, 0);
  }
  const text = res.status === 204 ? '' : await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    const apiError = json as Partial<ApiError> | undefined;
    const message =
      typeof apiError?.error === 'string'
        ? apiError.error
        : text.trim().slice(0, 300) || res.statusText || 'request failed';
    throw new RequestError(message, apiError?.statusCode ?? res.status);
  }
  if (json === undefined && text) {
    throw new RequestError(`${describe(method, path)}: the answer is not JSON`, res.status);
  }
  return json as T;
}

export const api = {
  get: <T>(path: string) => request<T>('GET', path),
  post: <T>(path: string, body?: unknown) => request<T>('POST', path, body),
  put: <T>(path: string, body?: unknown) => request<T>('PUT', path, body),
  patch: <T>(path: string, body?: unknown) => request<T>('PATCH', path, body),
  delete: <T>(path: string) => request<T>('DELETE', path),
};

/** A path segment, escaped. */
export const seg = encodeURIComponent;

/** The URL of a file a job wrote (a name relative to the job's folder, "/" escaped as %2F). */
export function jobFileUrl(jobId: string, name: string): string {
  return withToken(`/api/jobs/${seg(jobId)}/files/${seg(name)}`);
}
