// What `p3s eval` leaves behind: eval.json (the scores with what they were computed from and
// the exact definitions) and the table it prints.
import { writeJsonAtomic } from '../io/json_file.js';
import type { EvalResult, MetricScores } from './score.js';
import type { SelectiveScores } from './probe_fidelity.js';

/** The format name eval.json carries, so a reader can tell versions apart. */
export const EVAL_FORMAT = 'p3s-eval/1';

/** Each metric's definition: the metrics.ts function and what it compares. */
export const EVAL_DEFINITIONS: Readonly<Record<keyof MetricScores | 'scale', string>> = {
  clipI:
    'CLIP-I, clipImageScore: mean cosine of CLIPVisionModelWithProjection imageEmbeds (unnormalised) over all generated × real pairs',
  clipIv:
    'CLIP-Iv, clipImageVariance: population variance over generated images of each one’s mean CLIP-I cosine to the real photos',
  clipT:
    'CLIP-T, clipTextScore: mean over generated images of cos(imageEmbeds, CLIPTextModelWithProjection textEmbeds of clipTextPrompt(prompt, identifier, class word))',
  dino: 'DINO, dinoScore: mean cosine of ViTModel CLS tokens after the final layernorm (clsEmbeddings) over all generated × real pairs',
  dinoV:
    'DINO-v, dinoVariance: population variance over generated images of each one’s mean DINO cosine to the real photos',
  scale: 'cosines in [-1, 1], not multiplied by 100; null: not measured',
};

/** eval.json's object. */
export function evalJson(result: EvalResult): Record<string, unknown> {
  return { format: EVAL_FORMAT, ...result, definitions: EVAL_DEFINITIONS };
}

/** Writes eval.json atomically: a reader never sees half a file. */
export function writeEvalJson(path: string, result: EvalResult): void {
  writeJsonAtomic(path, evalJson(result));
}

/** The metrics as tables show them, in order. */
export const SCORE_COLUMNS: readonly [keyof MetricScores, string][] = [
  ['clipI', 'CLIP-I'],
  ['clipIv', 'CLIP-Iv'],
  ['clipT', 'CLIP-T'],
  ['dino', 'DINO'],
  ['dinoV', 'DINO-v'],
];

/** A score as tables show it; null (not measured) is a dash. */
export function metricCell(v: number | null, key: keyof MetricScores): string {
  if (v === null) return '—';
  // Variances are small (1e-3 and less): fixed decimals would show 0.0000.
  return key === 'clipIv' || key === 'dinoV' ? v.toExponential(2) : v.toFixed(4);
}

/** The scores as a text table: overall first, then a row per prompt. */
export function formatScoreTable(result: EvalResult): string {
  const rows: [string, string, MetricScores][] = [
    ['overall', String(result.counts.images), result.scores],
    ...result.perPrompt.map((p): [string, string, MetricScores] => [
      p.prompt,
      String(p.images),
      p.scores,
    ]),
  ];
  const header = ['prompt', 'images', ...SCORE_COLUMNS.map(([, name]) => name)];
  const body = rows.map(([label, n, s]) => [
    label,
    n,
    ...SCORE_COLUMNS.map(([k]) => metricCell(s[k], k)),
  ]);
  const widths = header.map((h, c) => Math.max(h.length, ...body.map((r) => r[c]!.length)));
  const line = (r: string[]) =>
    r.map((x, c) => (c === 0 ? x.padEnd(widths[c]!) : x.padStart(widths[c]!))).join('  ');
  const note =
    result.notMeasured.length > 0 ? ['— not measured (DINO needs --dino <ViT folder>)'] : [];
  const counts = `${result.counts.images} generated images, ${result.counts.references} real photos; cosines in [-1, 1]`;
  const selective = result.selective ? ['', ...formatSelective(result.selective)] : [];
  return [line(header), ...body.map(line), counts, ...note, ...selective].join('\n');
}

/** One selective column: what it counts, images counted, out of, and what it means. */
export interface SelectiveRow {
  label: string;
  count: number;
  of: number;
  explain: string;
}

/** The probe's columns as rows (those not measured left out). */
export function selectiveRows(sel: SelectiveScores): SelectiveRow[] {
  const n = (f: (v: SelectiveScores['perImage'][number]) => boolean, rows = sel.perImage) =>
    rows.filter(f).length;
  const rows: SelectiveRow[] = [
    {
      label: `subject's look (${sel.subject})`,
      count: n((v) => v.isSubject),
      of: sel.images,
      explain: 'the probe reads the subject’s colour, pattern and shape',
    },
  ];
  if (sel.lookalikeLook !== null)
    rows.push({
      label: `a look-alike's look (${sel.lookalikes.join(', ')})`,
      count: n((v) => v.isLookalike),
      of: sel.images,
      explain: 'the probe reads a look-alike’s colour and pattern: the subject confused',
    });
  if (sel.context !== null) {
    const named = sel.perImage.filter((v) => v.context !== null);
    rows.push({
      label: 'prompted context',
      count: n((v) => v.seen.background === v.context, named),
      of: named.length,
      explain: 'the background the prompt names, of the images whose prompt names one',
    });
  }
  return rows;
}

export const selectiveShare = (count: number, of: number) =>
  `${((100 * count) / Math.max(1, of)).toFixed(1)} %`;

function formatSelective(sel: SelectiveScores): string[] {
  const rows = selectiveRows(sel);
  const width = Math.max(...rows.map((r) => r.label.length));
  return [
    'Selective fidelity (toy world; the attribute probe reads each image):',
    ...rows.map(
      (r) =>
        `  ${r.label.padEnd(width)}  ${`${r.count}/${r.of}`.padStart(7)}  ${selectiveShare(r.count, r.of).padStart(7)}`,
    ),
  ];
}
