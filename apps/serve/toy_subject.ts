// The subject a new data folder starts with on the shipped toy models: four toy-world photos of
// p3s demo's subject, each next to a look-alike (the same shape in another colour or pattern),
// with the subject and the look-alike already clicked on the first photo — so a first visit can
// press "Train" at once, and see what the clicks do by moving them.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writePng } from '../../src/io/image.js';
import { describeObject, makeSubjectReferenceSet } from '../../src/toyworld/index.js';
import { DEMO_SUBJECT_SEED } from '../demo/settings.js';
import type { Photo, Subject } from './api.js';
import { newId } from './ids.js';
import type { SubjectStore } from './subjects.js';

const TOY_PHOTOS = 4;
const TOY_SIZE = 64;
/** Written once the toy subject was made, so deleting it is not undone by the next start. */
const MARKER = '.toy-subject-created';

/** Creates the toy subject when the data folder has never had one and no subject exists. */
export async function ensureToySubject(
  store: SubjectStore,
  dataDir: string,
): Promise<Subject | null> {
  const marker = join(dataDir, MARKER);
  if (existsSync(marker) || store.list().length > 0) return null;
  const subject = await createToySubject(store);
  writeFileSync(marker, `${subject.id}\n`);
  return subject;
}

export async function createToySubject(store: SubjectStore): Promise<Subject> {
  const set = makeSubjectReferenceSet(DEMO_SUBJECT_SEED, {
    count: TOY_PHOTOS,
    withDistractor: TOY_PHOTOS,
    size: TOY_SIZE,
  });
  // "Toy orange checkered cross": the words its captions use
  const name = `Toy ${describeObject(set.subject)}`;
  const subject = store.create({ name, classWord: set.subject.shape });
  const photos: Photo[] = [];
  for (const [i, im] of set.images.entries()) {
    const id = newId('p');
    const { size, rgb } = im.scene;
    await writePng(store.photoPath(subject.id, id), { width: size, height: size, data: rgb });
    const clicked = i === 0;
    photos.push({
      id,
      name: `toy-${i + 1}.png`,
      width: size,
      height: size,
      positive: clicked ? [[im.positive.x, im.positive.y]] : [],
      negative: clicked && im.negative ? [[im.negative.x, im.negative.y]] : [],
    });
  }
  return store.addPhotos(subject.id, photos);
}
