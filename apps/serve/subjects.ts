// The subject store: one folder per subject in the data folder,
//   <dataDir>/subjects/<sid>/subject.json        the Subject (api.ts), written atomically
//   <dataDir>/subjects/<sid>/photos/<pid>.png    its photos as stored (uploads.ts)
//   <dataDir>/subjects/<sid>/masks/              the live masks, a p3s mask folder (masks.ts)
// Every method takes ids already checked (ids.ts) and refuses unknown ones with a 404; bodies
// from requests are validated here, field by field, with messages naming the field.
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  LIMITS,
  type NewSubject,
  type Photo,
  type Point,
  type Points,
  type Subject,
} from './api.js';
import { badRequest, notFound } from './errors.js';
import { isId, newId } from './ids.js';
import { readJsonFile, writeJsonAtomic } from '../../src/io/json_file.js';
import { DEFAULT_IDENTIFIER } from '../../src/p3s/prompts.js';

const MAX_NAME = 100;
const CLASS_WORD_RE = /^[a-z][a-z0-9]{0,31}$/;

export class SubjectStore {
  readonly root: string;

  constructor(
    dataDir: string,
    /** The rare token that names a new subject in prompts: the served models' recipe's, if any. */
    private readonly identifier: string = DEFAULT_IDENTIFIER,
  ) {
    this.root = join(dataDir, 'subjects');
    mkdirSync(this.root, { recursive: true });
  }

  dirOf(sid: string): string {
    return join(this.root, sid);
  }

  photosDir(sid: string): string {
    return join(this.dirOf(sid), 'photos');
  }

  photoPath(sid: string, pid: string): string {
    return join(this.photosDir(sid), `${pid}.png`);
  }

  masksDir(sid: string): string {
    return join(this.dirOf(sid), 'masks');
  }

  private fileOf(sid: string): string {
    return join(this.dirOf(sid), 'subject.json');
  }

  /** Every subject, oldest first. */
  list(): Subject[] {
    return readdirSync(this.root)
      .filter((sid) => isId(sid) && existsSync(this.fileOf(sid)))
      .map((sid) => this.get(sid))
      .sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : 0));
  }

  has(sid: string): boolean {
    return existsSync(this.fileOf(sid));
  }

  get(sid: string): Subject {
    if (!this.has(sid)) throw notFound(`No subject ${sid}`);
    return readJsonFile<Subject>(this.fileOf(sid));
  }

  save(subject: Subject): Subject {
    writeJsonAtomic(this.fileOf(subject.id), subject);
    return subject;
  }

  create(body: unknown): Subject {
    const { name, classWord } = checkNewSubject(body, false) as NewSubject;
    const id = newId('s');
    mkdirSync(this.photosDir(id), { recursive: true });
    return this.save({
      id,
      name,
      classWord,
      identifier: this.identifier,
      createdAt: new Date().toISOString(),
      photos: [],
    });
  }

  update(sid: string, body: unknown): Subject {
    const subject = this.get(sid);
    return this.save({ ...subject, ...checkNewSubject(body, true) });
  }

  delete(sid: string): void {
    this.get(sid);
    rmSync(this.dirOf(sid), { recursive: true, force: true });
  }

  photo(subject: Subject, pid: string): Photo {
    const photo = subject.photos.find((p) => p.id === pid);
    if (!photo) throw notFound(`Subject ${subject.id} has no photo ${pid}`);
    return photo;
  }

  /** Appends stored photos (uploads.ts has written their files). */
  addPhotos(sid: string, photos: Photo[]): Subject {
    const subject = this.get(sid);
    checkRoom(subject, photos.length);
    return this.save({ ...subject, photos: [...subject.photos, ...photos] });
  }

  deletePhoto(sid: string, pid: string): Subject {
    const subject = this.get(sid);
    this.photo(subject, pid);
    rmSync(this.photoPath(sid, pid), { force: true });
    return this.save({ ...subject, photos: subject.photos.filter((p) => p.id !== pid) });
  }

  setPoints(sid: string, pid: string, body: unknown): Subject {
    const subject = this.get(sid);
    const photo = this.photo(subject, pid);
    const points = checkPoints(body, photo);
    const photos = subject.photos.map((p) => (p.id === pid ? { ...p, ...points } : p));
    return this.save({ ...subject, photos });
  }
}

/** Refuses adding `count` photos when the subject would then have more than LIMITS.maxPhotos. */
export function checkRoom(subject: Subject, count: number): void {
  const room = LIMITS.maxPhotos - subject.photos.length;
  if (count > room)
    throw badRequest(
      `A subject has at most ${LIMITS.maxPhotos} photos: ${subject.name} has ${subject.photos.length}, ` +
        `so ${Math.max(0, room)} more fit, not ${count}`,
    );
}

function checkObject(body: unknown, what: string): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw badRequest(`Expected a JSON object for ${what}`);
  return body as Record<string, unknown>;
}

function checkKeys(obj: Record<string, unknown>, known: string[], what: string): void {
  const unknown = Object.keys(obj).find((k) => !known.includes(k));
  if (unknown !== undefined)
    throw badRequest(
      `Unknown field ${JSON.stringify(unknown)} in ${what} (known: ${known.join(', ')})`,
    );
}

/** A NewSubject (all fields) or a patch of one (some fields). */
function checkNewSubject(body: unknown, partial: boolean): Partial<NewSubject> {
  const obj = checkObject(body, 'a subject');
  checkKeys(obj, ['name', 'classWord'], 'a subject');
  const out: Partial<NewSubject> = {};
  if (obj.name !== undefined || !partial) out.name = checkName(obj.name);
  if (obj.classWord !== undefined || !partial) out.classWord = checkClassWord(obj.classWord);
  return out;
}

function checkName(value: unknown): string {
  const name = typeof value === 'string' ? value.trim() : '';
  if (!name || name.length > MAX_NAME || /[\u0000-\u001f\u007f]/.test(name))
    throw badRequest(
      `Expected a name of 1 to ${MAX_NAME} characters for the subject but received ${JSON.stringify(value)}`,
    );
  return name;
}

function checkClassWord(value: unknown): string {
  if (typeof value === 'string' && CLASS_WORD_RE.test(value)) return value;
  throw badRequest(
    `Expected one lowercase word (a-z, then a-z or 0-9, at most 32) for classWord, such as "dog", but received ${JSON.stringify(value)}`,
  );
}

/** Points as the photo is stored: inside it, at most LIMITS.maxPoints of each kind, none in both. */
function checkPoints(body: unknown, photo: Photo): Points {
  const obj = checkObject(body, 'points');
  checkKeys(obj, ['positive', 'negative'], 'points');
  const positive = checkPointList(obj.positive, 'positive', photo);
  const negative = checkPointList(obj.negative, 'negative', photo);
  const twice = positive.find(([x, y]) => negative.some(([u, v]) => u === x && v === y));
  if (twice)
    throw badRequest(
      `The point (${twice.join(', ')}) is both positive and negative: put the positive point on the subject and the negative one on the look-alike`,
    );
  return { positive, negative };
}

function checkPointList(value: unknown, kind: string, photo: Photo): Point[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw badRequest(`Expected an array of [x, y] points for ${kind}`);
  if (value.length > LIMITS.maxPoints)
    throw badRequest(
      `Expected at most ${LIMITS.maxPoints} ${kind} points but received ${value.length}`,
    );
  return value.map((p: unknown, i) => {
    const ok = Array.isArray(p) && p.length === 2 && p.every((c) => Number.isFinite(c));
    if (!ok)
      throw badRequest(
        `Expected [x, y] numbers for ${kind}[${i}] but received ${JSON.stringify(p)}`,
      );
    const [x, y] = p as [number, number];
    if (!(x >= 0 && x < photo.width && y >= 0 && y < photo.height))
      throw badRequest(
        `Expected ${kind}[${i}] inside the ${photo.width}×${photo.height} photo ${photo.name} but received (${x}, ${y})`,
      );
    return [x, y];
  });
}
