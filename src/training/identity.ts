// A run's identity: the values that must match for a checkpoint to continue a run (models'
// fingerprints, references, settings), stored in every checkpoint. A setting added after
// checkpoints existed has an "older default": a checkpoint without it ran at that value.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Tensor } from '../engine/tensor.js';

export interface RunIdentity {
  values: Record<string, unknown>;
  /** What a checkpoint lacking a key ran with (see above). */
  olderDefaults?: Record<string, unknown>;
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/** The keys whose values differ between a checkpoint's identity and this run's, each explained. */
export function identityDifferences(saved: Record<string, unknown>, run: RunIdentity): string[] {
  const defaults = run.olderDefaults ?? {};
  const value = (o: Record<string, unknown>, k: string): unknown => (k in o ? o[k] : defaults[k]);
  const keys = [...new Set([...Object.keys(run.values), ...Object.keys(saved)])];
  return keys
    .filter((k) => !same(value(saved, k), value(run.values, k)))
    .map(
      (k) =>
        `${k} (checkpoint ${JSON.stringify(value(saved, k)) ?? 'none'}, now ${JSON.stringify(value(run.values, k)) ?? 'none'})`,
    );
}

/** The first 16 hex digits of a file's SHA-256 (names a file a run started from). */
export function fileDigest(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex').slice(0, 16);
}

/** The first 16 hex digits of the SHA-256 of tensors' shapes and bytes (names a run's data). */
export function tensorsDigest(tensors: Tensor[]): string {
  const hash = createHash('sha256');
  for (const t of tensors) {
    const a = t.contiguous();
    const v = a.toTypedArray();
    hash.update(`${t.shape.join('x')}:`);
    hash.update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    if (a !== t) a.dispose();
  }
  return hash.digest('hex').slice(0, 16);
}
