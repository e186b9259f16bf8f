// A run's identity: the values that must match for a checkpoint to continue a run (models'
// fingerprints, references, settings), stored in every checkpoint. A setting added after
// checkpoints existed has an "older default": a checkpoint without it ran at that value.
// A run may branch from another's checkpoint with other settings (a lower learning rate after
// a divergence): it is a new run whose identity records where it branched from (its lineage),
// which its own checkpoints carry on; only the `fixed` values (models, data) must match then.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Tensor } from '../engine/tensor.js';

export interface RunIdentity {
  values: Record<string, unknown>;
  /** What a checkpoint lacking a key ran with (see above). */
  olderDefaults?: Record<string, unknown>;
  /** The keys a branch must keep (the models and data); default: every key. */
  fixed?: readonly string[];
}

/** Where a branched run started: a checkpoint of another run, continued with other settings. */
export interface Lineage {
  /** The checkpoint file (absolute path) and its step. */
  checkpoint: string;
  step: number;
  /** The first 16 hex digits of the SHA-256 of that run's identity (its own lineage included). */
  run: string;
  /** The settings the branch changed, as "key (checkpoint x, now y)". */
  changed: string[];
}

/** The identity key that holds a run's lineage; not compared on resume, inherited instead. */
export const LINEAGE_KEY = 'branched_from';

/** The lineage a checkpoint's identity records, or null for a run that did not branch. */
export function lineageOf(saved: Record<string, unknown>): Lineage | null {
  return (saved[LINEAGE_KEY] as Lineage | undefined) ?? null;
}

/** The first 16 hex digits of the SHA-256 of an identity's JSON. */
export function identityDigest(saved: Record<string, unknown>): string {
  return createHash('sha256').update(JSON.stringify(saved)).digest('hex').slice(0, 16);
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/**
 * The keys whose values differ between a checkpoint's identity and this run's (the lineage
 * aside), each explained as "key (checkpoint x, now y)"; `only` limits the comparison.
 */
export function identityDifferences(
  saved: Record<string, unknown>,
  run: RunIdentity,
  only?: readonly string[],
): string[] {
  const defaults = run.olderDefaults ?? {};
  const value = (o: Record<string, unknown>, k: string): unknown => (k in o ? o[k] : defaults[k]);
  const keys = [...new Set([...Object.keys(run.values), ...Object.keys(saved)])].filter(
    (k) => k !== LINEAGE_KEY && (only === undefined || only.includes(k)),
  );
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
