// A mask that spread over the background, cut back to an object. Subject and look-alike are
// objects alike, so each click's mask should be about the other's size. When Otsu splits a click's
// map badly (the background scores above the threshold: the demo's night sky for the look-alike, a
// brick wall of the subject's own colour for the subject), its mask takes in the background, and
// training would learn the background as the subject or Eq. (3) would fill the whole scene.
import { keepComponentsContaining, labelComponents } from './components.js';
import type { GridPoint } from './grid.js';
import { countSet, type MaskResult } from './mask_result.js';
import { thresholdOtsu } from './otsu.js';
import { sampleGrid } from './pixel_mask.js';
import { resizeBilinear } from './resize.js';

/** A mask over this many times the other click's mask's area is taken to have spread. */
export const SPREAD_AREA_LIMIT = 3;

/**
 * Cuts a spread mask in place: first to the disks around its clicks (pixel units) whose radius is
 * 1.5× the other mask's equivalent radius (at least one eighth of the photo's width), then, inside
 * that cut, to the pixels whose similarity passes Otsu's threshold of the cut's own pixels, kept
 * to the components under the clicks: the background that passed the photo's threshold scores
 * below the object the click is on. The result records the fallback. Masks within the limit are
 * left alone.
 */
export function boundSpreadMask(
  spread: MaskResult,
  other: MaskResult,
  points: readonly GridPoint[],
  which: 'subject' | 'look-alike',
): void {
  const limit = SPREAD_AREA_LIMIT * Math.max(other.maskArea, 1);
  if (spread.maskArea <= limit || points.length === 0) return;
  const before = spread.maskArea;
  const radius = Math.max(1.5 * Math.sqrt(other.maskArea / Math.PI), spread.width / 8);
  cutToDisks(spread, points, radius);
  const tightened = tightenToClicks(spread, points);
  if (tightened) spread.mask.set(tightened);
  spread.maskArea = countSet(spread.mask);
  spread.gridMask = sampleGrid(
    spread.mask,
    spread.height,
    spread.width,
    spread.gridHeight,
    spread.gridWidth,
  );
  const [them, click] =
    which === 'subject' ? ["look-alike's", 'positive'] : ["subject's", 'negative'];
  spread.fallbacks.push({
    code: `${which}-mask-bounded`,
    message:
      `The ${which} mask covered ${before} px, over ${SPREAD_AREA_LIMIT}× the ${them} ` +
      `${other.maskArea}; it was cut to ${radius.toFixed(0)} px around the ${click} click` +
      `${tightened ? ' and to what is most like the click there' : ''} (${spread.maskArea} px).`,
  });
}

/** Clears the pixels farther than `radius` from every point. */
function cutToDisks(m: MaskResult, points: readonly GridPoint[], radius: number): void {
  for (let i = 0; i < m.mask.length; i++) {
    if (!m.mask[i]) continue;
    const x = (i % m.width) + 0.5;
    const y = Math.floor(i / m.width) + 0.5;
    if (!points.some((p) => (x - p.x) ** 2 + (y - p.y) ** 2 <= radius ** 2)) m.mask[i] = 0;
  }
}

/** The mask's pixels above Otsu's split of their own soft-map scores, under the points; or null. */
function tightenToClicks(m: MaskResult, points: readonly GridPoint[]): Uint8Array | null {
  const score = resizeBilinear(m.softMap, m.gridHeight, m.gridWidth, m.height, m.width);
  const inside: number[] = [];
  for (let i = 0; i < m.mask.length; i++) if (m.mask[i]) inside.push(score[i]!);
  if (inside.length === 0) return null;
  const { threshold, degenerate } = thresholdOtsu(inside);
  if (degenerate) return null;
  const foreground = m.mask.map((v, i) => (v && score[i]! > threshold ? 1 : 0));
  const kept = keepComponentsContaining(labelComponents(foreground, m.height, m.width), points);
  // a click below the cut's own threshold: the disks alone are the better guess
  return kept.missedPoints.length > 0 ? null : kept.mask;
}
