// Small JSON files written atomically (a temporary file renamed over the old one), so a reader
// or a crash never sees half a file: records, summaries, eval.json.
import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';

export function writeJsonAtomic(path: string, value: unknown): void {
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw new Error(`Cannot write ${path}: ${(err as Error).message}`);
  }
}

export function readJsonFile<T>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}
