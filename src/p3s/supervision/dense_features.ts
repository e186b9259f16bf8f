// Denser patch grids from a ViT: the extractor runs on f × f copies of the photo shifted by
// fractions of a patch and interleaves their tokens, so the grid is f times finer in each
// direction while every token still sees one whole patch. Eq. (1)–(2) then work at that finer
// grid; for small subjects — a toy-world object spans two or three 8-px patches — the masks
// follow the object instead of the patch lattice. Costs f² forward passes.
import { stack } from '../../engine/ops.generated.js';
import { tidy } from '../../engine/scope.js';
import type { RgbImage } from '../../io/image.js';
import type { PatchFeatures } from './patch_similarity.js';
import type { PatchFeatureExtractor } from './rngr.js';

/** The photo translated by (dx, dy) pixels: out(x, y) = in(x + dx, y + dy), edges repeated. */
export function shiftImage(image: RgbImage, dx: number, dy: number): RgbImage {
  const { width: w, height: h, data } = image;
  const out = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    const sy = Math.min(h - 1, Math.max(0, y + dy));
    for (let x = 0; x < w; x++) {
      const sx = Math.min(w - 1, Math.max(0, x + dx));
      const from = (sy * w + sx) * 3;
      const to = (y * w + x) * 3;
      out[to] = data[from]!;
      out[to + 1] = data[from + 1]!;
      out[to + 2] = data[from + 2]!;
    }
  }
  return { width: w, height: h, data: out };
}

export class DensePatchExtractor implements PatchFeatureExtractor {
  constructor(
    readonly base: PatchFeatureExtractor,
    readonly factor: number,
  ) {
    if (!Number.isInteger(factor) || factor < 1 || factor > 8) {
      throw new RangeError(
        `Expected an integer in [1, 8] for the density factor but received ${factor}`,
      );
    }
  }

  extract(image: RgbImage): PatchFeatures {
    const f = this.factor;
    if (f === 1) return this.base.extract(image);
    const parts: PatchFeatures[] = [];
    let patchW = 0;
    let patchH = 0;
    try {
      for (let j = 0; j < f * f; j++) {
        const jy = Math.floor(j / f);
        const jx = j % f;
        if (j === 0) {
          // The unshifted grid tells the patch size in photo pixels.
          const probe = this.base.extract(image);
          patchW = probe.imageWidth / probe.gridW;
          patchH = probe.imageHeight / probe.gridH;
          probe.tokens.dispose();
        }
        // Sub-cell (jy, jx)'s token is centred at the dense cell's centre.
        const dx = Math.round(((jx + 0.5) / f - 0.5) * patchW);
        const dy = Math.round(((jy + 0.5) / f - 0.5) * patchH);
        parts.push(this.base.extract(shiftImage(image, dx, dy)));
      }
      const { gridH: gh, gridW: gw } = parts[0]!;
      const c = parts[0]!.tokens.shape[1]!;
      const tokens = tidy(() =>
        stack(
          parts.map((p) => p.tokens),
          0,
        ) // (f·f, gh·gw, C) with index jy·f + jx
          .reshape(f, f, gh, gw, c)
          .permute(2, 0, 3, 1, 4) // (gh, f, gw, f, C)
          .reshape(gh * f * gw * f, c),
      );
      return {
        tokens,
        gridH: gh * f,
        gridW: gw * f,
        imageWidth: image.width,
        imageHeight: image.height,
        patchSize: patchW,
      };
    } finally {
      for (const p of parts) p.tokens.dispose();
    }
  }
}
