// The demo's HTML report: one self-contained page (images linked by relative path, no external
// resources) that convinces at a glance: the clicks drawn on the reference photos beside the
// masks, the generated images per prompted context with both runs side by side and the base
// model's own image beneath, the probe's verdict on each, and every number in a table row that
// says what it measures — this run's and the shipped models' measured quality.
import { writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { describeObject } from '../../src/toyworld/captions.js';
import type { ExperimentResult, GenerationScores } from '../toymodels/experiment.js';
import { contextGroups, linker, referencesTable } from './report_images.js';
import { modelQualitySection } from './report_quality.js';
import { escapeHtml } from '../../src/io/html.js';
import { CHANCE, numberTable, type NumberGroup, type NumberRow } from './report_tables.js';

/** A loss curve as inline SVG (raw losses faint, a 20-step moving average on top). */
export function lossCurveSvg(losses: readonly number[], width = 480, height = 160): string {
  if (losses.length === 0) return '<p>No training steps.</p>';
  const max = Math.max(...losses);
  const min = Math.min(0, ...losses);
  const x = (i: number) => (i / Math.max(1, losses.length - 1)) * (width - 40) + 35;
  const y = (v: number) => height - 20 - ((v - min) / Math.max(1e-12, max - min)) * (height - 30);
  const path = (vals: readonly number[]) =>
    vals.map((v, i) => `${i ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
  const smooth = losses.map((_, i) => {
    const w = losses.slice(Math.max(0, i - 19), i + 1);
    return w.reduce((a, b) => a + b, 0) / w.length;
  });
  return `<svg width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="training loss">
  <line x1="35" y1="${height - 20}" x2="${width - 5}" y2="${height - 20}" stroke="#999"/>
  <line x1="35" y1="5" x2="35" y2="${height - 20}" stroke="#999"/>
  <text x="2" y="14" font-size="10">${max.toFixed(3)}</text>
  <text x="2" y="${height - 22}" font-size="10">${min.toFixed(3)}</text>
  <text x="${width - 60}" y="${height - 5}" font-size="10">step ${losses.length}</text>
  <path d="${path(losses)}" fill="none" stroke="#9bd" stroke-width="1"/>
  <path d="${path(smooth)}" fill="none" stroke="#157" stroke-width="2"/>
</svg>`;
}

export interface ReportInput {
  main: ExperimentResult;
  /** The same experiment without the negative point. */
  baseline: ExperimentResult | null;
  /** The shipped models' measured quality (quality.json), if present. */
  modelQuality: Record<string, unknown> | null;
  seconds: number;
  /** The adapter settings the runs used ("injectionMode" → "aligned" …), listed under the numbers. */
  settings?: Record<string, string | number | boolean | null>;
  /** A one-line explanation per setting, by the same keys. */
  settingsHelp?: Record<string, string>;
}

/** This run's numbers: a column per run, then the base model's when it ran. */
function runTable(input: ReportInput): string {
  const { main, baseline } = input;
  const base = main.baseModel;
  const columns = [
    'with negative click',
    ...(baseline ? ['positive click only'] : []),
    ...(base ? ['base model, no adapter'] : []),
  ];
  const runs: (GenerationScores | undefined)[] = [
    main,
    ...(baseline ? [baseline] : []),
    ...(base ? [base] : []),
  ];
  const share = (
    label: string,
    key: keyof GenerationScores,
    explain: string,
    chance?: number,
  ): NumberRow => ({
    label,
    values: runs.map((r) => r?.[key]),
    format: 'share',
    chance,
    explain,
  });
  const images = main.generated.length;
  return numberTable(columns, [
    {
      heading: `The probe's reading of the ${images} generated images per run`,
      rows: [
        share(
          "subject's look",
          'fidelity',
          "colour, pattern and shape all the subject's: the goal (higher is better)",
          CHANCE.colourAndPattern * CHANCE.shape,
        ),
        share(
          "a look-alike's look",
          'lookalikeRate',
          'colour and pattern of a look-alike the clicks excluded (lower is better)',
        ),
        share(
          "subject's colour",
          'colourFidelity',
          "the subject's colour, pattern aside (what a blurry 64-px image keeps best)",
          CHANCE.colour,
        ),
        share(
          "a look-alike's other colour",
          'lookalikeColourRate',
          'a colour only a look-alike has (lower is better)',
        ),
        share(
          'shape as prompted',
          'shapeAccuracy',
          "the prompted shape (the subject's: look-alikes share it)",
          CHANCE.shape,
        ),
        share(
          'background as prompted',
          'backgroundAccuracy',
          'the background the prompt asked for (one prompt per context of the world)',
          CHANCE.background,
        ),
      ],
    },
    fineTuningSection(input, columns.length, base !== undefined),
  ]);
}

/** Masks, fine-tuning and time: one value per trained run (the base model trains nothing). */
function fineTuningSection(input: ReportInput, columnCount: number, hasBase: boolean): NumberGroup {
  const trained = [input.main, ...(input.baseline ? [input.baseline] : [])];
  const perRun = (values: number[]) => [...values, ...(hasBase ? [undefined] : [])];
  const meanIoU = (r: ExperimentResult) =>
    r.masks.reduce((a, m) => a + m.subjectIoU, 0) / Math.max(1, r.masks.length);
  return {
    heading: 'Masks and fine-tuning',
    rows: [
      {
        label: 'subject-mask IoU',
        values: perRun(trained.map(meanIoU)),
        format: 'iou',
        explain:
          "mean overlap of the reference subject masks with the subject's true pixels (1 is exact)",
      },
      {
        label: 'fine-tuning steps',
        values: perRun(trained.map((r) => r.losses.length)),
        format: 'count',
        explain: 'P3S optimiser steps on the filled references',
      },
      {
        label: 'fine-tuning time',
        values: perRun(trained.map((r) => r.trainSeconds)),
        format: 'seconds',
        explain: 'wall time of the fine-tuning alone',
      },
      {
        label: 'whole demo',
        values: [input.seconds, ...Array<undefined>(columnCount - 1).fill(undefined)],
        format: 'seconds',
        explain: 'wall time of the whole demo, one value: both runs and the base model included',
      },
    ],
  };
}

/** The settings the runs used, one row each with what it does when the caller said. */
function settingsTable(input: ReportInput): string {
  if (!input.settings) return '';
  const rows = Object.entries(input.settings).map(
    ([k, v]) =>
      `<tr><td>${escapeHtml(k)}</td><td><code>${escapeHtml(String(v))}</code></td><td class="explain">${escapeHtml(input.settingsHelp?.[k] ?? '')}</td></tr>`,
  );
  return `<h3>Settings of both runs</h3>
<table class="settings"><tr><th>setting</th><th>value</th><th>what it does</th></tr>
${rows.join('\n')}
</table>`;
}

/** Both runs' loss curves side by side. */
function lossCurves(runs: ExperimentResult[]): string {
  const figures = runs.map(
    (r) =>
      `<figure>${lossCurveSvg(r.losses)}<figcaption>${r.negativePoint ? 'with negative click' : 'positive click only'}</figcaption></figure>`,
  );
  return `<h2>Fine-tuning loss</h2>
<p>Raw loss per step (pale) and its 20-step moving average (dark).</p>
<div class="row">${figures.join('\n')}</div>`;
}

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; max-width: 1200px; }
.row { display: flex; flex-wrap: wrap; gap: 10px; }
figure { margin: 0; font-size: 12px; }
img { image-rendering: pixelated; border: 1px solid #ccc; display: block; }
img.ref { width: 128px; height: 128px; }
.clicked { position: relative; display: inline-block; }
.clicked svg { position: absolute; inset: 0; width: 100%; height: 100%; pointer-events: none; }
.gen img { width: 128px; height: 128px; }
.gen.ok img { border: 3px solid #2a2; } .gen.bad img { border: 3px solid #c33; }
.pair { display: flex; gap: 6px; }
.read { color: #555; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; }
th { background: #f4f4f4; text-align: left; }
tr.group th { background: #e6eef6; }
td.num { text-align: right; white-space: nowrap; }
td.explain { color: #333; max-width: 520px; }
table.context caption { text-align: left; font-weight: bold; font-size: 15px; padding: 4px 0; }
table.context tr.base td { background: #fafafa; }
`;

/** The marks the page uses, explained once at the top. */
const LEGEND = `<p class="legend">
<svg width="16" height="16" viewBox="0 0 16 16" aria-hidden="true"><circle cx="8" cy="8" r="6" fill="#1a9e1a"/><path d="M5,8 H11 M8,5 V11" stroke="#fff" stroke-width="2"/></svg> positive click (the subject) ·
<svg width="16" height="16" viewBox="0 0 16 16" aria-hidden="true"><circle cx="8" cy="8" r="6" fill="none" stroke="#d62020" stroke-width="2"/><path d="M5,8 H11" stroke="#d62020" stroke-width="2"/></svg> negative click (the look-alike) ·
green frame: the probe reads the subject's colour, pattern and shape (✓) · red frame: it does not (✗).</p>`;

export function renderReport(path: string, input: ReportInput): void {
  const link = linker(dirname(path));
  const { main, baseline } = input;
  const runs = [main, ...(baseline ? [baseline] : [])];
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>p3s demo</title>
<style>${STYLE}</style></head><body>
<h1>p3s demo: one subject, chosen with two clicks</h1>
<p>The subject is the <b>${escapeHtml(describeObject(main.subject))}</b>. Every reference photo also shows a
look-alike of the same shape; a positive click marks the subject, a negative click the look-alike.
P3S fine-tunes the embedded toy models (models/toy, trained by <code>npm run train:toy</code>) on the
masked references, then draws "a ${escapeHtml(`${main.identifier} ${main.subject.shape}`)}" in each of the toy world's contexts.
A separately trained probe judges every generated image: does it carry the subject's colour, pattern
and shape, or a look-alike's colour and pattern?${baseline ? ' The same runs again with the positive click only show what the negative click buys.' : ''}${main.baseModel ? " The base model's own images, same prompt and seed without the adapter, show what fine-tuning changed." : ''}</p>
${LEGEND}
<h2>The numbers</h2>
${runTable(input)}
<p>The probe reads rendered scenes almost without error (models/toy/README.md); on generated images
it is the judge, not the truth: the pictures below let you check it by eye.</p>
<h2>Clicks and masks</h2>
${referencesTable(runs, link)}
<h2>Generated, by prompted context</h2>
${contextGroups({ selective: main, positiveOnly: baseline }, link)}
${lossCurves(runs)}
${settingsTable(input)}
${modelQualitySection(input.modelQuality)}
</body></html>
`;
  writeFileSync(path, html);
}
