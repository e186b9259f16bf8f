// The mask worker thread: RNGR (Eq. 1–3) for the live mask preview, off the server's event loop.
// It loads CLIP once and keeps each photo's patch features, keyed by the photo file and its
// modification time, so a new click costs only the masks and the filled photos, not CLIP.
import { statSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { readImage, type RgbImage } from '../../src/io/image.js';
import type { ClipPatchExtractor } from '../../src/p3s/supervision/clip_features.js';
import { DensePatchExtractor } from '../../src/p3s/supervision/dense_features.js';
import { NO_ANNOTATION, loadClipExtractor, maskWith } from '../../src/p3s/supervision/mask_job.js';
import { MASK_SETTINGS } from '../../src/p3s/supervision/mask_settings.js';
import type { PatchFeatures } from '../../src/p3s/supervision/patch_similarity.js';
import type { PatchFeatureExtractor, RngrImageInput } from '../../src/p3s/supervision/rngr.js';
import { resolveSettings } from '../../src/settings/table.js';
import type { MaskWorkerReply, MaskWorkerRequest, MaskWorkerSettings } from './mask_protocol.js';

/** Photos whose features are kept (a subject has at most 8; a few subjects fit). */
const CACHE_SIZE = 64;

interface Cached {
  image: RgbImage;
  features: PatchFeatures;
}

let model: { key: string; extractor: PatchFeatureExtractor; clip: ClipPatchExtractor } | null =
  null;
/** Insertion order is use order: the first entry is the least recently used. */
const cache = new Map<string, Cached>();

function clearCache(): void {
  for (const c of cache.values()) c.features.tokens.dispose();
  cache.clear();
}

/** CLIP for these settings, loaded once (a change of settings loads the other one). */
function extractorFor(s: MaskWorkerSettings): PatchFeatureExtractor {
  const key = JSON.stringify([s.clipFolder, s.layer, s.dense]);
  if (model?.key === key) return model.extractor;
  clearCache();
  model?.clip.model.dispose();
  model = null;
  const clip = loadClipExtractor(s.clipFolder, s.layer);
  const extractor = s.dense > 1 ? new DensePatchExtractor(clip, s.dense) : clip;
  model = { key, extractor, clip };
  return extractor;
}

/** The photo and its features, from the cache when its file has not changed. */
async function photoFeatures(
  path: string,
  extractor: PatchFeatureExtractor,
): Promise<Cached & { encoded: boolean }> {
  const st = statSync(path);
  const key = `${path}:${st.mtimeMs}:${st.size}`;
  const hit = cache.get(key);
  if (hit) {
    cache.delete(key); // moved to the end: most recently used
    cache.set(key, hit);
    return { ...hit, encoded: false };
  }
  const image = await readImage(path);
  const entry = { image, features: extractor.extract(image) };
  cache.set(key, entry);
  while (cache.size > CACHE_SIZE) {
    const [oldest, old] = cache.entries().next().value as [string, Cached];
    old.features.tokens.dispose();
    cache.delete(oldest);
  }
  return { ...entry, encoded: true };
}

async function handle(req: MaskWorkerRequest): Promise<MaskWorkerReply> {
  const started = performance.now();
  const s = resolveSettings(MASK_SETTINGS, {
    ...req.settings,
    annotationPath: NO_ANNOTATION,
    outDir: req.outDir,
  });
  const extractor = extractorFor(req.settings);
  if (req.warmUp) return { id: req.id, ok: true, photos: [], millis: 0, encoded: 0 };
  const byImage = new Map<RgbImage, PatchFeatures>();
  const inputs: RngrImageInput[] = [];
  let encoded = 0;
  for (const p of req.photos) {
    const { image, features, ...got } = await photoFeatures(p.path, extractor);
    if (got.encoded) encoded++;
    byImage.set(image, features);
    inputs.push({ name: p.name, image, positive: p.positive, negative: p.negative });
  }
  // buildSubjectMasks disposes the features it is given: it gets copies, the cache keeps its own
  const cached: PatchFeatureExtractor = {
    extract: (image) => {
      const f = byImage.get(image)!;
      return { ...f, tokens: f.tokens.clone() };
    },
  };
  const words = { identifier: req.identifier, classWord: req.classWord };
  const { results, summary } = await maskWith(s, words, inputs, cached);
  const photos = results.map((r, i) => ({
    propagated: r.propagated !== null,
    subjectShare: r.subject.maskArea / (r.image.width * r.image.height),
    files: summary[i]!.files,
  }));
  const millis = Math.round(performance.now() - started);
  return { id: req.id, ok: true, photos, millis, encoded };
}

const port = parentPort;
if (!port) throw new Error('mask_worker.js runs as a worker thread (masks.ts starts it)');
// one request at a time, in order: the cache and the model are this thread's alone
let chain: Promise<void> = Promise.resolve();
port.on('message', (req: MaskWorkerRequest) => {
  chain = chain.then(async () => {
    let reply: MaskWorkerReply;
    try {
      reply = await handle(req);
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      reply = { id: req.id, ok: false, error: { name: e.name, message: e.message } };
    }
    port.postMessage(reply);
  });
});
