// The CLIP stage's hard negatives: captions that change one attribute enter the image→text loss.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setNumThreads } from '../../../src/engine/index.js';
import { CLIPTokenizer } from '../../../src/tokenizers/clip_tokenizer.js';
import { trainToyClip } from '../../../apps/toymodels/clip_stage.js';
import { stageLossLog } from '../../../apps/toymodels/stage.js';
import { fixturePath } from '../../helpers/paths.js';

setNumThreads(1);
let root = '';
let tokenizer: CLIPTokenizer;
before(() => {
  root = mkdtempSync(join(tmpdir(), 'p3s-clip-stage-'));
  tokenizer = CLIPTokenizer.fromPretrained(fixturePath('clip-tokenizer'));
});
after(() => rmSync(root, { recursive: true, force: true }));

async function firstLoss(hardNegatives: number): Promise<number> {
  const dir = join(root, `k${hardNegatives}`);
  const { clip } = await trainToyClip(
    { seed: 3, steps: 1, batchSize: 4, lr: 1e-3, hardNegatives, dir, progress: false },
    tokenizer,
  );
  clip.dispose();
  return stageLossLog(dir)[0]!.loss;
}

test('hard negatives add columns to the image→text loss and nothing else', async (t) => {
  const plain = await firstLoss(0);
  const hard = await firstLoss(2);
  t.diagnostic(`first-step loss ${plain} → ${hard}`);
  assert.ok(Number.isFinite(plain) && Number.isFinite(hard));
  // Same initial weights and batch: extra negatives can only enlarge the softmax denominator.
  assert.ok(hard > plain, `with hard negatives ${hard}, without ${plain}`);
  // At initialisation every similarity is close, so the image→text half grows by about
  // ½·log((B + B·k) / B) = ½·log 3 = 0.549 (the ½ averages the two directions); measured 0.575.
  assert.ok(Math.abs(hard - plain - 0.5 * Math.log(3)) < 0.1, `difference ${hard - plain}`);
});
