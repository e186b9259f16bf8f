// Clicks and live masks: points are checked against the photo, the masks come from a worker
// thread that keeps CLIP's features (a second click only remakes the masks), every layer is a
// fetchable PNG at a versioned URL, and the mask folder is one training can read.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import type { ApiError, MaskPreview, Subject } from '../../apps/serve/api.js';
import { resolveReferences } from '../../src/p3s/references.js';
import {
  click,
  subjectWithPhotos,
  testServer,
  toyPhotos,
  type TestServer,
  type ToyPhoto,
} from './helpers.js';

let s: TestServer;
let photos: ToyPhoto[];
before(async () => {
  s = await testServer();
  photos = await toyPhotos(3);
});
after(async () => s.close());

const masks = (sid: string) => s.app.inject({ method: 'POST', url: `/api/subjects/${sid}/masks` });

test('points must lie inside the photo, be numbers, and at most maxPoints', async () => {
  const subject = await subjectWithPhotos(s.app, photos.slice(0, 1));
  const url = `/api/subjects/${subject.id}/photos/${subject.photos[0]!.id}/points`;
  for (const payload of [
    { positive: [[64, 10]] },
    { positive: [[-1, 10]] },
    { positive: [[10, 1e9]] },
    { positive: [[10]] },
    { positive: [['1', 2]] },
    { positive: 'here' },
    { positive: [[5, 5]], negative: [[5, 5]] },
    { positive: Array.from({ length: 17 }, () => [1, 1]) },
    { positive: [], other: [] },
  ]) {
    const res = await s.app.inject({ method: 'PUT', url, payload });
    assert.equal(res.statusCode, 400, JSON.stringify(payload));
    assert.equal(res.json<ApiError>().statusCode, 400);
  }
  const inside = await s.app.inject({ method: 'PUT', url, payload: { positive: [[63.5, 0]] } });
  assert.equal(inside.statusCode, 200);
  assert.deepEqual(inside.json<Subject>().photos[0]!.positive, [[63.5, 0]]);
  const unknown = `/api/subjects/${subject.id}/photos/p-nope/points`;
  assert.equal((await s.app.inject({ method: 'PUT', url: unknown, payload: {} })).statusCode, 404);
});

test('masks without a positive point are refused with 400', async () => {
  const subject = await subjectWithPhotos(s.app, photos.slice(0, 2));
  const res = await masks(subject.id);
  assert.equal(res.statusCode, 400);
  assert.match(res.json<ApiError>().error, /positive point/);
});

test('live masks: layers as PNGs, propagated to unclicked photos, a new click recomputed fast', async () => {
  let subject = await subjectWithPhotos(s.app, photos);
  const [first] = photos;
  subject = await click(s.app, subject, 0, [first!.positive], [first!.negative!]);
  const res = await masks(subject.id);
  assert.equal(res.statusCode, 200, res.body);
  const preview = res.json<MaskPreview>();
  assert.equal(preview.photos.length, 3);
  assert.deepEqual(
    preview.photos.map((p) => p.photoId),
    subject.photos.map((p) => p.id),
  );
  assert.deepEqual(
    preview.photos.map((p) => p.propagated),
    [false, true, true],
  );
  const own = preview.photos[0]!;
  assert.ok(own.subjectShare > 0 && own.subjectShare < 1, `share ${own.subjectShare}`);
  assert.deepEqual(Object.keys(own.layers).sort(), ['distractor', 'filled', 'overlay', 'subject']);
  for (const url of Object.values(own.layers)) {
    assert.match(url, /^\/api\/subjects\/[a-z0-9-]+\/masks\/[a-z0-9-]+\/\w+\.png\?v=\w+$/);
    const layer = await s.app.inject(url);
    assert.equal(layer.statusCode, 200, url);
    assert.equal(layer.headers['content-type'], 'image/png');
    const meta = await sharp(layer.rawPayload).metadata();
    assert.deepEqual([meta.width, meta.height], [64, 64]);
  }

  // the same clicks again: nothing to compute, the same version
  const again = (await masks(subject.id)).json<MaskPreview>();
  assert.equal(again.photos[0]!.layers.subject, own.layers.subject);

  // a new click: the features are kept, only the masks are made again
  subject = await click(s.app, subject, 1, [photos[1]!.positive]);
  const next = await masks(subject.id);
  assert.equal(next.statusCode, 200, next.body);
  const updated = next.json<MaskPreview>();
  assert.equal(updated.encoded, 0, 'no photo encoded again');
  assert.notEqual(updated.photos[0]!.layers.subject, own.layers.subject);
  assert.equal(updated.photos[1]!.propagated, false);

  // the folder is a p3s mask folder: training finds the filled photos and subject masks
  const dir = join(s.dataDir, 'subjects', subject.id, 'masks');
  const refs = resolveReferences([dir]);
  assert.equal(refs.length, 3);
  assert.ok(
    refs.every((r) => existsSync(r.path) && r.subjectMaskPath && existsSync(r.subjectMaskPath)),
  );
  const summary = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8')) as {
    classWord: string;
  };
  assert.equal(summary.classWord, 'toy');
});

test('mask layers: unknown layers 400, no masks yet 404, a deleted photo leaves the folder', async () => {
  let subject = await subjectWithPhotos(s.app, photos.slice(0, 2));
  const pid = subject.photos[0]!.id;
  const base = `/api/subjects/${subject.id}/masks/${pid}`;
  assert.equal((await s.app.inject(`${base}/subject.png`)).statusCode, 404);
  assert.equal((await s.app.inject(`${base}/secret.png`)).statusCode, 400);
  assert.equal((await s.app.inject(`${base}/..%2F..%2Fsubject.json`)).statusCode, 400);
  subject = await click(s.app, subject, 0, [photos[0]!.positive], [photos[0]!.negative!]);
  assert.equal((await masks(subject.id)).statusCode, 200);
  assert.equal((await s.app.inject(`${base}/overlay.png`)).statusCode, 200);

  const other = subject.photos[1]!.id;
  await s.app.inject({ method: 'DELETE', url: `/api/subjects/${subject.id}/photos/${other}` });
  const preview = (await masks(subject.id)).json<MaskPreview>();
  assert.equal(preview.photos.length, 1);
  const dir = join(s.dataDir, 'subjects', subject.id, 'masks');
  assert.equal(existsSync(join(dir, `${other}.filled.png`)), false);
  assert.equal(resolveReferences([dir]).length, 1);
});
