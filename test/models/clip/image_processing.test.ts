import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { tidy, memory } from '../../../src/index.js';
import { SafetensorsFile } from '../../../src/io/safetensors.js';
import { readImage, solidImage, type RgbImage } from '../../../src/io/image.js';
import { CLIPImageProcessor, centerCrop } from '../../../src/models/clip/image_processing.js';
import { fixturePath, dreambenchPath } from '../../helpers/paths.js';
import { assertClose } from '../../helpers/tensors.js';

const dir = fixturePath('tiny-clip-vision');
const reference = JSON.parse(readFileSync(`${dir}/reference.json`, 'utf8')) as {
  images: string[];
  processor224: Record<string, unknown>;
};
const refFile = SafetensorsFile.open(`${dir}/reference.safetensors`);
const photos: RgbImage[] = await Promise.all(
  reference.images.map((p) => readImage(dreambenchPath(p))),
);

function refArray(name: string): { shape: number[]; data: number[] } {
  return tidy(() => {
    const t = refFile.tensor(name);
    return { shape: [...t.shape], data: t.toArray() };
  });
}

test('the uint8 stage (Pillow bicubic resize + center crop) equals transformers exactly', () => {
  const proc = new CLIPImageProcessor(reference.processor224);
  const sizes = refArray('proc224_sizes');
  const crops = refArray('proc224_uint8_crops');
  const n = 224 * 224 * 3;
  photos.forEach((img, i) => {
    assert.deepEqual(
      [img.height, img.width, ...proc.resizedSize(img.height, img.width)],
      sizes.data.slice(i * 4, i * 4 + 4),
      `sizes of ${reference.images[i]}`,
    );
    const crop = proc.resizeAndCrop(img);
    assert.equal(crop.width, 224);
    assert.equal(crop.height, 224);
    let differing = 0;
    let maxDiff = 0;
    for (let j = 0; j < n; j++) {
      const d = Math.abs(crop.data[j]! - crops.data[i * n + j]!);
      if (d > 0) differing++;
      maxDiff = Math.max(maxDiff, d);
    }
    assert.equal(
      differing,
      0,
      `${reference.images[i]}: ${differing} bytes differ (max ${maxDiff})`,
    );
  });
});

test('pixel values equal CLIPImageProcessor (224, CLIP-L config) bit for bit', () => {
  const proc = new CLIPImageProcessor(reference.processor224);
  const before = memory().liveTensors;
  tidy(() => {
    const pv = proc.preprocess(photos);
    assertClose(pv, refArray('proc224_pixel_values'), { atol: 0, rtol: 0, label: 'proc224' });
  });
  assert.equal(memory().liveTensors, before);
});

test('fromPretrained reads the tiny folder (shortest edge 32, crop 32)', () => {
  const proc = CLIPImageProcessor.fromPretrained(dir);
  assert.equal(proc.shortestEdge, 32);
  tidy(() => {
    const pv = proc.preprocess(photos);
    assertClose(pv, refArray('proc32_pixel_values'), { atol: 0, rtol: 0, label: 'proc32' });
  });
});

test('shortest-edge sizes and center crop follow transformers 4.26', () => {
  const proc = new CLIPImageProcessor({ size: 224, crop_size: 224 }); // SD 1.5's old config form
  assert.deepEqual(proc.resizedSize(480, 640), [224, 298]); // int(224·640/480) = 298
  assert.deepEqual(proc.resizedSize(1000, 333), [672, 224]); // int(224·1000/333) = 672
  assert.deepEqual(proc.resizedSize(300, 300), [224, 224]);
  const out = proc.resizeAndCrop(solidImage(640, 480, [10, 20, 30]));
  assert.deepEqual([out.width, out.height], [224, 224]);
  assert.deepEqual([...out.data.subarray(0, 3)], [10, 20, 30]);

  // Odd margin: 5 - 2 = 3 → top = 3 // 2 = 1.
  const img: RgbImage = {
    width: 1,
    height: 5,
    data: Uint8Array.from([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]),
  };
  assert.deepEqual([...centerCrop(img, 2, 1).data], [1, 1, 1, 2, 2, 2]);
  // Smaller than the crop: zero padding around the centred image.
  const padded = centerCrop({ width: 1, height: 1, data: Uint8Array.of(9, 9, 9) }, 3, 3);
  assert.deepEqual([...padded.data.subarray(12, 15)], [9, 9, 9]);
  assert.equal(
    padded.data.reduce((a, b) => a + b, 0),
    27,
  );
});

test('unsupported config values name the key', () => {
  assert.throws(() => new CLIPImageProcessor({ resample: 0 }), /resample=0/);
  assert.throws(
    () => new CLIPImageProcessor({ size: { height: 224, width: 224 } as never }),
    /size=/,
  );
  assert.throws(() => new CLIPImageProcessor({ crop_size: -1 }), /crop_size=-1/);
  assert.throws(() => new CLIPImageProcessor({ image_mean: [0.5, 0.5] }), /image_mean/);
  assert.throws(() => new CLIPImageProcessor().preprocess([]), /at least one image/);
});
