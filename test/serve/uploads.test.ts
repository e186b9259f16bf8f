// Photo uploads: JPEG (EXIF orientation applied), PNG and WebP are stored upright as PNG and
// scaled to the size limit; files are judged by their bytes, not their names; too large, too many
// and not-an-image uploads are refused and add nothing.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { LIMITS, type ApiError, type Subject } from '../../apps/serve/api.js';
import { multipart, testServer, toyPhotos, type TestServer, type Upload } from './helpers.js';

let s: TestServer;
before(async () => {
  s = await testServer();
});
after(async () => s.close());

async function newSubject(): Promise<Subject> {
  const res = await s.app.inject({
    method: 'POST',
    url: '/api/subjects',
    payload: { name: 'Photos', classWord: 'toy' },
  });
  return res.json<Subject>();
}

function upload(sid: string, files: Upload[]) {
  const body = multipart(files);
  return s.app.inject({
    method: 'POST',
    url: `/api/subjects/${sid}/photos`,
    payload: body.payload,
    headers: body.headers,
  });
}

/** An 80×40 photo, red on the left half and blue on the right. */
function halves() {
  const data = Buffer.alloc(80 * 40 * 3);
  for (let y = 0; y < 40; y++)
    for (let x = 0; x < 80; x++) data.set(x < 40 ? [220, 20, 20] : [20, 20, 220], (y * 80 + x) * 3);
  return sharp(data, { raw: { width: 80, height: 40, channels: 3 } });
}

async function pixel(png: Buffer, x: number, y: number): Promise<number[]> {
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  const o = (y * info.width + x) * info.channels;
  return [data[o]!, data[o + 1]!, data[o + 2]!];
}

test('JPEG with EXIF orientation, PNG and WebP are stored upright as PNG', async () => {
  const subject = await newSubject();
  // orientation 6: the camera was turned; shown rotated 90° clockwise, so 40 wide and 80 high
  const jpeg = await halves().jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer();
  assert.equal((await sharp(jpeg).metadata()).orientation, 6);
  const png = await halves().png().toBuffer();
  const webp = await halves().webp({ quality: 95 }).toBuffer();
  const res = await upload(subject.id, [
    { name: 'phone.jpg', bytes: jpeg, type: 'image/jpeg' },
    { name: 'plain.png', bytes: png, type: 'image/png' },
    // the client's content type is not trusted either way
    { name: 'web.webp', bytes: webp, type: 'text/plain' },
  ]);
  assert.equal(res.statusCode, 201, res.body);
  const photos = res.json<Subject>().photos;
  assert.deepEqual(
    photos.map((p) => [p.name, p.width, p.height]),
    [
      ['phone.jpg', 40, 80],
      ['plain.png', 80, 40],
      ['web.webp', 80, 40],
    ],
  );
  const stored = await s.app.inject(`/api/subjects/${subject.id}/photos/${photos[0]!.id}`);
  assert.equal(stored.statusCode, 200);
  assert.equal(stored.headers['content-type'], 'image/png');
  const meta = await sharp(stored.rawPayload).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height], ['png', 40, 80]);
  // rotated clockwise: the red left half is now on top
  const top = await pixel(stored.rawPayload, 20, 10);
  const bottom = await pixel(stored.rawPayload, 20, 70);
  assert.ok(top[0]! > 150 && top[2]! < 100, `top is red: ${top.join(',')}`);
  assert.ok(bottom[2]! > 150 && bottom[0]! < 100, `bottom is blue: ${bottom.join(',')}`);
});

test('large photos are scaled so the longer side is at most maxPhotoSide', async () => {
  const subject = await newSubject();
  const big = await sharp({
    create: { width: 2000, height: 1000, channels: 3, background: { r: 10, g: 120, b: 30 } },
  })
    .png()
    .toBuffer();
  const res = await upload(subject.id, [{ name: 'big.png', bytes: big }]);
  assert.equal(res.statusCode, 201, res.body);
  const [photo] = res.json<Subject>().photos;
  assert.deepEqual([photo!.width, photo!.height], [LIMITS.maxPhotoSide, LIMITS.maxPhotoSide / 2]);
});

test('refused uploads: oversized 413, not an image 415, too small 400, wrong field 400', async () => {
  const subject = await newSubject();
  const png = (await toyPhotos(1))[0]!.png;
  const oversized = Buffer.alloc(LIMITS.maxUploadBytes + 1024);
  oversized.set(png);
  const tooLarge = await upload(subject.id, [{ name: 'huge.png', bytes: oversized }]);
  assert.equal(tooLarge.statusCode, 413);
  assert.equal(tooLarge.json<ApiError>().statusCode, 413);

  const text = Buffer.from('this is not a picture at all, whatever its name says');
  const notImage = await upload(subject.id, [
    { name: 'photo.png', bytes: text, type: 'image/png' },
  ]);
  assert.equal(notImage.statusCode, 415);
  assert.match(notImage.json<ApiError>().error, /photo\.png.*JPEG, PNG or WebP/);

  // PNG's signature followed by garbage: sniffed as PNG, but it does not decode
  const broken = Buffer.concat([png.subarray(0, 16), Buffer.alloc(200, 7)]);
  const corrupt = await upload(subject.id, [{ name: 'broken.png', bytes: broken }]);
  assert.equal(corrupt.statusCode, 415);

  const tiny = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#fff' } })
    .png()
    .toBuffer();
  const small = await upload(subject.id, [{ name: 'tiny.png', bytes: tiny }]);
  assert.equal(small.statusCode, 400);
  assert.match(small.json<ApiError>().error, /at least/);

  const field = await upload(subject.id, [{ name: 'a.png', bytes: png, field: 'other' }]);
  assert.equal(field.statusCode, 400);

  const notMultipart = await s.app.inject({
    method: 'POST',
    url: `/api/subjects/${subject.id}/photos`,
    payload: { photos: [] },
  });
  assert.equal(notMultipart.statusCode, 415);

  // a refused request adds nothing, not even the good files beside the bad one
  const mixed = await upload(subject.id, [
    { name: 'good.png', bytes: png },
    { name: 'bad.png', bytes: text },
  ]);
  assert.equal(mixed.statusCode, 415);
  const after = (await s.app.inject(`/api/subjects/${subject.id}`)).json<Subject>();
  assert.equal(after.photos.length, 0);
  const files = readdirSync(join(s.dataDir, 'subjects', subject.id, 'photos'));
  assert.deepEqual(files, []);
});

test('at most maxPhotos photos per subject: more are refused with 400', async () => {
  const subject = await newSubject();
  const png = (await toyPhotos(1))[0]!.png;
  const nine = Array.from({ length: LIMITS.maxPhotos + 1 }, (_, i) => ({
    name: `p${i}.png`,
    bytes: png,
  }));
  const tooMany = await upload(subject.id, nine);
  assert.equal(tooMany.statusCode, 400);
  assert.match(tooMany.json<ApiError>().error, /at most 8 photos/);

  assert.equal((await upload(subject.id, nine.slice(0, 6))).statusCode, 201);
  const over = await upload(subject.id, nine.slice(0, 3));
  assert.equal(over.statusCode, 400);
  assert.match(over.json<ApiError>().error, /2 more fit/);
  assert.equal((await upload(subject.id, nine.slice(0, 2))).statusCode, 201);
  const full = await upload(subject.id, nine.slice(0, 1));
  assert.equal(full.statusCode, 400);
  assert.equal(
    (await s.app.inject(`/api/subjects/${subject.id}`)).json<Subject>().photos.length,
    8,
  );
});

test('a photo is deleted with its file', async () => {
  const subject = await newSubject();
  const [a, b] = await toyPhotos(2);
  const added = (
    await upload(subject.id, [
      { name: 'a.png', bytes: a!.png },
      { name: 'b.png', bytes: b!.png },
    ])
  ).json<Subject>();
  const pid = added.photos[0]!.id;
  const res = await s.app.inject({
    method: 'DELETE',
    url: `/api/subjects/${subject.id}/photos/${pid}`,
  });
  assert.equal(res.statusCode, 200);
  assert.deepEqual(
    res.json<Subject>().photos.map((p) => p.name),
    ['b.png'],
  );
  assert.equal((await s.app.inject(`/api/subjects/${subject.id}/photos/${pid}`)).statusCode, 404);
  assert.equal(
    (await s.app.inject({ method: 'DELETE', url: `/api/subjects/${subject.id}/photos/${pid}` }))
      .statusCode,
    404,
  );
});
