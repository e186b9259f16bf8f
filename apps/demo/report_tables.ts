// Tables of numbers for the demo's report: every number sits in a row that says in one line what
// it measures, with its chance level where guessing has one, so nobody needs the JSON to read it.

import { escapeHtml } from '../../src/io/html.js';

/** A share as a percentage: one decimal, two below 1 % so that small chance levels do not read 0. */
export function pct(x: number): string {
  const v = 100 * x;
  const digits = v !== 0 && Math.abs(v) < 1 ? 2 : 1;
  return `${v.toFixed(digits).replace(/\.?0+$/, '')} %`;
}

/** How a row's values read: shares as percentages, IoUs and other plain values as they are. */
export type ValueFormat = 'share' | 'iou' | 'count' | 'seconds';

export interface NumberRow {
  label: string;
  /** One per value column; undefined shows as a dash (not measured, or not in this file). */
  values: (number | undefined)[];
  format: ValueFormat;
  /** What a uniform guess scores, where that means something. */
  chance?: number;
  explain: string;
}

/** A band of rows under a heading row (the measurement's setting: what, on how many). */
export interface NumberGroup {
  heading: string;
  rows: NumberRow[];
}

function formatValue(v: number | undefined, format: ValueFormat): string {
  if (v === undefined || !Number.isFinite(v)) return '—';
  if (format === 'share') return pct(v);
  if (format === 'iou') return v.toFixed(2);
  if (format === 'seconds') return `${v.toFixed(0)} s`;
  return String(v);
}

/** A table with a label, the value columns, chance and a one-line explanation per row. */
export function numberTable(columns: string[], groups: NumberGroup[], cls = 'numbers'): string {
  const shown = groups
    .map((g) => ({ ...g, rows: g.rows.filter((r) => r.values.some((v) => v !== undefined)) }))
    .filter((g) => g.rows.length > 0);
  if (shown.length === 0) return '';
  const width = columns.length + 3;
  const head = `<tr><th>measure</th>${columns.map((c) => `<th>${escapeHtml(c)}</th>`).join('')}<th>chance</th><th>what it measures</th></tr>`;
  const body = shown.map((g) => {
    const rows = g.rows.map(
      (r) =>
        `<tr><td>${escapeHtml(r.label)}</td>${r.values.map((v) => `<td class="num">${formatValue(v, r.format)}</td>`).join('')}` +
        `<td class="num">${r.chance === undefined ? '—' : pct(r.chance)}</td><td class="explain">${escapeHtml(r.explain)}</td></tr>`,
    );
    return `<tr class="group"><th colspan="${width}">${escapeHtml(g.heading)}</th></tr>\n${rows.join('\n')}`;
  });
  return `<table class="${cls}">\n${head}\n${body.join('\n')}\n</table>`;
}

export { CHANCE } from '../../src/toyworld/attributes.js';
