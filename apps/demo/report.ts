// The demo's HTML report: one self-contained page (images linked by relative path) with the
// clicks and masks, the fine-tuning loss, the generated grid with the probe's verdict on each
// image, and the numbers — this run's and the shipped models' measured quality.
import { writeFileSync } from 'node:fs';
import { dirname, relative } from 'node:path';
import type { ObjectAttributes } from '../../src/toyworld/attributes.js';
import { describeObject } from '../../src/toyworld/captions.js';
import type { ExperimentResult } from '../toymodels/experiment.js';

const escape = (s: string) =>
  s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
const pct = (x: number) => `${(100 * x).toFixed(0)} %`;
const name = (a: ObjectAttributes) => escape(describeObject(a));

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
}

function experimentSection(r: ExperimentResult, from: string, title: string): string {
  const link = (p: string) => escape(relative(from, p));
  const refs = r.masks
    .map(
      (
        m,
        k,
      ) => `<figure><img src="${link(r.referencePaths[k]!)}" width="128"><img src="${link(m.overlay)}" width="128"><img src="${link(m.filled)}" width="128">
<figcaption>reference ${k + 1}: look-alike ${name(r.lookalikes[k]!)} · subject-mask IoU ${m.subjectIoU.toFixed(2)}</figcaption></figure>`,
    )
    .join('\n');
  const grid = r.generated
    .map(
      (
        g,
      ) => `<figure class="${g.isSubject ? 'ok' : 'bad'}"><img src="${link(g.path)}" width="128" title="${escape(g.prompt)}" alt="${escape(g.prompt)}">
<figcaption>${escape(g.background)}<br>${g.isSubject ? '✓' : '✗'} probe: ${escape(`${g.seen.colour} ${g.seen.pattern} ${g.seen.shape}, ${g.seen.background}`)}</figcaption></figure>`,
    )
    .join('\n');
  return `<section>
<h2>${escape(title)}</h2>
<p>Clicks: positive on the subject${r.negativePoint ? ', negative on the look-alike' : ' only'}. Reference · mask overlay (green subject, red look-alike) · filled.</p>
<div class="row">${refs}</div>
<h3>Fine-tuning (${r.losses.length} steps, ${r.trainSeconds.toFixed(0)} s)</h3>
${lossCurveSvg(r.losses)}
<h3>Generated: "a sks ${escape(r.subject.shape)}" in new contexts</h3>
<div class="row">${grid}</div>
</section>`;
}

function settingsLine(settings: ReportInput['settings']): string {
  if (!settings) return '';
  const parts = Object.entries(settings).map(
    ([k, v]) => `${escape(k)} <code>${escape(String(v))}</code>`,
  );
  return `<p>Settings: ${parts.join(', ')}.</p>`;
}

export function renderReport(path: string, input: ReportInput): void {
  const from = dirname(path);
  const { main, baseline } = input;
  const row = (label: string, r: ExperimentResult) =>
    `<tr><td>${label}</td><td>${pct(r.fidelity)}</td><td>${pct(r.lookalikeRate)}</td><td>${pct(r.colourFidelity)}</td><td>${pct(r.lookalikeColourRate)}</td><td>${pct(r.shapeAccuracy)}</td><td>${pct(r.backgroundAccuracy)}</td><td>${(r.masks.reduce((a, m) => a + m.subjectIoU, 0) / r.masks.length).toFixed(2)}</td></tr>`;
  const quality = input.modelQuality
    ? `<h2>The shipped toy models (held-out scenes)</h2><pre>${escape(JSON.stringify(input.modelQuality, null, 2))}</pre>`
    : '';
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>p3s demo</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; max-width: 1100px; }
.row { display: flex; flex-wrap: wrap; gap: 10px; }
figure { margin: 0; font-size: 12px; }
img { image-rendering: pixelated; border: 1px solid #ccc; }
.ok img { border: 2px solid #2a2; } .bad img { border: 2px solid #c33; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
td:first-child { text-align: left; }
</style></head><body>
<h1>p3s demo: one subject, chosen with two clicks</h1>
<p>The subject is the <b>${name(main.subject)}</b>; every reference photo also shows a look-alike of the same
shape. The models are the embedded toy models (models/toy, trained by <code>npm run train:toy</code>);
a separately trained probe judges every generated image. Whole run: ${input.seconds.toFixed(0)} s.</p>
<table><tr><th>run</th><th>subject's look (colour + pattern)</th><th>a look-alike's look</th><th>subject's colour</th><th>a look-alike's other colour</th><th>shape as prompted</th><th>background as prompted</th><th>mask IoU</th></tr>
${row('positive + negative point', main)}
${baseline ? row('positive point only', baseline) : ''}
</table>
<p>How far to trust the probe: it reads rendered scenes almost without error. On generated images its
colour + pattern count came close to a count by eye (5 against 6 to 8 of 16 on one subject), its
shape reading did not (1 star against 8 drawn): read the shape column as a lower bound (docs/toy.md).</p>
${settingsLine(input.settings)}
${experimentSection(main, from, 'With the negative point')}
${baseline ? experimentSection(baseline, from, 'Baseline: positive point only') : ''}
${quality}
</body></html>
`;
  writeFileSync(path, html);
}
