import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { tensor, tidy, memory } from '../../src/index.js';
import {
  cmykToRgb,
  contactSheet,
  cropImage,
  enlargeImage,
  imageToTensor,
  pasteSideBySide,
  readImage,
  readPngText,
  resizeImage,
  solidImage,
  tensorToImage,
  writePng,
  PIL_RESAMPLE,
  type RgbImage,
} from '../../src/io/image.js';
import { crc32 } from '../../src/io/png.js';
import { dreambenchPath, fixturePath } from '../helpers/paths.js';

const dir = mkdtempSync(join(tmpdir(), 'p3s-img-'));
after(() => rmSync(dir, { recursive: true, force: true }));

// Left half red, right half blue.
function halves(width: number, height: number): RgbImage {
  const img = solidImage(width, height, [0, 0, 255]);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width / 2; x++) img.data.set([255, 0, 0], (y * width + x) * 3);
  }
  return img;
}

function pixel(img: RgbImage, x: number, y: number): number[] {
  const i = (y * img.width + x) * 3;
  return [...img.data.subarray(i, i + 3)];
}

test('readImage applies EXIF orientation (6: rotate 90° clockwise)', async () => {
  const src = halves(40, 20);
  const path = join(dir, 'rotated.jpg');
  await sharp(Buffer.from(src.data), { raw: { width: 40, height: 20, channels: 3 } })
    .jpeg({ quality: 95 })
    .withMetadata({ orientation: 6 })
    .toFile(path);
  assert.equal((await sharp(path).metadata()).orientation, 6);
  const img = await readImage(path);
  assert.deepEqual([img.width, img.height], [20, 40]);
  // The left (red) half of the stored image is at the top once displayed upright.
  const [r0, , b0] = pixel(img, 10, 5);
  const [r1, , b1] = pixel(img, 10, 35);
  assert.ok(r0! > 200 && b0! < 60, `top should be red, got ${pixel(img, 10, 5)}`);
  assert.ok(b1! > 200 && r1! < 60, `bottom should be blue, got ${pixel(img, 10, 35)}`);
});

test('readImage decodes DreamBench JPEGs as Pillow does (checksums from Pillow 9.4)', async () => {
  // zlib.crc32(Image.open(p).convert("RGB").tobytes())
  const expected: [string, number][] = [
    ['dog/00.jpg', 3755608720],
    ['cat/00.jpg', 3914299392],
    ['backpack/00.jpg', 836340973],
  ];
  for (const [p, crc] of expected) {
    const img = await readImage(dreambenchPath(p));
    assert.deepEqual([img.width, img.height], [512, 512]);
    assert.equal(crc32(img.data), crc, p);
  }
});

test('readImage converts CMYK JPEGs as Pillow does (pixels recorded from Pillow 9.4)', async () => {
  // tools/make_image_fixtures.py: an Adobe CMYK JPEG saved by Pillow and what Pillow decodes
  const ref = JSON.parse(readFileSync(fixturePath('images', 'cmyk.json'), 'utf8')) as {
    width: number;
    height: number;
    cmyk: number[];
    rgb: number[];
  };
  const img = await readImage(fixturePath('images', 'cmyk.jpg'));
  assert.deepEqual([img.width, img.height], [ref.width, ref.height]);
  // measured: 0 levels apart (libvips' CMYK profile gave up to 71); exact, as the JPEG tests
  assert.equal(maxDiff(img.data, ref.rgb), 0);
  // the formula alone, on Pillow's own decoded samples
  assert.equal(maxDiff(cmykToRgb(Uint8Array.from(ref.cmyk), ref.width * ref.height), ref.rgb), 0);
  // no ink is white, full black is black, and K darkens each channel by (255 − K)/255
  assert.deepEqual(
    [...cmykToRgb(Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 255, 255, 0, 0, 0), 3)],
    [255, 255, 255, 0, 0, 0, 0, 255, 255],
  );
  assert.deepEqual([...cmykToRgb(Uint8Array.of(0, 51, 255, 128), 1)], [127, 102, 0]);
});

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

test('readImage drops alpha (no compositing) and expands grey to RGB', async () => {
  const rgba = join(dir, 'rgba.png');
  await sharp(Buffer.from([10, 20, 30, 0, 40, 50, 60, 128]), {
    raw: { width: 2, height: 1, channels: 4 },
  })
    .png()
    .toFile(rgba);
  assert.deepEqual([...(await readImage(rgba)).data], [10, 20, 30, 40, 50, 60]);
  const grey = join(dir, 'grey.png');
  await sharp(Buffer.from([100, 200]), { raw: { width: 2, height: 1, channels: 1 } })
    .png()
    .toFile(grey);
  assert.deepEqual([...(await readImage(grey)).data], [100, 100, 100, 200, 200, 200]);
});

test('readImage errors: missing, empty, corrupt and truncated files', async () => {
  await assert.rejects(readImage(join(dir, 'nope.jpg')), /Image file not found: .*nope\.jpg/);
  const empty = join(dir, 'empty.png');
  writeFileSync(empty, '');
  await assert.rejects(readImage(empty), /Cannot read image empty\.png: the file is empty/);
  const corrupt = join(dir, 'photo.jpg');
  writeFileSync(corrupt, Buffer.from('this is not an image at all, just some text'));
  await assert.rejects(readImage(corrupt), /^Error: Cannot read image photo\.jpg: ./);
  const full = readFileSync(dreambenchPath('dog', '00.jpg'));
  const truncated = join(dir, 'truncated.jpg');
  writeFileSync(truncated, full.subarray(0, full.length >> 1));
  await assert.rejects(readImage(truncated), /Cannot read image truncated\.jpg: ./);
  await assert.rejects(readImage(dir), /is not a file/);
});

test('writePng stores tEXt/iTXt chunks that read back, and pixels sharp decodes', async () => {
  const img = halves(33, 7);
  img.data[5] = 77; // not a flat image: exercise the row filters
  const text = {
    parameters: 'a photo of sks dog on the beach\nsteps: 50, guidance: 7.5, seed: 42',
    seed: '42',
    'Latin-1 café': 'naïve',
    unicode: 'a ✓ 猫 🐶',
    empty: '',
  };
  const path = join(dir, 'out.png');
  await writePng(path, img, { text });
  assert.deepEqual(await readPngText(path), text);
  const bytes = readFileSync(path).toString('latin1');
  assert.ok(bytes.includes('tEXtparameters\0'), 'Latin-1 values use tEXt');
  assert.ok(bytes.includes('iTXtunicode\0'), 'other values use iTXt');
  const back = await readImage(path);
  assert.deepEqual([back.width, back.height], [33, 7]);
  assert.deepEqual(back.data, img.data);
  // A PNG written by sharp has no text chunks; ours survive a re-read by sharp as valid PNG.
  const meta = await sharp(path).metadata();
  assert.equal(meta.format, 'png');
  await assert.rejects(writePng(join(dir, 'bad.png'), img, { text: { ' lead': 'x' } }), /keyword/);
  await assert.rejects(writePng(join(dir, 'bad.png'), img, { text: { k: 'a\0b' } }), /NUL/);
});

test('writePng is atomic: no temporary file is left, on success or failure', async () => {
  const img = solidImage(4, 4, [1, 2, 3]);
  const sub = mkdtempSync(join(dir, 'atomic-'));
  const path = join(sub, 'image.png');
  await writePng(path, img, { text: { a: '1' } });
  await writePng(path, solidImage(5, 5), { text: { a: '2' } }); // overwrite in place
  assert.deepEqual(readdirSync(sub), ['image.png']);
  assert.deepEqual(await readPngText(path), { a: '2' });
  assert.equal((await readImage(path)).width, 5);
  // The target is a folder: the rename fails and the temporary file is removed.
  mkdirSync(join(sub, 'folder.png'));
  await assert.rejects(writePng(join(sub, 'folder.png'), img));
  assert.deepEqual(readdirSync(sub).sort(), ['folder.png', 'image.png']);
  await assert.rejects(readPngText(join(sub, 'missing.png')), /PNG file not found/);
});

// A deterministic pattern with detail at every scale, built the same way in the Python that
// produced the checksums below: Image.frombytes("RGB", (w, h), pattern).resize((W, H), filter),
// then zlib.crc32(result.tobytes()), with Pillow 9.4.
function pattern(w: number, h: number): RgbImage {
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < 3; c++) {
        data[(y * w + x) * 3 + c] =
          (x * x * 3 + y * 17 + c * 91 + ((x * y) % 37) + ((x ^ y) & 0x1f) * 5) & 255;
      }
    }
  }
  return { width: w, height: h, data };
}

test('resizeImage equals Pillow for every filter, down and up, non-square', () => {
  const cases: [[number, number], [number, number], number, number][] = [
    [[37, 23], [11, 17], 3, 3378612112],
    [[37, 23], [80, 50], 3, 957409065],
    [[64, 48], [64, 20], 3, 188631761],
    [[64, 48], [20, 48], 3, 922547],
    [[50, 70], [23, 31], 2, 2801652242],
    [[50, 70], [23, 31], 4, 2091233048],
    [[50, 70], [23, 31], 5, 442900685],
    [[50, 70], [23, 31], 1, 1089343636],
    [[13, 9], [100, 3], 3, 3891780707],
    [[300, 200], [7, 5], 3, 2431681349],
  ];
  for (const [[w, h], [W, H], filter, crc] of cases) {
    const out = resizeImage(pattern(w, h), W, H, PIL_RESAMPLE[filter]);
    assert.deepEqual([out.width, out.height], [W, H]);
    assert.equal(crc32(out.data), crc, `${w}×${h} → ${W}×${H} ${PIL_RESAMPLE[filter]}`);
  }
  // Same size: a copy.
  const src = pattern(5, 4);
  const same = resizeImage(src, 5, 4);
  assert.deepEqual(same.data, src.data);
  assert.notEqual(same.data, src.data);
  assert.throws(() => resizeImage(src, 0, 4), /positive integer/);
  assert.throws(() => resizeImage(src, 2, 2, 'nearest' as never), /Expected a filter/);
});

test('imageToTensor and tensorToImage: [0,1] float32, numpy-style rounding', () => {
  const before = memory().liveTensors;
  tidy(() => {
    const img = pattern(6, 4);
    const t = imageToTensor(img);
    assert.deepEqual([...t.shape], [1, 3, 4, 6]);
    assert.equal(t.dtype, 'float32');
    const v = t.toArray();
    assert.equal(v[0], Math.fround(img.data[0]! / 255)); // R of (0, 0)
    assert.equal(v[24 + 7], Math.fround(img.data[7 * 3 + 1]! / 255)); // G of (1, 1)
    assert.deepEqual(tensorToImage(t), img);
    assert.deepEqual(tensorToImage(t.squeeze(0)), img);
    assert.deepEqual(tensorToImage(t.to('float16')), img);
    // A non-contiguous view: (1, H, W, 3) permuted to (1, 3, H, W).
    const hwc = tensor(img.data, [1, 4, 6, 3]).float().div(255);
    assert.deepEqual(tensorToImage(hwc.permute(0, 3, 1, 2)), img);

    // Values from numpy: (np.clip(v, 0, 1).astype(float32) * 255).round().astype("uint8").
    const values = [
      0,
      1,
      0.5,
      0.25,
      0.5 / 255,
      1.5 / 255,
      2.5 / 255,
      254.5 / 255,
      127.5 / 255,
      -0.1,
      1.2,
      0.123456,
    ];
    const expected = [0, 255, 128, 64, 0, 2, 2, 254, 128, 0, 255, 31];
    const row = tensor([...values, ...values, ...values], [3, 1, 12]);
    const out = tensorToImage(row);
    assert.deepEqual(
      Array.from({ length: 12 }, (_, i) => out.data[i * 3]),
      expected,
    );
    assert.equal(tensorToImage(tensor([NaN, NaN, NaN], [3, 1, 1])).data[0], 0);
    assert.throws(() => tensorToImage(tensor([1, 2, 3, 4], [1, 4, 1, 1])), /\(3, H, W\)/);
  });
  assert.equal(memory().liveTensors, before);
});

test('cropImage, pasteSideBySide and contactSheet geometry', () => {
  const img = pattern(10, 8);
  const crop = cropImage(img, 3, 2, 4, 5);
  assert.deepEqual([crop.width, crop.height], [4, 5]);
  assert.deepEqual(pixel(crop, 0, 0), pixel(img, 3, 2));
  assert.deepEqual(pixel(crop, 3, 4), pixel(img, 6, 6));
  assert.throws(() => cropImage(img, 8, 0, 4, 2), /does not fit/);

  const a = solidImage(4, 6, [255, 0, 0]);
  const b = solidImage(3, 2, [0, 0, 255]);
  const pair = pasteSideBySide(a, b, { gap: 1, background: [9, 9, 9] });
  assert.deepEqual([pair.width, pair.height], [8, 6]);
  assert.deepEqual(pixel(pair, 0, 0), [255, 0, 0]);
  assert.deepEqual(pixel(pair, 4, 3), [9, 9, 9]); // the gap
  assert.deepEqual(pixel(pair, 5, 0), [9, 9, 9]); // above the shorter image
  assert.deepEqual(pixel(pair, 5, 2), [0, 0, 255]); // centred: rows 2..3
  assert.deepEqual(pixel(pair, 7, 3), [0, 0, 255]);

  const sheet = contactSheet([a, b, a], 2, { gap: 2 });
  assert.deepEqual([sheet.width, sheet.height], [2 * 4 + 2, 2 * 6 + 2]);
  assert.deepEqual(pixel(sheet, 0, 0), [255, 0, 0]);
  assert.deepEqual(pixel(sheet, 6, 2), [0, 0, 255]); // b centred in cell (6..9, 0..5)
  assert.deepEqual(pixel(sheet, 0, 8), [255, 0, 0]); // third image, second row
  assert.deepEqual(pixel(sheet, 9, 13), [255, 255, 255]); // empty cell
  assert.throws(() => contactSheet([], 2), /at least one image/);
  assert.throws(() => contactSheet([a], 0), /columns/);
});

test('enlargeImage repeats each pixel; a contact sheet margin frames the grid', () => {
  const img = pattern(3, 2);
  const big = enlargeImage(img, 2);
  assert.deepEqual([big.width, big.height], [6, 4]);
  for (let y = 0; y < 4; y++) {
    for (let x = 0; x < 6; x++) assert.deepEqual(pixel(big, x, y), pixel(img, x >> 1, y >> 1));
  }
  assert.throws(() => enlargeImage(img, 0), /factor/);

  const sheet = contactSheet([img, img], 2, { gap: 1, margin: 2, background: [9, 9, 9] });
  assert.deepEqual([sheet.width, sheet.height], [2 + 3 + 1 + 3 + 2, 2 + 2 + 2]);
  assert.deepEqual(pixel(sheet, 1, 1), [9, 9, 9]);
  assert.deepEqual(pixel(sheet, 2, 2), pixel(img, 0, 0));
  assert.deepEqual(pixel(sheet, 5, 2), [9, 9, 9]); // the gap
  assert.deepEqual(pixel(sheet, 6, 3), pixel(img, 0, 1));
  assert.throws(() => contactSheet([img], 1, { margin: -1 }), /margin/);
});
