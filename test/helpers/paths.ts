// Paths for tests: the repository root and the data the tests read, all inside the repository.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The nearest ancestor folder of this (compiled) file that holds a package.json. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir)
      throw new Error(
        `Expected a package.json above ${fileURLToPath(import.meta.url)} but found none`,
      );
    dir = parent;
  }
  return dir;
}

/** A path in the repository's reference fixtures (test/fixtures; provenance in its README). */
export function fixturePath(...parts: string[]): string {
  return join(repoRoot(), 'test', 'fixtures', ...parts);
}

/** A path in the DreamBench photos and prompts carried in the repository (data/dreambench). */
export function dreambenchPath(...parts: string[]): string {
  return join(repoRoot(), 'data', 'dreambench', ...parts);
}
