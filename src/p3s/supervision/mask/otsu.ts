// Otsu's threshold of Eq. (2), computed as skimage.filters.threshold_otsu (0.19) does on float
// data: a numpy histogram of nbins equal bins over [min, max], bin centres, cumulative class
// weights and means, and the first argmax of the between-class variance.

export interface OtsuThreshold {
  /** Threshold: values strictly greater than it are foreground (skimage's `image > thresh`). */
  threshold: number;
  /**
   * True when every value is equal. Otsu has no split then; like skimage, the threshold is that
   * value, so `value > threshold` selects nothing. Callers decide what an empty split means.
   */
  degenerate: boolean;
}

export interface Histogram {
  /** Values per bin (as float64 numbers; exact integers). */
  counts: Float64Array;
  /** nbins + 1 edges; bin i is [edges[i], edges[i + 1]), the last bin also holds its right edge. */
  edges: Float64Array;
  /** (edges[i] + edges[i + 1]) / 2, as skimage.exposure.histogram returns them. */
  binCenters: Float64Array;
}

/**
 * numpy.histogram(values, bins=nbins) over [min, max] as numpy 1.24 computes it for float64
 * data (the histogram skimage's threshold_otsu uses): linspace edges, the index
 * ⌊(v − min)·nbins / (max − min)⌋ and numpy's one-ULP corrections against the edges. An
 * all-equal input gets the range [v − 0.5, v + 0.5], as in numpy.
 */
export function histogram(values: ArrayLike<number>, nbins = 256): Histogram {
  if (!Number.isInteger(nbins) || nbins < 1) {
    throw new Error(`Expected a positive integer for nbins but received ${nbins}`);
  }
  if (values.length === 0) {
    throw new Error('Expected at least one value to histogram but received none');
  }
  let min = Infinity;
  let max = -Infinity;
  for (let k = 0; k < values.length; k++) {
    const v = values[k];
    if (!Number.isFinite(v)) {
      throw new Error(`Expected finite values to histogram but value ${k} is ${v}`);
    }
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (min === max) {
    min -= 0.5;
    max += 0.5;
  }
  // np.linspace: edge i = i·step + min, the last edge is max itself.
  const step = (max - min) / nbins;
  const edges = new Float64Array(nbins + 1);
  for (let i = 0; i < nbins; i++) edges[i] = i * step + min;
  edges[nbins] = max;
  const norm = nbins / (max - min);
  const counts = new Float64Array(nbins);
  for (let k = 0; k < values.length; k++) {
    const v = values[k];
    let i = Math.trunc((v - min) * norm);
    if (i === nbins) i -= 1;
    // numpy's corrections, so that the bins agree with the edges it returns.
    if (v < edges[i]) i -= 1;
    else if (v >= edges[i + 1] && i !== nbins - 1) i += 1;
    counts[i] += 1;
  }
  const binCenters = new Float64Array(nbins);
  for (let i = 0; i < nbins; i++) binCenters[i] = (edges[i] + edges[i + 1]) / 2;
  return { counts, edges, binCenters };
}

/**
 * skimage.filters.threshold_otsu(values, nbins). Throws on empty input, on NaN or ±Infinity
 * (numpy.histogram refuses them too) and on nbins < 2 (no split exists). All-equal input is not
 * an error: see {@link OtsuThreshold.degenerate}.
 */
export function thresholdOtsu(values: ArrayLike<number>, nbins = 256): OtsuThreshold {
  if (!Number.isInteger(nbins) || nbins < 2) {
    throw new Error(`Expected an integer nbins ≥ 2 but received ${nbins}`);
  }
  const { counts, binCenters: centres } = histogram(values, nbins);
  // skimage returns the value itself when all values are equal (the histogram has one class).
  const first = values[0];
  let degenerate = true;
  for (let k = 1; k < values.length && degenerate; k++) degenerate = values[k] === first;
  if (degenerate) return { threshold: first, degenerate };

  // Class 2 (above the split) sums, accumulated from the top as skimage's reversed cumsum.
  const weight2 = new Float64Array(nbins);
  const sum2 = new Float64Array(nbins);
  let w = 0;
  let s = 0;
  for (let i = nbins - 1; i >= 0; i--) {
    w += counts[i];
    s += counts[i] * centres[i];
    weight2[i] = w;
    sum2[i] = s;
  }
  // Split after bin i: class 1 = bins 0..i, class 2 = bins i+1..; the first maximum wins.
  let best = -Infinity;
  let bestIndex = 0;
  let weight1 = 0;
  let sum1 = 0;
  for (let i = 0; i < nbins - 1; i++) {
    weight1 += counts[i];
    sum1 += counts[i] * centres[i];
    const d = sum1 / weight1 - sum2[i + 1] / weight2[i + 1];
    const variance = weight1 * weight2[i + 1] * (d * d);
    if (variance > best) {
      best = variance;
      bestIndex = i;
    }
  }
  return { threshold: centres[bestIndex], degenerate: false };
}
