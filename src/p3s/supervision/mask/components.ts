// Connected components, for "remove outliers that are not connected to the specified points"
// after Eq. (2).
import { assertGrid, cellIndexOf, type GridPoint } from './grid.js';

/** 4: edge neighbours (scipy.ndimage.label's default structure); 8: edges and corners. */
export type Connectivity = 4 | 8;

export interface Labeling {
  /** 0 for background, 1..count for components, numbered in raster order of their first cell. */
  labels: Int32Array;
  count: number;
  height: number;
  width: number;
  /** areas[k] is the number of cells of label k + 1. */
  areas: number[];
}

/**
 * scipy.ndimage.label on an h×w binary grid (non-zero = foreground). Components are numbered in
 * the order a raster scan first meets them, which is scipy's numbering, so label maps compare
 * equal cell for cell.
 */
export function labelComponents(
  binary: Uint8Array,
  h: number,
  w: number,
  connectivity: Connectivity = 4,
): Labeling {
  assertGrid(binary, h, w, 'binary mask');
  if (connectivity !== 4 && connectivity !== 8) {
    throw new Error(`Expected connectivity 4 or 8 but received ${connectivity}`);
  }
  const labels = new Int32Array(h * w);
  const areas: number[] = [];
  const stack = new Int32Array(h * w);
  const diagonal = connectivity === 8;
  let count = 0;
  for (let start = 0; start < h * w; start++) {
    if (!binary[start] || labels[start]) continue;
    const label = ++count;
    let area = 0;
    let top = 0;
    labels[start] = label;
    stack[top++] = start;
    while (top > 0) {
      const i = stack[--top];
      area++;
      const y = (i / w) | 0;
      const x = i - y * w;
      for (let dy = -1; dy <= 1; dy++) {
        const ny = y + dy;
        if (ny < 0 || ny >= h) continue;
        for (let dx = -1; dx <= 1; dx++) {
          if ((dx === 0 && dy === 0) || (!diagonal && dx !== 0 && dy !== 0)) continue;
          const nx = x + dx;
          if (nx < 0 || nx >= w) continue;
          const j = ny * w + nx;
          if (binary[j] && !labels[j]) {
            labels[j] = label;
            stack[top++] = j;
          }
        }
      }
    }
    areas.push(area);
  }
  return { labels, count, height: h, width: w, areas };
}

/**
 * The label of the component closest to `point` (squared distance between cell indices, ties to
 * the lower label), or 0 when there are no components. Throws if the point is off the grid.
 */
export function nearestComponent(labeling: Labeling, point: GridPoint): number {
  const { labels, height: h, width: w } = labeling;
  const cell = cellIndexOf(point, h, w);
  const py = (cell / w) | 0;
  const px = cell - py * w;
  let best = 0;
  let bestDistance = Infinity;
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i];
    if (!label) continue;
    const dy = ((i / w) | 0) - py;
    const dx = (i % w) - px;
    const d = dx * dx + dy * dy;
    if (d < bestDistance || (d === bestDistance && label < best)) {
      bestDistance = d;
      best = label;
    }
  }
  return best;
}

export interface KeptComponents {
  /** 1 on the cells of the kept components. */
  mask: Uint8Array;
  /** Kept labels, ascending. */
  keptLabels: number[];
  /** The points whose cell is background; they kept nothing. */
  missedPoints: GridPoint[];
}

/** Keeps the components that contain at least one of `points`; throws if a point is off the grid. */
export function keepComponentsContaining(
  labeling: Labeling,
  points: readonly GridPoint[],
): KeptComponents {
  const { labels, height: h, width: w } = labeling;
  const keep = new Set<number>();
  const missedPoints: GridPoint[] = [];
  for (const p of points) {
    const label = labels[cellIndexOf(p, h, w)];
    if (label) keep.add(label);
    else missedPoints.push(p);
  }
  return { ...maskOfLabels(labeling, keep), missedPoints };
}

/** A binary mask of the cells whose label is in `keep`. */
export function maskOfLabels(
  labeling: Labeling,
  keep: ReadonlySet<number>,
): { mask: Uint8Array; keptLabels: number[] } {
  const { labels } = labeling;
  const mask = new Uint8Array(labels.length);
  for (let i = 0; i < labels.length; i++) if (keep.has(labels[i])) mask[i] = 1;
  return { mask, keptLabels: [...keep].sort((a, b) => a - b) };
}
