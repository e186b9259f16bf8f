// Ranking the references for --reference best: leave-one-out CLIP-I, the references' embeddings
// read from the adapter's stored CLIP states, the ranking kept beside the adapter and read back
// only for the same key.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { noGrad } from '../../src/engine/autograd.js';
import { setNumThreads } from '../../src/engine/index.js';
import type { RgbImage } from '../../src/io/image.js';
import { clipImageEncoder, type ClipImageTower } from '../../src/eval/eval_models.js';
import { clipProcessorFor } from '../../src/p3s/references.js';
import {
  bestOf,
  conditionEmbeddings,
  leaveOneOutScores,
  rankReferences,
  rankingPath,
  readRanking,
  writeRanking,
  RANKING_PROMPTS,
  RANKING_SEEDS,
} from '../../src/p3s/reference_ranking.js';
import { fixturePath } from '../helpers/paths.js';

setNumThreads(1);

const CLIP = fixturePath('tiny-clip-vision');
let root = '';
let tower: ClipImageTower;

before(() => {
  root = mkdtempSync(join(tmpdir(), 'p3s-ranking-'));
  tower = clipImageEncoder(CLIP);
});

after(() => {
  tower?.dispose();
  if (root) rmSync(root, { recursive: true, force: true });
});

function solid(rgb: [number, number, number], size = 32): RgbImage {
  const data = new Uint8Array(size * size * 3);
  for (let i = 0; i < size * size; i++) data.set(rgb, i * 3);
  return { width: size, height: size, data };
}

/** The tower's last hidden states of images, as training stores them (c_s). */
function clipStates(images: RgbImage[]) {
  const processor = clipProcessorFor(CLIP, tower.model);
  return noGrad(() => tower.model.forward(processor.preprocess(images)).lastHiddenState);
}

test('each reference scores the mean cosine of its images to the other references only', () => {
  const refs = [
    [1, 0, 0],
    [0, 1, 0],
    [0, 0, 1],
  ];
  const images = [[[0, 1, 0]], [[1, 0, 0]], [[0, 0, 1]]];
  const scores = leaveOneOutScores(images, refs);
  // reference 0's image is reference 1: cosine 1 with it, 0 with reference 2; its own is left out
  assert.deepEqual(scores, [0.5, 0.5, 0]);
  assert.throws(() => leaveOneOutScores([[[1]]], [[1]]), /at least 2 references/);
  assert.throws(() => leaveOneOutScores(images, refs.slice(1)), /3 sets for 2 references/);
});

test('the best reference is the highest score, the first of equals', () => {
  assert.equal(bestOf([0.1, 0.5, 0.5]), 1);
  assert.equal(bestOf([-0.2, -0.3]), 0);
});

test("the references' embeddings from stored CLIP states are the tower's embeddings of the crops", () => {
  const crops = [solid([200, 30, 30]), solid([30, 30, 200])];
  const states = clipStates(crops);
  try {
    const fromStates = conditionEmbeddings(tower, states);
    const direct = tower.embed(crops);
    fromStates.forEach((row, i) =>
      row.forEach((x, j) => assert.ok(Math.abs(x - direct[i]![j]!) < 1e-5, `${i},${j}`)),
    );
  } finally {
    states.dispose();
  }
});

test('ranking draws every reference in each ranking context and picks the one like the rest', async () => {
  // two red references and a blue one: the blue one's images look least like the others
  const refs = [solid([220, 20, 20]), solid([200, 40, 30]), solid([20, 20, 220])];
  const states = clipStates(refs);
  const calls: string[] = [];
  try {
    const ranking = await rankReferences(
      RANKING_PROMPTS,
      async (r, prompt, seeds) => {
        calls.push(`${r}:${prompt}:${seeds.join(',')}`);
        return seeds.map(() => refs[r]!);
      },
      tower,
      states,
    );
    assert.equal(calls.length, refs.length * RANKING_PROMPTS.length);
    assert.ok(calls.includes(`2:${RANKING_PROMPTS[1]}:${RANKING_SEEDS.join(',')}`));
    assert.equal(ranking.scores.length, 3);
    assert.ok(ranking.scores[2]! < Math.min(ranking.scores[0]!, ranking.scores[1]!));
    assert.notEqual(ranking.best, 2);
    assert.equal(ranking.best, bestOf(ranking.scores));
  } finally {
    states.dispose();
  }
});

test('a kept ranking is read back only for its key and reference count, and only when sound', () => {
  const path = rankingPath(join(root, 'adapter.safetensors'));
  assert.equal(path, join(root, 'adapter.ranking.json'));
  assert.equal(rankingPath('/x/weights.bin'), '/x/weights.bin.ranking.json');
  const key = { adapter_bytes: '10', guidance_scale: '3' };
  assert.equal(readRanking(path, key, 2), null); // none kept yet
  writeRanking(path, key, { best: 1, scores: [0.2, 0.4] });
  assert.deepEqual(readRanking(path, key, 2), { best: 1, scores: [0.2, 0.4] });
  assert.equal(readRanking(path, { ...key, guidance_scale: '5' }, 2), null);
  assert.equal(readRanking(path, key, 3), null);
  for (const ranking of [
    { best: 2, scores: [0.2, 0.4] },
    { best: 0, scores: [0.2, null] },
  ]) {
    writeFileSync(path, JSON.stringify({ key, ranking }));
    assert.equal(readRanking(path, key, 2), null, JSON.stringify(ranking));
  }
  writeFileSync(path, '{"key":');
  assert.equal(readRanking(path, key, 2), null);
});
