// Deterministic tensor memory: scopes free every intermediate tensor they saw created.
//
//   const y = tidy(() => model.forward(x));   // everything but `y` is freed here
//
// Tensors created outside any scope live until dispose() or garbage collection (the native
// handle's finalizer is the backstop). tidy() is synchronous by design: an async callback would
// let other work register tensors in the wrong scope.
import { native, type CpuCacheStats } from './native.js';

export interface Disposable {
  dispose(): void;
}

const scopes: Set<Disposable>[] = [];

/** Called by every new Tensor: registers it with the innermost scope, if any. */
export function track(t: Disposable): void {
  const top = scopes[scopes.length - 1];
  if (top !== undefined) top.add(t);
}

/** Takes a tensor out of every scope, so it outlives them (until dispose()). */
export function keep<T extends Disposable>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}

function collect(value: unknown, scope: Set<Disposable>, out: Set<unknown>, depth = 0): void {
  if (value === null || typeof value !== 'object' || depth > 4) return;
  if (scope.has(value as Disposable)) {
    out.add(value);
    return;
  }
  if (Array.isArray(value) || value instanceof Set) {
    for (const v of value) collect(v, scope, out, depth + 1);
  } else if (value instanceof Map) {
    for (const v of value.values()) collect(v, scope, out, depth + 1);
  } else if (typeof (value as { namedParameters?: unknown }).namedParameters !== 'function') {
    // Plain objects and result classes (e.g. a latent distribution) keep the tensors they hold;
    // modules are skipped: their parameters are never scope-owned.
    for (const v of Object.values(value)) collect(v, scope, out, depth + 1);
  }
}

/**
 * Runs fn and frees every tensor created inside it, except those it returns (directly, or in
 * arrays, Maps, Sets and objects' own properties, four levels deep) and those passed to keep().
 * Returned tensors move to the enclosing scope.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Disposable>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (err) {
    scopes.pop();
    for (const t of scope) t.dispose();
    throw err;
  }
  scopes.pop();
  if (result instanceof Promise) {
    throw new Error('tidy() takes a synchronous function; wrap each synchronous step instead');
  }
  const survivors = new Set<unknown>();
  collect(result, scope, survivors);
  const parent = scopes[scopes.length - 1];
  for (const t of scope) {
    if (survivors.has(t)) parent?.add(t);
    else t.dispose();
  }
  return result;
}

/** Disposes every tensor found in value (a tensor, or arrays / plain objects / Maps of them). */
export function disposeAll(value: unknown): void {
  if (value === null || typeof value !== 'object') return;
  if (typeof (value as Disposable).dispose === 'function' && !Array.isArray(value)) {
    (value as Disposable).dispose();
    return;
  }
  if (Array.isArray(value)) for (const v of value) disposeAll(v);
  else if (value instanceof Map) for (const v of value.values()) disposeAll(v);
  else for (const v of Object.values(value)) disposeAll(v);
}

/** Restarts memory().cpuCache.peakInUseBytes from the bytes in use now. */
export function resetPeakInUse(): void {
  native.resetPeakInUse();
}

/**
 * Live native tensor handles (a test that this stays flat proves nothing leaks) and the native
 * core's cache of freed large CPU buffers.
 */
export function memory(): { liveTensors: number; scopeDepth: number; cpuCache: CpuCacheStats } {
  return {
    liveTensors: native.liveTensors(),
    scopeDepth: scopes.length,
    cpuCache: native.cpuCache(),
  };
}
