// The model card states each stage's recipe as training.json recorded it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeModelCard } from '../../src/toymodels/model_card.js';
import type { StageReport } from '../../src/toymodels/train_toy.js';
import type { ToyQuality } from '../../src/toymodels/evaluate.js';
import { TOY_RECIPE } from '../../src/toymodels/recipes.js';
import { repoRoot } from '../helpers/paths.js';

const clipReport = (extra: Partial<StageReport>): StageReport => ({
  stage: 'clip',
  steps: 1500,
  batchSize: 64,
  threads: 1,
  ran: 1500,
  seconds: 60,
  finalLoss: 0.1,
  totalSeconds: 60,
  ...extra,
});

test('the CLIP row names hard negatives only when the stage used them', () => {
  const folder = mkdtempSync(join(tmpdir(), 'p3s-card-'));
  try {
    const clipRow = (report: StageReport) => {
      writeModelCard(folder, { clip: report }, null);
      const card = readFileSync(join(folder, 'README.md'), 'utf8');
      return card.split('\n').find((l) => l.startsWith('| clip |'))!;
    };
    assert.match(clipRow(clipReport({ hardNegatives: 4 })), /InfoNCE.*, 4 one-attribute-changed/);
    assert.match(
      clipRow(clipReport({})),
      /\| symmetric InfoNCE, learned temperature \| 1500 × 64 \|/,
    );
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
});

test("the selective section adds the demo recipe's rows only when quality.json has them", () => {
  const folder = mkdtempSync(join(tmpdir(), 'p3s-card-'));
  try {
    const shipped = JSON.parse(
      readFileSync(join(repoRoot(), 'models', 'toy', 'quality.json'), 'utf8'),
    ) as ToyQuality;
    const card = (quality: ToyQuality) => {
      writeModelCard(folder, {}, quality);
      return readFileSync(join(folder, 'README.md'), 'utf8');
    };
    const paperOnly = card({ ...shipped, selectiveRecipe: undefined });
    assert.match(paperOnly, /p3s demo --paper-settings`'s experiment/);
    assert.doesNotMatch(paperOnly, /With `p3s demo`'s recipe/);
    const numbers = (fidelity: number) => ({
      fidelity,
      lookalikeRate: 0.125,
      colourFidelity: 0.5,
      lookalikeColourRate: 0.25,
      maskIoU: 0.5,
    });
    const withRecipe = card({
      ...shipped,
      selectiveRecipe: {
        subjects: 3,
        steps: TOY_RECIPE.steps,
        imagesPerSubject: 16,
        withNegative: numbers(0.375),
        positiveOnly: numbers(0),
        recipe: TOY_RECIPE,
      },
    });
    assert.match(
      withRecipe,
      /With `p3s demo`'s recipe \(aligned injection, references cut to 1\.5× the subject's box,\s+600 steps at lr 0\.001, ε_t fixed:0\.5, subject guidance/,
    );
    assert.match(withRecipe, /\| positive \+ negative \| 37\.5 % \| 12\.5 % \|/);
    assert.match(withRecipe, /\| positive only \| 0\.0 % \| 12\.5 % \|/);
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
});
