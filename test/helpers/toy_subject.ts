// A toy-world subject on disk, as a user would give it: reference photos (the subject next to a
// look-alike) and an annotation file with a positive click on the subject and a negative one on
// the look-alike in each.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writePng } from '../../src/io/image.js';
import { makeSubjectReferenceSet } from '../../src/toyworld/index.js';

export interface ToySubjectFiles {
  /** The folder of reference photos (ref-0.png ...). */
  refDir: string;
  /** The annotation file (identifier sks, class word "toy"), paths relative to `root`. */
  annotationPath: string;
}

export async function writeToySubject(
  root: string,
  seed: number,
  count: number,
  size = 64,
): Promise<ToySubjectFiles> {
  const refDir = join(root, 'refs');
  mkdirSync(refDir, { recursive: true });
  const set = makeSubjectReferenceSet(seed, { count, size });
  const entries = [];
  for (let i = 0; i < set.images.length; i++) {
    const { scene, positive, negative } = set.images[i]!;
    const name = `ref-${i}.png`;
    await writePng(join(refDir, name), { width: scene.size, height: scene.size, data: scene.rgb });
    entries.push({
      path: join('refs', name),
      positive: [[positive.x, positive.y]],
      ...(negative ? { negative: [[negative.x, negative.y]] } : {}),
    });
  }
  const annotationPath = join(root, 'subject.json');
  writeFileSync(
    annotationPath,
    JSON.stringify({ version: 1, identifier: 'sks', classWord: 'toy', images: entries }),
  );
  return { refDir, annotationPath };
}
