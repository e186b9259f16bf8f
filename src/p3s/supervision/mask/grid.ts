// Row-major 2-D grids and the argument checks shared by the mask modules.
// Cell (x, y) of an h×w grid lives at index y * w + x: x is the column, y the row.

/** A float grid: similarity maps arrive as Float32Array; the pipeline works in Float64Array. */
export type FloatGrid = Float32Array | Float64Array;

/** A point in grid coordinates: x is the column, y the row; fractional values fall in cell ⌊x⌋, ⌊y⌋. */
export interface GridPoint {
  x: number;
  y: number;
}

export function assertPositiveInteger(value: number, name: string): void {
  if (!Number.isInteger(value) || value <= 0) {
    throw new Error(`Expected a positive integer for ${name} but received ${value}`);
  }
}

/** Checks h and w and that `data` holds exactly h×w cells. */
export function assertGrid(data: ArrayLike<number>, h: number, w: number, name: string): void {
  assertPositiveInteger(h, `${name} height`);
  assertPositiveInteger(w, `${name} width`);
  if (data.length !== h * w) {
    throw new Error(
      `Expected ${name} to hold ${h}×${w} = ${h * w} values but received ${data.length}`,
    );
  }
}

/** Index of the cell holding `point`; throws a clear Error when the point lies outside the grid. */
export function cellIndexOf(point: GridPoint, h: number, w: number): number {
  const { x, y } = point;
  if (!(x >= 0 && x < w && y >= 0 && y < h)) {
    throw new Error(
      `Expected a point inside the ${w}×${h} grid (0 ≤ x < ${w}, 0 ≤ y < ${h}) but received (${x}, ${y})`,
    );
  }
  return Math.floor(y) * w + Math.floor(x);
}

/**
 * Maps a pixel position in an image of imageH×imageW to the grid that covers it (e.g. CLIP's
 * 16×16 patches over a 224×224 crop). Pixel centres are used, so the result always falls in the
 * patch that contains the pixel.
 */
export function imageToGridPoint(
  point: GridPoint,
  imageH: number,
  imageW: number,
  h: number,
  w: number,
): GridPoint {
  assertPositiveInteger(imageH, 'image height');
  assertPositiveInteger(imageW, 'image width');
  if (!(point.x >= 0 && point.x < imageW && point.y >= 0 && point.y < imageH)) {
    throw new Error(
      `Expected a point inside the ${imageW}×${imageH} image but received (${point.x}, ${point.y})`,
    );
  }
  return { x: (point.x * w) / imageW, y: (point.y * h) / imageH };
}
