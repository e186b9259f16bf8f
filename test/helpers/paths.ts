// Paths for tests: the repository root and the shared data folder next to it.
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

/** A path in the shared data folder: `<root>/shared` if the checkout has one, else `<root>/../shared`. */
export function sharedPath(...parts: string[]): string {
  const root = repoRoot();
  const inside = join(root, 'shared');
  return join(existsSync(inside) ? inside : join(root, '..', 'shared'), ...parts);
}
