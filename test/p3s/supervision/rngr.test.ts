import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeLookalikePair, makeSubjectReferenceSet } from '../../../src/toyworld/index.js';
import type { LookalikeScene } from '../../../src/toyworld/pairs.js';
import type { Scene, SceneObject } from '../../../src/toyworld/scene.js';
import {
  buildSubjectMasks,
  clickCircles,
  type RngrImageInput,
} from '../../../src/p3s/supervision/rngr.js';
import type { PatchFeatures } from '../../../src/p3s/supervision/patch_similarity.js';
import { diffusionFill } from '../../../src/p3s/supervision/fill.js';
import { memory } from '../../../src/engine/scope.js';
import type { RgbImage } from '../../../src/io/image.js';
import { colourPatchExtractor, iou } from './colour_features.js';

function sceneImage(scene: Scene): RgbImage {
  const size = Math.round(Math.sqrt(scene.rgb.length / 3));
  return { width: size, height: size, data: scene.rgb };
}

function objectsOf(p: LookalikeScene): { subject: SceneObject; distractor: SceneObject | null } {
  return {
    subject: p.scene.objects[p.subject]!,
    distractor: p.distractor === null ? null : p.scene.objects[p.distractor]!,
  };
}

test('points on one of two look-alikes select it and not the other (colour pairs)', async () => {
  const extractor = colourPatchExtractor(16);
  let scored = 0;
  let sumIou = 0;
  let sumDistractorIou = 0;
  for (let seed = 0; seed < 12; seed++) {
    const pair = makeLookalikePair(seed, { difference: 'colour' });
    const image = sceneImage(pair.scene);
    const [r] = await buildSubjectMasks(
      [
        {
          name: `pair${seed}`,
          image,
          positive: [[pair.positive.x, pair.positive.y]],
          negative: [[pair.negative.x, pair.negative.y]],
        },
      ],
      extractor,
    );
    const gt = objectsOf(pair);
    const subjectIou = iou(r!.subject.mask, gt.subject.mask);
    const leak = iou(r!.subject.mask, gt.distractor!.mask);
    assert.ok(
      leak < 0.05,
      `seed ${seed}: subject mask overlaps the distractor (IoU ${leak.toFixed(3)})`,
    );
    sumDistractorIou += iou(r!.distractor!.mask, gt.distractor!.mask);
    sumIou += subjectIou;
    scored++;
  }
  // Measured: mean subject IoU 0.75, distractor 0.74 with 4-px colour-histogram patches on 64-px
  // scenes and the default masks (0.58 and 0.53 with Eq. 2 as written on the 16×16 grid).
  const mean = sumIou / scored;
  assert.ok(mean > 0.65, `mean subject IoU ${mean.toFixed(3)}`);
  assert.ok(
    sumDistractorIou / scored > 0.65,
    `mean distractor IoU ${(sumDistractorIou / scored).toFixed(3)}`,
  );
});

test('the compare rule and guided refinement beat Eq. (2) as written on look-alikes', async () => {
  const extractor = colourPatchExtractor(16);
  const sums = { defaults: 0, paper: 0, defaultsDistractor: 0 };
  const seeds = 12;
  for (let seed = 0; seed < seeds; seed++) {
    const pair = makeLookalikePair(seed);
    const input: RngrImageInput = {
      name: `pair${seed}`,
      image: sceneImage(pair.scene),
      positive: [[pair.positive.x, pair.positive.y]],
      negative: [[pair.negative.x, pair.negative.y]],
    };
    const gt = objectsOf(pair);
    // clicked patch alone in both: the circle around a click is measured on the toy CLIP, and
    // on colour histograms it lowers the IoU (40 pairs: 0.635 alone, 0.572 at 0.625 patches)
    const [d] = await buildSubjectMasks([input], extractor, { clickRadius: 0 });
    const [p] = await buildSubjectMasks([input], extractor, {
      rule: 'product',
      refine: 'none',
      clickRadius: 0,
    });
    assert.equal(d!.subject.level, 'pixel');
    assert.equal(p!.subject.level, 'grid');
    sums.defaults += iou(d!.subject.mask, gt.subject.mask) / seeds;
    sums.paper += iou(p!.subject.mask, gt.subject.mask) / seeds;
    sums.defaultsDistractor += iou(d!.distractor!.mask, gt.distractor!.mask) / seeds;
  }
  // Measured with 4-px colour-histogram patches, colour and pattern pairs: IoU 0.75 with the
  // defaults, 0.67 with Eq. (2) as written (world version 1, smaller objects: 0.70 and 0.40).
  assert.ok(sums.defaults > 0.7, `default IoU ${sums.defaults}`);
  assert.ok(sums.defaults > sums.paper + 0.05, `${sums.defaults} vs ${sums.paper}`);
  assert.ok(sums.defaultsDistractor > 0.6, `look-alike IoU ${sums.defaultsDistractor}`);
});

test("a click's query: the click and eight points on a circle, in patches, kept inside the photo", () => {
  const image: RgbImage = { width: 64, height: 48, data: new Uint8Array(64 * 48 * 3) };
  const grid = { gridH: 6, gridW: 8, imageWidth: 64, imageHeight: 48 } as PatchFeatures;
  assert.deepEqual(clickCircles([[10, 20]], image, grid, 0), [[10, 20]]);
  const around = clickCircles([[30, 20]], image, grid, 0.5); // 8-px patches: 4 px around
  assert.equal(around.length, 9);
  assert.deepEqual(around[0], [30, 20]);
  for (const [x, y] of around.slice(1))
    assert.ok(Math.abs(Math.hypot(x - 30, y - 20) - 4) < 1e-9, `${x}, ${y}`);
  assert.deepEqual(around[1], [34, 20]);
  // a dense grid's tokens see a whole patch, not a grid cell
  const dense = clickCircles([[30, 20]], image, { ...grid, gridW: 32, patchSize: 8 }, 0.5);
  assert.deepEqual(dense[1], [34, 20]);
  // near the corner the circle is clipped to the photo
  for (const [x, y] of clickCircles([[1, 47]], image, grid, 1)) {
    assert.ok(x >= 0 && x < 64 && y >= 0 && y < 48, `${x}, ${y}`);
  }
});

test('unknown mask options are refused', async () => {
  const pair = makeLookalikePair(0);
  const input: RngrImageInput = {
    name: 'pair',
    image: sceneImage(pair.scene),
    positive: [[pair.positive.x, pair.positive.y]],
    negative: [],
  };
  const extractor = colourPatchExtractor(16);
  await assert.rejects(
    buildSubjectMasks([input], extractor, { rule: 'max' as unknown as 'compare' }),
    /rule to be compare or product/,
  );
  await assert.rejects(
    buildSubjectMasks([input], extractor, { refine: 'crf' as unknown as 'none' }),
    /refine to be guided or none/,
  );
});

test('the filled photo no longer shows the distractor', async () => {
  const pair = makeLookalikePair(3, { difference: 'colour' });
  const image = sceneImage(pair.scene);
  const [r] = await buildSubjectMasks(
    [
      {
        name: 'p',
        image,
        positive: [[pair.positive.x, pair.positive.y]],
        negative: [[pair.negative.x, pair.negative.y]],
      },
    ],
    colourPatchExtractor(16),
  );
  const gt = objectsOf(pair);
  const fill = gt.distractor!.fill;
  let still = 0;
  let total = 0;
  for (let i = 0; i < gt.distractor!.mask.length; i++) {
    if (!gt.distractor!.mask[i]) continue;
    total++;
    const d =
      Math.abs(r!.filled.data[3 * i]! - fill[0]!) +
      Math.abs(r!.filled.data[3 * i + 1]! - fill[1]!) +
      Math.abs(r!.filled.data[3 * i + 2]! - fill[2]!);
    if (d < 30) still++;
  }
  assert.ok(
    still / total < 0.2,
    `${((100 * still) / total).toFixed(0)}% of the distractor's pixels keep its colour`,
  );
  // the subject is untouched, but for the pixel-wide rim the fill grows the look-alike's mask by
  // (the two touch)
  const size = image.width;
  const nearDistractor = (i: number) => {
    const x = i % size;
    const y = (i - x) / size;
    for (let dy = -1; dy <= 1; dy++)
      for (let dx = -1; dx <= 1; dx++)
        if (r!.distractor!.mask[(y + dy) * size + x + dx]) return true;
    return false;
  };
  for (let i = 0; i < gt.subject.mask.length; i++) {
    if (gt.subject.mask[i] && !nearDistractor(i))
      assert.equal(r!.filled.data[3 * i], image.data[3 * i]);
  }
});

test('clicks on one photo are propagated to the others', async () => {
  // A blue subject, found by colour features (the night and the beach's sea are bluish too).
  const set = makeSubjectReferenceSet(11, { count: 4, subject: { colour: 'blue' } });
  const inputs: RngrImageInput[] = set.images.map((im, k) => ({
    name: `ref${k}`,
    image: sceneImage(im.scene),
    positive: k === 0 ? [[im.positive.x, im.positive.y]] : [],
    negative: k === 0 && im.negative ? [[im.negative.x, im.negative.y]] : [],
  }));
  const before = memory().liveTensors;
  // the clicked patch alone: the circle around a click does not suit colour histograms (below)
  const results = await buildSubjectMasks(inputs, colourPatchExtractor(16), { clickRadius: 0 });
  assert.equal(memory().liveTensors, before, 'no tensors leak');
  const ious: number[] = [];
  for (let k = 1; k < results.length; k++) {
    const r = results[k]!;
    assert.ok(r.propagated, `image ${k} was propagated`);
    const [x, y] = r.positive[0]!;
    const size = r.image.width;
    const mask = objectsOf(set.images[k]!).subject.mask;
    // the propagated point's cell overlaps the subject
    const cx = Math.floor(x);
    const cy = Math.floor(y);
    let near = false;
    for (let dy = -2; dy <= 2; dy++)
      for (let dx = -2; dx <= 2; dx++) if (mask[(cy + dy) * size + cx + dx]) near = true;
    assert.ok(near, `image ${k}: propagated point (${x}, ${y}) is not on the subject`);
    ious.push(iou(r.subject.mask, mask));
  }
  // Measured IoU 0.708, 0.190, 0.716 with the default masks on world version 2 (0.87, 0.86, 0.94
  // on version 1, whose objects were smaller and never touched): image 2's mask misses most of
  // the subject, so the floor is on the mean.
  const mean = ious.reduce((a, v) => a + v, 0) / ious.length;
  assert.ok(mean > 0.5, `mean subject IoU ${mean.toFixed(3)} (${ious.map((v) => v.toFixed(3))})`);
});

test('bad clicks are clear errors', async () => {
  const pair = makeLookalikePair(1);
  const image = sceneImage(pair.scene);
  const ex = colourPatchExtractor(8);
  await assert.rejects(
    buildSubjectMasks([{ name: 'a.png', image, positive: [[70, 3]], negative: [] }], ex),
    /Expected a point inside the 64×64 image a.png but received \(70, 3\)/,
  );
  await assert.rejects(
    buildSubjectMasks([{ name: 'a.png', image, positive: [], negative: [[3, 3]] }], ex),
    /positive point/,
  );
  await assert.rejects(buildSubjectMasks([], ex), /at least one reference image/);
});

test('diffusion fill reproduces a smooth gradient under the mask', () => {
  const w = 40;
  const h = 30;
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      for (let c = 0; c < 3; c++) data[(y * w + x) * 3 + c] = 50 + 4 * x + (c === 1 ? 2 * y : 0);
  const mask = new Uint8Array(w * h);
  for (let y = 10; y < 20; y++) for (let x = 12; x < 28; x++) mask[y * w + x] = 1;
  const out = diffusionFill({ width: w, height: h, data }, mask, { iterations: 200 });
  let worst = 0;
  for (let i = 0; i < w * h; i++)
    if (mask[i])
      for (let c = 0; c < 3; c++)
        worst = Math.max(worst, Math.abs(out.data[3 * i + c]! - data[3 * i + c]!));
  // a linear ramp is harmonic, so the exact fill is the ramp itself; measured error ≤ 3 levels
  assert.ok(worst <= 6, `max error ${worst}`);
  assert.throws(
    () => diffusionFill({ width: w, height: h, data }, new Uint8Array(w * h).fill(1)),
    /covers the whole image/,
  );
});

test('photos of different sizes are masked at their own sizes', async () => {
  const a = makeLookalikePair(21, { difference: 'colour' });
  const b = makeLookalikePair(22, { difference: 'colour', size: 96 });
  const results = await buildSubjectMasks(
    [
      {
        name: 'a',
        image: sceneImage(a.scene),
        positive: [[a.positive.x, a.positive.y]],
        negative: [[a.negative.x, a.negative.y]],
      },
      { name: 'b', image: sceneImage(b.scene), positive: [], negative: [] },
    ],
    colourPatchExtractor(16),
  );
  assert.equal(results[0]!.subject.mask.length, 64 * 64);
  assert.equal(results[1]!.subject.mask.length, 96 * 96);
  assert.equal(results[1]!.filled.width, 96);
});
