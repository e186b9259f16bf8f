// The live masks of a subject: its photos' clicks -> RNGR masks and filled photos, computed in a
// long-lived worker thread (mask_worker.ts) that keeps CLIP and the photos' features loaded, and
// written to <dataDir>/subjects/<sid>/masks/ in exactly the layout `p3s mask` writes (with its
// summary.json), so training can take that folder as its references. masks/state.json records
// which photos and clicks the folder was made from, so an unchanged subject is not recomputed.
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readdirSync, rmSync } from 'node:fs';
import { basename, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { MaskLayer, MaskPreview, PhotoMask, Subject } from './api.js';
import { badRequest, HttpError } from './errors.js';
import { readJsonFile, writeJsonAtomic } from '../../src/io/json_file.js';
import type {
  MaskWorkerPhoto,
  MaskWorkerReply,
  MaskWorkerRequest,
  MaskWorkerSettings,
} from './mask_protocol.js';
import type { SubjectStore } from './subjects.js';

/** mask_outputs.ts's file roles by the API's layer names. */
const LAYER_FILES: Record<MaskLayer, string> = {
  subject: 'subjectMask',
  distractor: 'distractorMask',
  overlay: 'overlay',
  filled: 'filled',
};
export const MASK_LAYERS = Object.keys(LAYER_FILES) as MaskLayer[];

const STATE_FILE = 'state.json';
const SUMMARY_FILE = 'summary.json';

/** What masks/state.json holds. */
interface MaskState {
  /** The photos, clicks and settings the masks were made from (see stateKey). */
  key: string;
  /** Changes with every computation: the layers' URLs carry it. */
  version: string;
  millis: number;
  encoded: number;
  photos: ({ photoId: string } & MaskWorkerPhoto)[];
}

interface Pending {
  resolve: (reply: MaskWorkerReply) => void;
  reject: (err: Error) => void;
}

export class MaskService {
  private worker: Worker | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  /** Computations run one after another... */
  private chain: Promise<unknown> = Promise.resolve();
  /** ...and a subject's request that has not started yet serves every request after it. */
  private readonly waiting = new Map<string, Promise<MaskState>>();
  private closed = false;

  constructor(
    private readonly store: SubjectStore,
    private readonly settings: MaskWorkerSettings,
    private readonly workerUrl = new URL('./mask_worker.js', import.meta.url),
  ) {}

  /** The subject's masks for its current clicks, computed unless already there. */
  async preview(sid: string): Promise<MaskPreview> {
    const state = await this.current(sid);
    const photos = state.photos.map((p) => this.photoMask(sid, state, p));
    return { photos, millis: state.millis, encoded: state.encoded };
  }

  /**
   * Copies the mask folder, made current first, to `dest`: a training run reads its own copy,
   * so clicks made while it waits or runs do not change its references under it.
   */
  async snapshot(sid: string, dest: string): Promise<void> {
    // in the chain, so no computation writes into the folder while it is copied
    const run = this.chain.then(async () => {
      await this.compute(sid);
      const src = this.store.masksDir(sid);
      cpSync(src, dest, { recursive: true, filter: (from) => basename(from) !== STATE_FILE });
    });
    this.chain = run.catch(() => undefined);
    await run;
  }

  /** The file of a layer, or null when the subject has no such mask now. */
  layerPath(sid: string, pid: string, layer: MaskLayer): string | null {
    const state = this.readState(sid);
    const file = state?.photos.find((p) => p.photoId === pid)?.files[LAYER_FILES[layer]];
    return file ? join(this.store.masksDir(sid), file) : null;
  }

  /** Starts the worker and loads CLIP now, so the first click does not wait for it. */
  warmUp(): void {
    const request = { id: this.nextId++, settings: this.settings, warmUp: true };
    const run = this.chain.then(() =>
      this.ask({ ...request, outDir: '', identifier: '', classWord: '', photos: [] }),
    );
    this.chain = run.catch(() => undefined); // a CLIP that fails to load fails the first click instead
  }

  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = null;
    if (worker) await worker.terminate();
  }

  private photoMask(sid: string, state: MaskState, p: MaskState['photos'][number]): PhotoMask {
    const layers: PhotoMask['layers'] = {};
    for (const layer of MASK_LAYERS) {
      if (p.files[LAYER_FILES[layer]])
        layers[layer] = `/api/subjects/${sid}/masks/${p.photoId}/${layer}.png?v=${state.version}`;
    }
    return { photoId: p.photoId, propagated: p.propagated, subjectShare: p.subjectShare, layers };
  }

  private current(sid: string): Promise<MaskState> {
    const queued = this.waiting.get(sid);
    if (queued) return queued;
    const run = this.chain.then(() => {
      this.waiting.delete(sid);
      return this.compute(sid);
    });
    this.waiting.set(sid, run);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private readState(sid: string): MaskState | null {
    const path = join(this.store.masksDir(sid), STATE_FILE);
    try {
      return existsSync(path) ? readJsonFile<MaskState>(path) : null;
    } catch {
      return null; // remade on the next request
    }
  }

  private stateKey(subject: Subject): string {
    const facts = [this.settings, subject.photos.map((p) => [p.id, p.positive, p.negative])];
    return createHash('sha256').update(JSON.stringify(facts)).digest('hex').slice(0, 16);
  }

  /** Reads the subject as it is now and masks it, unless the folder already matches. */
  private async compute(sid: string): Promise<MaskState> {
    const subject = this.store.get(sid);
    const key = this.stateKey(subject);
    const old = this.readState(sid);
    if (old?.key === key && existsSync(join(this.store.masksDir(sid), SUMMARY_FILE))) return old;
    if (!subject.photos.some((p) => p.positive.length > 0))
      throw badRequest(
        `${subject.name} has no positive point yet: click the subject (left click) on at least one photo first`,
      );
    const dir = this.store.masksDir(sid);
    const reply = await this.ask({
      id: this.nextId++,
      settings: this.settings,
      outDir: dir,
      identifier: subject.identifier,
      classWord: subject.classWord,
      photos: subject.photos.map((p) => ({
        path: this.store.photoPath(sid, p.id),
        name: `${p.id}.png`,
        positive: p.positive,
        negative: p.negative,
      })),
    });
    if (!reply.ok) throw workerError(reply.error, subject);
    if (!this.store.has(sid)) {
      rmSync(this.store.dirOf(sid), { recursive: true, force: true }); // deleted meanwhile
      throw new HttpError(404, `No subject ${sid}`);
    }
    const version = `${Date.now().toString(36)}${this.nextId.toString(36)}`;
    const photos = reply.photos.map((p, i) => ({ photoId: subject.photos[i]!.id, ...p }));
    const state: MaskState = { key, version, millis: reply.millis, encoded: reply.encoded, photos };
    removeStale(dir, state);
    writeJsonAtomic(join(dir, STATE_FILE), state);
    return state;
  }

  private ensureWorker(): Worker {
    if (this.closed) throw new HttpError(503, 'The server is stopping: no more masks');
    if (this.worker) return this.worker;
    const worker = new Worker(this.workerUrl);
    worker.unref(); // an idle worker does not keep the process alive; a busy one does (ask)
    worker.on('message', (reply: MaskWorkerReply) => {
      this.pending.get(reply.id)?.resolve(reply);
      this.pending.delete(reply.id);
      if (this.pending.size === 0) worker.unref();
    });
    const fail = (err: Error) => {
      if (this.worker === worker) this.worker = null; // the next request starts a new one
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    worker.on('error', (err) => fail(new Error(`The mask worker failed: ${err.message}`)));
    worker.on('exit', (code) => fail(new Error(`The mask worker stopped (exit code ${code})`)));
    this.worker = worker;
    return worker;
  }

  private ask(req: MaskWorkerRequest): Promise<MaskWorkerReply> {
    const worker = this.ensureWorker();
    return new Promise((resolve, reject) => {
      this.pending.set(req.id, { resolve, reject });
      worker.ref();
      worker.postMessage(req);
    });
  }
}

/** The worker's refusal in the subject's words: photo names instead of file names, 400 for bad clicks. */
function workerError(error: { name: string; message: string }, subject: Subject): HttpError {
  let message = error.message;
  for (const p of subject.photos) message = message.replaceAll(`${p.id}.png`, `"${p.name}"`);
  const clicks = error.name === 'AnnotationError' || /point|click/i.test(message);
  return new HttpError(clicks ? 400 : 500, `The masks could not be made: ${message}`);
}

/** Removes files of photos no longer in the subject (the folder is a p3s mask folder: only its own). */
function removeStale(dir: string, state: MaskState): void {
  const keep = new Set([
    STATE_FILE,
    SUMMARY_FILE,
    ...state.photos.flatMap((p) => Object.values(p.files)),
  ]);
  for (const name of readdirSync(dir))
    if (!keep.has(name)) rmSync(join(dir, name), { force: true });
}
