// The model card states each stage's recipe as training.json recorded it, and each quality
// section only when quality.json has its numbers.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeModelCard } from '../../../apps/toymodels/model_card.js';
import type { StageReport, ToyStage } from '../../../apps/toymodels/train_toy.js';
import type { ToyQuality } from '../../../apps/toymodels/evaluate.js';
import { TOY_RECIPE } from '../../../apps/toymodels/recipes.js';
import { repoRoot } from '../../helpers/paths.js';

let folder = '';
before(() => {
  folder = mkdtempSync(join(tmpdir(), 'p3s-card-'));
});
after(() => rmSync(folder, { recursive: true, force: true }));

/** The card written for these reports and quality numbers. */
function card(
  training: Partial<Record<ToyStage, StageReport>>,
  quality: ToyQuality | null,
): string {
  writeModelCard(folder, training, quality);
  return readFileSync(join(folder, 'README.md'), 'utf8');
}

const shippedQuality = (): ToyQuality =>
  JSON.parse(readFileSync(join(repoRoot(), 'models', 'toy', 'quality.json'), 'utf8')) as ToyQuality;

const report = (extra: Partial<StageReport>): StageReport => ({
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

const row = (text: string, stage: ToyStage) =>
  text.split('\n').find((l) => l.startsWith(`| ${stage} |`))!;

test('the CLIP row names hard negatives only when the stage used them', () => {
  const clipRow = (r: StageReport) => row(card({ clip: r }, null), 'clip');
  assert.match(clipRow(report({ hardNegatives: 4 })), /InfoNCE.*, 4 one-attribute-changed/);
  assert.match(clipRow(report({})), /\| symmetric InfoNCE, learned temperature \| 1500 × 64 \|/);
});

test('the decoder row says how the loss was weighted, as training.json recorded it', () => {
  const decoderRow = (objectWeight?: number) =>
    row(card({ decoder: report({ stage: 'decoder', objectWeight }) }, null), 'decoder');
  assert.match(decoderRow(4), /L1 reconstruction weighted 5× on object pixels; encoder/);
  assert.match(decoderRow(), /L1 reconstruction; encoder and latent space frozen/);
});

test('the U-Net row says where its scenes put objects and how many had two, as recorded', () => {
  const unetRow = (extra: Partial<StageReport>) =>
    row(card({ unet: report({ stage: 'unet', ...extra }) }, null), 'unet');
  assert.match(
    unetRow({ layout: 'slots', twoObjectShare: 0.1 }),
    /objects upright at fixed places \(one centred, two side by side\), 10 % with two objects \|/,
  );
  // reports from before the settings existed: the free layout, 40 % two-object scenes
  assert.match(unetRow({}), /scenes with objects anywhere, 40 % with two objects \|/);
  assert.match(
    unetRow({ colourDropout: 0.4, patternDropout: 0.2 }),
    /two objects; captions leave the colour of 40 % and the pattern of 20 % of objects unsaid \|/,
  );
  assert.match(
    unetRow({ colourDropout: 0.3, patternDropout: 0 }),
    /captions leave the colour of 30 % of objects unsaid \|/,
  );
});

test("the selective section adds the demo recipe's rows only when quality.json has them", () => {
  const shipped = shippedQuality();
  const paperOnly = card({}, { ...shipped, selectiveRecipe: undefined });
  assert.match(paperOnly, /p3s demo --paper-settings`'s experiment/);
  assert.doesNotMatch(paperOnly, /With `p3s demo`'s recipe/);
  const numbers = (fidelity: number, perSubjectFidelity: number[] = []) => ({
    fidelity,
    lookalikeRate: 0.125,
    contextAccuracy: 0.75,
    colourFidelity: 0.5,
    lookalikeColourRate: 0.25,
    maskIoU: 0.5,
    perSubject: perSubjectFidelity.map((f, i) => ({
      seed: 100 + i,
      subject: 'red star',
      fidelity: f,
      lookalikeRate: 0,
      contextAccuracy: 1,
      maskIoU: 0.8,
    })),
  });
  const withRecipe = card(
    {},
    {
      ...shipped,
      selectiveRecipe: {
        subjects: 3,
        subjectSeeds: [100, 101, 102],
        steps: 600,
        imagesPerSubject: 16,
        withNegative: numbers(0.375, [0.5, 0.25, 0.375]),
        positiveOnly: numbers(0, [0, 0, 0]),
        recipe: {
          ...TOY_RECIPE,
          identifier: 'olis',
          steps: 600,
          learningRate: 1e-3,
          batchSize: 2,
          weightCurve: 'fixed:0.5',
          subjectOnlyCondition: true,
          backgroundLossWeight: 0,
          flip: true,
          localInjection: 0.3,
          guidanceScale: 3,
        },
      },
    },
  );
  assert.match(
    withRecipe,
    /With `p3s demo`'s recipe \(the subject named "olis", aligned injection, references cut to 1\.5× the subject's box,\s+600 steps at lr 0\.001 in batches of 2, ε_t fixed:0\.5, subject guidance, subject-only condition, background loss weight 0, samples mirrored at random, local injection 0\.3, guidance 3, each subject drawn from its best reference by CLIP-I;/,
  );
  assert.match(withRecipe, /\| positive \+ negative \| 37\.5 % \| 12\.5 % \| 75\.0 % \|/);
  assert.match(withRecipe, /\| positive only \| 0\.0 % \| 12\.5 % \| 75\.0 % \|/);
  assert.match(withRecipe, /\| 101 \| red star \| 25\.0 % \| 0\.0 % \| 100\.0 % \| 0\.0 % \|/);
  const noPerSubject = card(
    {},
    {
      ...shipped,
      selective: { ...shipped.selective!, withNegative: numbers(0.1), positiveOnly: numbers(0) },
      selectiveRecipe: undefined,
    },
  );
  assert.doesNotMatch(noPerSubject, /Per subject/);
});

test('the VAE round-trip line appears with its numbers only when measured', () => {
  const shipped = shippedQuality();
  assert.doesNotMatch(card({}, { ...shipped, vaeRoundTrip: undefined }), /VAE round trips/);
  const measured = card(
    {},
    {
      ...shipped,
      vaeRoundTrip: {
        count: 256,
        all: 0.5,
        colour: 0.9,
        shape: 0.875,
        pattern: 0.95,
        background: 1,
        colourAndPattern: 0.85,
      },
    },
  );
  assert.match(
    measured,
    /VAE round trips\*\* \(the probe on encode → decode of the same 256 scenes[^)]*\): colour 90\.0 %, shape 87\.5 %, pattern 95\.0 %,\s+background 100\.0 %; colour and pattern together 85\.0 %/,
  );
});
