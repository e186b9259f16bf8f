// The report's pictures: reference photos with the clicks drawn over them beside the masks, and
// the generated images grouped by prompted context, the two runs side by side per seed with the
// base model's image for the same prompt and seed underneath.
import { relative } from 'node:path';
import type { Point } from '../../src/toyworld/scene.js';
import { describeObject } from '../../src/toyworld/captions.js';
import type {
  ExperimentResult,
  GeneratedVerdict,
  ReferenceClicks,
} from '../toymodels/experiment.js';
import { escapeHtml } from '../../src/io/html.js';

/** Image paths as the page links them: relative to its folder. */
export type Linker = (path: string) => string;
export const linker =
  (from: string): Linker =>
  (p) =>
    escapeHtml(relative(from, p));

/**
 * One click as SVG in the image's pixel units, at the pixel's centre: positive a filled green
 * disc with a white "+", negative a red ring with a "−". Each is drawn over a white halo so it
 * stays visible on any background colour.
 */
export function clickMarker(p: Point, kind: 'positive' | 'negative', size: number): string {
  const r = Math.max(2, size / 14);
  const [cx, cy] = [p.x + 0.5, p.y + 0.5];
  const w = r / 3;
  const bar = `M${cx - r / 2},${cy} H${cx + r / 2}`;
  const glyph = kind === 'positive' ? `${bar} M${cx},${cy - r / 2} V${cy + r / 2}` : bar;
  const body =
    kind === 'positive'
      ? `<circle cx="${cx}" cy="${cy}" r="${r}" fill="#1a9e1a" stroke="#fff" stroke-width="${w / 2}"/>` +
        `<path d="${glyph}" stroke="#fff" stroke-width="${w}"/>`
      : `<circle cx="${cx}" cy="${cy}" r="${r}" fill="none" stroke="#fff" stroke-width="${w * 2}"/>` +
        `<circle cx="${cx}" cy="${cy}" r="${r}" fill="none" stroke="#d62020" stroke-width="${w}"/>` +
        `<path d="${glyph}" stroke="#fff" stroke-width="${w * 2}"/><path d="${glyph}" stroke="#d62020" stroke-width="${w}"/>`;
  return `<g class="click ${kind}" data-x="${p.x}" data-y="${p.y}"><title>${kind} click at (${p.x}, ${p.y})</title>${body}</g>`;
}

/** A reference photo with its clicks over it (an SVG whose units are the photo's pixels). */
export function clickedReference(src: string, clicks: ReferenceClicks | undefined): string {
  if (!clicks) return `<img src="${src}" class="ref" alt="reference">`;
  const size = Math.max(clicks.width, clicks.height);
  const marks = [
    ...clicks.positive.map((p) => clickMarker(p, 'positive', size)),
    ...clicks.negative.map((p) => clickMarker(p, 'negative', size)),
  ].join('');
  return `<span class="clicked"><img src="${src}" class="ref" alt="reference with clicks"><svg viewBox="0 0 ${clicks.width} ${clicks.height}" preserveAspectRatio="none" aria-hidden="true">${marks}</svg></span>`;
}

/** One run's view of reference k: the photo with the clicks, the mask overlay, the filled photo. */
function referenceCells(r: ExperimentResult, k: number, link: Linker): string {
  const m = r.masks[k]!;
  return (
    `<td>${clickedReference(link(r.referencePaths[k]!), r.clicks[k])}</td>` +
    `<td><img src="${link(m.overlay)}" class="ref" alt="mask overlay"></td>` +
    `<td><img src="${link(m.filled)}" class="ref" alt="filled"></td>` +
    `<td class="num">${m.subjectIoU.toFixed(2)}</td>`
  );
}

/** Per reference photo, a row: the look-alike it shows, then each run's clicks, masks and IoU. */
export function referencesTable(runs: ExperimentResult[], link: Linker): string {
  const label = (r: ExperimentResult) =>
    r.negativePoint ? 'with negative click' : 'positive click only';
  const head =
    `<tr><th rowspan="2">photo</th><th rowspan="2">look-alike in it</th>` +
    runs.map((r) => `<th colspan="4">${label(r)}</th>`).join('') +
    `</tr>\n<tr>` +
    runs
      .map(
        () =>
          '<th>clicks</th><th>masks: subject green, look-alike red</th><th>filled (what fine-tuning sees)</th><th>subject-mask IoU</th>',
      )
      .join('') +
    '</tr>';
  const rows = runs[0]!.masks.map(
    (_, k) =>
      `<tr><td>reference ${k + 1}</td><td>${escapeHtml(describeObject(runs[0]!.lookalikes[k]!))}</td>` +
      runs.map((r) => referenceCells(r, k, link)).join('') +
      '</tr>',
  );
  return `<table class="refs">\n${head}\n${rows.join('\n')}\n</table>`;
}

/** The probe's reading of one image and what it makes of it. */
export function verdict(g: GeneratedVerdict): string {
  const read = `${g.seen.colour} ${g.seen.pattern} ${g.seen.shape}, ${g.seen.background}`;
  const what = g.isSubject
    ? "✓ subject's look"
    : g.isLookalike
      ? "✗ a look-alike's look"
      : '✗ other look';
  return `${what}<br><span class="read">probe read: ${escapeHtml(read)}</span>`;
}

/** One generated image with its verdict, framed green when it carries the subject's look. */
function generatedFigure(g: GeneratedVerdict | undefined, run: string, link: Linker): string {
  if (!g)
    return `<figure class="missing"><figcaption>${escapeHtml(run)}: no image</figcaption></figure>`;
  return `<figure class="gen ${g.isSubject ? 'ok' : 'bad'}" data-run="${escapeHtml(run)}" data-seed="${g.seed}"><img src="${link(g.path)}" title="${escapeHtml(g.prompt)}" alt="${escapeHtml(g.prompt)}"><figcaption><b>${escapeHtml(run)}</b><br>${verdict(g)}</figcaption></figure>`;
}

export interface ContextRuns {
  selective: ExperimentResult;
  positiveOnly: ExperimentResult | null;
}

/** Contexts in the order the run generated them, and each one's seeds. */
function contexts(runs: ContextRuns): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const g of runs.selective.generated) {
    const seeds = out.get(g.background) ?? [];
    if (!seeds.includes(g.seed)) seeds.push(g.seed);
    out.set(g.background, seeds);
  }
  return out;
}

const find = (list: readonly GeneratedVerdict[] | undefined, context: string, seed: number) =>
  list?.find((g) => g.background === context && g.seed === seed);

/** Per prompted context: a column per seed, P3S's runs side by side, the base model beneath. */
export function contextGroups(runs: ContextRuns, link: Linker): string {
  const { selective, positiveOnly } = runs;
  const base = selective.baseModel?.generated;
  return [...contexts(runs)]
    .map(([context, seeds]) => {
      const prompt = find(selective.generated, context, seeds[0]!)?.prompt ?? context;
      const p3s = seeds.map((s) => {
        const pair = [
          generatedFigure(find(selective.generated, context, s), 'with negative click', link),
        ];
        if (positiveOnly)
          pair.push(
            generatedFigure(find(positiveOnly.generated, context, s), 'positive click only', link),
          );
        return `<td><div class="pair">${pair.join('')}</div></td>`;
      });
      const baseRow = base
        ? `<tr class="base"><th>base model, no adapter<br><span class="read">same prompt and seed</span></th>${seeds.map((s) => `<td>${generatedFigure(find(base, context, s), 'base model', link)}</td>`).join('')}</tr>`
        : '';
      return `<table class="context" data-context="${escapeHtml(context)}">
<caption>${escapeHtml(context)}: “${escapeHtml(prompt)}”</caption>
<tr><th></th>${seeds.map((s) => `<th>seed ${s}</th>`).join('')}</tr>
<tr class="p3s"><th>P3S fine-tuned</th>${p3s.join('')}</tr>
${baseRow}
</table>`;
    })
    .join('\n');
}
