// The model card states each stage's recipe as training.json recorded it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeModelCard } from '../../src/toymodels/model_card.js';
import type { StageReport } from '../../src/toymodels/train_toy.js';

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
