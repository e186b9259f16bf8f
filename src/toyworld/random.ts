// Seeded randomness for the toy world: a tiny PRNG (mulberry32) plus stateless integer hashes
// for procedural noise. Everything here is integer arithmetic on 32-bit words, so the same seed
// gives the same bytes on every platform and Node version.

/** Largest seed accepted: seeds are unsigned 32-bit integers. */
export const MAX_SEED = 0xffffffff;

export function assertSeed(seed: number, name = 'seed'): void {
  if (!Number.isInteger(seed) || seed < 0 || seed > MAX_SEED) {
    throw new RangeError(
      `Expected an integer in [0, ${MAX_SEED}] for ${name} but received ${String(seed)}`,
    );
  }
}

/** murmur3's finaliser: a cheap bijective avalanche on 32-bit words. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Hash of up to three integers to an unsigned 32-bit word. */
export function hash32(a: number, b = 0, c = 0): number {
  let h = fmix32((a | 0) ^ 0x9e3779b9);
  h = fmix32(h ^ Math.imul(b | 0, 0x85ebca77));
  return fmix32(h ^ Math.imul(c | 0, 0xc2b2ae3d));
}

/** Hash of up to three integers to a float in [0, 1). */
export function hashUnit(a: number, b = 0, c = 0): number {
  return hash32(a, b, c) / 4294967296;
}

/**
 * mulberry32: one 32-bit word of state, good enough statistics for procedural content, and fast.
 * The seed goes through fmix32 first so consecutive seeds give unrelated streams.
 */
export class Rng {
  private state: number;

  constructor(seed: number) {
    assertSeed(seed);
    this.state = fmix32(seed ^ 0x5bd1e995) | 0;
  }

  /** Uniform float in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform unsigned 32-bit integer (used to seed sub-streams). */
  uint32(): number {
    return Math.floor(this.next() * 4294967296) >>> 0;
  }

  /** Uniform float in [lo, hi). */
  range(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('Cannot pick from an empty list');
    return items[this.int(items.length)]!;
  }

  /** A shuffled copy (Fisher–Yates). */
  shuffled<T>(items: readonly T[]): T[] {
    const out = items.slice();
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = out[i]!;
      out[i] = out[j]!;
      out[j] = tmp;
    }
    return out;
  }

  /** An independent stream, so that adding draws to one part of a scene leaves the others alone. */
  fork(): Rng {
    return new Rng(this.uint32());
  }
}

/**
 * A cheaper lattice hash for noise (one mixing round instead of three): noise calls it four times
 * per octave per subsample, and this is where background rendering spends its time.
 */
export function latticeUnit(ix: number, iy: number, seed: number): number {
  let h = Math.imul(ix, 0x27d4eb2d) ^ Math.imul(iy, 0x165667b1) ^ Math.imul(seed, 0x9e3779b1);
  h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d);
  h = Math.imul(h ^ (h >>> 12), 0x297a2d39);
  h ^= h >>> 15;
  return (h >>> 0) / 4294967296;
}

/** Smooth 2-D value noise in [0, 1): hashed lattice values, smoothstep interpolation. */
export function valueNoise(x: number, y: number, seed: number): number {
  const ix = Math.floor(x);
  const iy = Math.floor(y);
  const fx = x - ix;
  const fy = y - iy;
  const sx = fx * fx * (3 - 2 * fx);
  const sy = fy * fy * (3 - 2 * fy);
  const a = latticeUnit(ix, iy, seed);
  const b = latticeUnit(ix + 1, iy, seed);
  const c = latticeUnit(ix, iy + 1, seed);
  const d = latticeUnit(ix + 1, iy + 1, seed);
  const top = a + (b - a) * sx;
  const bottom = c + (d - c) * sx;
  return top + (bottom - top) * sy;
}

/** Two octaves of value noise, still in [0, 1). */
export function fractalNoise(x: number, y: number, seed: number): number {
  return (valueNoise(x, y, seed) * 2 + valueNoise(x * 2.03, y * 2.03, seed + 1)) / 3;
}

/**
 * Value noise over a fixed window of noise coordinates, with the lattice hashed once into a table:
 * same values as valueNoise (points outside the window fall back to hashing), several times faster
 * when a background samples it 16 k times per scene.
 */
export class NoiseField {
  private readonly x0: number;
  private readonly y0: number;
  private readonly w: number;
  private readonly h: number;
  private readonly table: Float32Array;

  constructor(
    private readonly seed: number,
    xMin: number,
    xMax: number,
    yMin: number,
    yMax: number,
  ) {
    this.x0 = Math.floor(xMin);
    this.y0 = Math.floor(yMin);
    this.w = Math.floor(xMax) - this.x0 + 2;
    this.h = Math.floor(yMax) - this.y0 + 2;
    this.table = new Float32Array(this.w * this.h);
    for (let j = 0; j < this.h; j++) {
      for (let i = 0; i < this.w; i++) {
        this.table[j * this.w + i] = latticeUnit(this.x0 + i, this.y0 + j, seed);
      }
    }
  }

  at(x: number, y: number): number {
    const ix = Math.floor(x);
    const iy = Math.floor(y);
    const i = ix - this.x0;
    const j = iy - this.y0;
    if (i < 0 || j < 0 || i + 1 >= this.w || j + 1 >= this.h) return valueNoise(x, y, this.seed);
    const fx = x - ix;
    const fy = y - iy;
    const sx = fx * fx * (3 - 2 * fx);
    const sy = fy * fy * (3 - 2 * fy);
    const k = j * this.w + i;
    const t = this.table;
    const top = t[k]! + (t[k + 1]! - t[k]!) * sx;
    const bottom = t[k + this.w]! + (t[k + this.w + 1]! - t[k + this.w]!) * sx;
    return top + (bottom - top) * sy;
  }
}

/** fractalNoise over a window, from two NoiseFields. */
export class FractalField {
  private readonly a: NoiseField;
  private readonly b: NoiseField;

  constructor(seed: number, xMin: number, xMax: number, yMin: number, yMax: number) {
    this.a = new NoiseField(seed, xMin, xMax, yMin, yMax);
    this.b = new NoiseField(seed + 1, xMin * 2.03, xMax * 2.03, yMin * 2.03, yMax * 2.03);
  }

  at(x: number, y: number): number {
    return (this.a.at(x, y) * 2 + this.b.at(x * 2.03, y * 2.03)) / 3;
  }
}
