import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tensor, tidy, noGrad } from '../../src/index.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { readImage } from '../../src/io/image.js';
import { ViTImageProcessor, ViTModel } from '../../src/models/vit/index.js';
import {
  clipImageScore,
  clipImageVariance,
  clipTextPrompt,
  clipTextScore,
  cosine,
  dinoScore,
  dinoVariance,
  pairwiseSimilarity,
  populationVariance,
} from '../../src/eval/metrics.js';
import { fixturePath, dreambenchPath } from '../helpers/paths.js';

const close = (actual: number, expected: number, tol: number, label: string) =>
  assert.ok(Math.abs(actual - expected) <= tol, `${label}: ${actual} vs ${expected} (tol ${tol})`);

// Generated g1 = (1, 0), g2 = (3, 4); real r1 = (1, 0), r2 = (0, 2).
//   cos(g1, r1) = 1,  cos(g1, r2) = 0,  cos(g2, r1) = 3/5,  cos(g2, r2) = 8/(5·2) = 4/5
//   per-image means: g1 (1 + 0)/2 = 0.5, g2 (0.6 + 0.8)/2 = 0.7; score (0.5 + 0.7)/2 = 0.6
//   population variance ((0.5 − 0.6)² + (0.7 − 0.6)²)/2 = 0.01 (the sample variance would be 0.02)
const G = [
  [1, 0],
  [3, 4],
];
const R = [
  [1, 0],
  [0, 2],
];

test('pairwise scores on a 2×2 case computed by hand', () => {
  const p = pairwiseSimilarity(G, R);
  const expected = [
    [1, 0],
    [0.6, 0.8],
  ];
  p.cosines.flat().forEach((c, i) => close(c, expected.flat()[i]!, 1e-15, `cosine ${i}`));
  close(p.perImage[0]!, 0.5, 1e-15, 'g1 mean');
  close(p.perImage[1]!, 0.7, 1e-15, 'g2 mean');
  close(p.mean, 0.6, 1e-15, 'mean');
  close(p.variance, 0.01, 1e-15, 'variance');
  for (const [score, variance] of [
    [dinoScore, dinoVariance],
    [clipImageScore, clipImageVariance],
  ] as const) {
    close(score(G, R), 0.6, 1e-15, score.name);
    close(variance(G, R), 0.01, 1e-15, variance.name);
  }
  // A (N, D) tensor gives the same (float32 holds these values exactly).
  tidy(() => close(dinoScore(tensor(G.flat(), [2, 2]), tensor(R.flat(), [2, 2])), 0.6, 1e-7, 't'));
  close(populationVariance([1, 2, 3, 4]), 1.25, 1e-15, 'population variance');
});

// Text t = (1, 1): cos(g1, t) = 1/√2, cos(g2, t) = 7/(5√2); mean = (12/5)/(2√2) = 1.2/√2.
test('CLIP-T: one text row for all images, or one per image', () => {
  close(clipTextScore(G, [[1, 1]]), 1.2 / Math.SQRT2, 1e-15, 'shared text');
  // Per-image texts: g1 with (0, 1) → 0, g2 with (3, 4) → 1; mean 0.5.
  close(
    clipTextScore(G, [
      [0, 1],
      [3, 4],
    ]),
    0.5,
    1e-15,
    'per-image text',
  );
  assert.throws(
    () =>
      clipTextScore(G, [
        [1, 0],
        [0, 1],
        [1, 1],
      ]),
    /1 text embedding or one per/,
  );
});

test('the CLIP-T prompt drops the identifier, keeping the class noun once', () => {
  assert.equal(clipTextPrompt('a sks dog on the beach', 'sks', 'dog'), 'a dog on the beach');
  assert.equal(
    clipTextPrompt('a sks stuffed animal in the snow', 'sks', 'stuffed animal'),
    'a stuffed animal in the snow',
  );
  assert.equal(clipTextPrompt('a photo of sks.', 'sks', 'cat'), 'a photo of cat.');
  assert.equal(clipTextPrompt('asks sksdog', 'sks', 'dog'), 'asks sksdog'); // whole words only
});

test('degenerate input is refused', () => {
  assert.throws(() => cosine([0, 0], [1, 0]), /zero vector/);
  assert.throws(() => dinoScore([], R), /at least one row/);
  assert.throws(
    () => dinoScore([[1, 2, 3]], R),
    /generated and real embeddings of one dimension but received 3 and 2/,
  );
  assert.throws(() => tidy(() => dinoScore(tensor([1, 2, 3]), R)), /shape \(N, D\)/);
  assert.throws(() => dinoScore([[1, 2], [1]], R), /rows of one length ≥ 1 but row 1 has 1/);
  assert.throws(() => clipTextScore(G, [[1, 2, 3]]), /image and text embeddings of one dimension/);
});

test("the fixture's DINO score from the tiny ViT's CLS tokens on the DreamBench photos", async () => {
  const folder = fixturePath('tiny-vit');
  const refs = SafetensorsFile.open(join(folder, 'reference.safetensors'));
  const { images } = JSON.parse(readFileSync(join(folder, 'reference.json'), 'utf8')) as {
    images: string[];
  };
  const photos = await Promise.all(images.map((p) => readImage(dreambenchPath(p))));
  const model = ViTModel.fromPretrained(folder);
  const pv = ViTImageProcessor.fromPretrained(folder).preprocess(photos);
  // reference.json: rows = images[:n] as generated, columns = images[n:] as real, n = len // 2.
  const n = Math.floor(images.length / 2);
  const { generated, real } = noGrad(() =>
    tidy(() => {
      const cls = model.clsEmbeddings(pv); // (3, C)
      return { generated: cls.slice(0, 0, n), real: cls.slice(0, n) };
    }),
  );
  const p = pairwiseSimilarity(generated, real);
  const expected = tidy(() => refs.tensor('dino_pairwise_cosine').toArray()); // (1, 2)
  const errs = p.cosines.flat().map((c, i) => Math.abs(c - expected[i]!));
  const score = tidy(() => refs.tensor('dino_score').item());
  const variance = tidy(() => refs.tensor('dino_per_image_variance').item());
  console.log(
    `DINO cosines max abs error ${Math.max(...errs).toExponential(2)}; score ${dinoScore(generated, real)} vs ${score}; variance ${dinoVariance(generated, real)} vs ${variance}`,
  );
  errs.forEach((e, i) => assert.ok(e <= 1e-5, `cosine ${i} off by ${e}`));
  close(dinoScore(generated, real), score, 1e-5, 'dino_score');
  close(dinoVariance(generated, real), variance, 1e-5, 'dino_per_image_variance');
  [generated, real, pv].forEach((t) => t.dispose());
  model.dispose();
});
