// eval.html: the scores of `p3s eval` as a page a person reads — the overall row with what each
// metric is, the real photos, then each prompt's images with their own scores, so a low number
// can be checked against the pictures. Static and offline: images are linked relative to the
// page, which sits beside eval.json.
import { dirname, relative, sep } from 'node:path';
import { escapeHtml } from '../io/html.js';
import { writeFileAtomic } from '../io/png.js';
import {
  EVAL_DEFINITIONS,
  metricCell,
  SCORE_COLUMNS,
  selectiveRows,
  selectiveShare,
} from './eval_report.js';
import type { EvalResult, ImageScores, MetricScores } from './score.js';
import type { ProbeVerdict, SelectiveScores } from './probe_fidelity.js';
import type { ObjectAttributes } from '../toyworld/attributes.js';
import { describeObject } from '../toyworld/captions.js';

const STYLE = `body{font:14px system-ui,sans-serif;margin:24px;max-width:1200px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px}
td.num{text-align:right;font-variant-numeric:tabular-nums}td.explain{color:#555;font-size:12px}
.grid{display:flex;flex-wrap:wrap;gap:8px}figure{margin:0;width:136px;font-size:11px}
figure img{width:128px;height:128px;image-rendering:pixelated;object-fit:cover;border:1px solid #999}`;

/** A file's src as seen from the page's folder (forward slashes, escaped). */
function link(pageDir: string, file: string): string {
  return escapeHtml(relative(pageDir, file).split(sep).join('/'));
}

function scoreRow(label: string, images: number, s: MetricScores): string {
  const cells = SCORE_COLUMNS.map(([k]) => `<td class="num">${metricCell(s[k], k)}</td>`);
  return `<tr><td>${escapeHtml(label)}</td><td class="num">${images}</td>${cells.join('')}</tr>`;
}

function scoresTable(result: EvalResult): string {
  const head = `<tr><th>prompt</th><th>images</th>${SCORE_COLUMNS.map(([, n]) => `<th>${n}</th>`).join('')}</tr>`;
  const rows = [
    scoreRow('overall', result.counts.images, result.scores),
    ...result.perPrompt.map((p) => scoreRow(p.prompt, p.images, p.scores)),
  ];
  return `<table>${head}${rows.join('')}</table>`;
}

function definitions(): string {
  const rows = SCORE_COLUMNS.map(
    ([k, name]) =>
      `<tr><td>${name}</td><td class="explain">${escapeHtml(EVAL_DEFINITIONS[k])}</td></tr>`,
  );
  return `<table>${rows.join('')}</table><p>${escapeHtml(EVAL_DEFINITIONS.scale)}.</p>`;
}

function selectiveTable(sel: SelectiveScores | null): string {
  if (sel === null) return '';
  const rows = selectiveRows(sel).map(
    (r) =>
      `<tr><td>${escapeHtml(r.label)}</td><td class="num">${r.count}/${r.of}</td><td class="num">${selectiveShare(r.count, r.of)}</td><td class="explain">${escapeHtml(r.explain)}</td></tr>`,
  );
  return `<h2>Selective fidelity (toy world)</h2><p class="explain">The attribute probe (${escapeHtml(sel.probe)}) reads each generated image.</p><table>${rows.join('')}</table>`;
}

/** The probe's reading of an image, as its caption shows it. */
function verdictLine(v: ProbeVerdict | undefined): string {
  if (v === undefined) return '';
  const look = v.isSubject ? 'subject' : v.isLookalike ? 'look-alike' : 'neither';
  const seen = `${describeObject(v.seen as ObjectAttributes)}, ${v.seen.background}`;
  return `<br>probe: ${escapeHtml(seen)} → ${look}`;
}

function figure(pageDir: string, image: ImageScores, verdict?: ProbeVerdict): string {
  const dino = image.dino === null ? '' : ` · DINO ${image.dino.toFixed(3)}`;
  const name = escapeHtml(image.path.split(sep).pop() ?? image.path);
  return `<figure><img src="${link(pageDir, image.path)}" alt="${escapeHtml(image.prompt)}"><figcaption>${name}<br>CLIP-I ${image.clipI.toFixed(3)} · CLIP-T ${image.clipT.toFixed(3)}${dino}${verdictLine(verdict)}</figcaption></figure>`;
}

function promptSections(pageDir: string, result: EvalResult): string {
  const verdicts = new Map(result.selective?.perImage.map((v) => [v.path, v]));
  return result.perPrompt
    .map((p) => {
      const images = result.perImage.filter((i) => i.prompt === p.prompt);
      const figures = images.map((i) => figure(pageDir, i, verdicts.get(i.path)));
      return `<h3>“${escapeHtml(p.prompt)}”</h3><p class="explain">CLIP-T compared with “${escapeHtml(p.clipPrompt)}”</p><div class="grid">${figures.join('')}</div>`;
    })
    .join('\n');
}

/** A metric's name as the tables show it ("dinoV" → "DINO-v"). */
const metricName = (key: string): string => SCORE_COLUMNS.find(([k]) => k === key)?.[1] ?? key;

/** The page's HTML, its links relative to `pagePath`'s folder. */
export function evalPage(result: EvalResult, pagePath: string): string {
  const dir = dirname(pagePath);
  const real = result.references
    .map((r) => `<figure><img src="${link(dir, r)}" alt="real photo"></figure>`)
    .join('');
  const missing =
    result.notMeasured.length > 0
      ? `<p>Not measured: ${escapeHtml(result.notMeasured.map(metricName).join(', '))} (DINO needs <code>--dino &lt;ViT folder&gt;</code>).</p>`
      : '';
  return `<!doctype html><html><head><meta charset="utf-8"><title>p3s eval</title>
<style>${STYLE}</style></head><body>
<h1>p3s eval: ${result.counts.images} generated images, ${result.counts.references} real photos</h1>
<h2>Scores</h2>${scoresTable(result)}${missing}
${selectiveTable(result.selective)}
<h2>What they measure</h2>${definitions()}
<h2>Real photos</h2><div class="grid">${real}</div>
<h2>Generated images by prompt</h2>
${promptSections(dir, result)}
</body></html>
`;
}

/** Writes eval.html atomically. */
export async function writeEvalPage(path: string, result: EvalResult): Promise<void> {
  await writeFileAtomic(path, new TextEncoder().encode(evalPage(result, path)));
}
