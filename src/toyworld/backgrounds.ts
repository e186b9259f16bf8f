// Procedural backgrounds, the toy world's "contexts". Each is a painter: a closure built from a
// per-scene seed that returns the colour at a point (x, y) in [0, 1]², so backgrounds are
// resolution independent (96 px is the same scene as 64 px) and supersample like the objects.
// Per-scene variation comes from the seed: horizon heights, brick sizes, tree positions, ...

import type { BackgroundName, Rgb } from './attributes.js';
import { FractalField, NoiseField, Rng, hashUnit, latticeUnit } from './random.js';

/** Writes the colour (0–255 floats) at (x, y) into out[0..2]. */
export type Painter = (x: number, y: number, out: Float32Array) => void;

const WHITE: Rgb = [255, 255, 255];
const FLOWER: Rgb = [250, 240, 120];

function set(out: Float32Array, c: Rgb, scale = 1): void {
  out[0] = c[0] * scale;
  out[1] = c[1] * scale;
  out[2] = c[2] * scale;
}

function mix(out: Float32Array, a: Rgb, b: Rgb, t: number): void {
  const s = t < 0 ? 0 : t > 1 ? 1 : t;
  out[0] = a[0] + (b[0] - a[0]) * s;
  out[1] = a[1] + (b[1] - a[1]) * s;
  out[2] = a[2] + (b[2] - a[2]) * s;
}

function scaleOut(out: Float32Array, k: number): void {
  out[0] *= k;
  out[1] *= k;
  out[2] *= k;
}

function blendOut(out: Float32Array, c: Rgb, t: number): void {
  out[0] += (c[0] - out[0]) * t;
  out[1] += (c[1] - out[1]) * t;
  out[2] += (c[2] - out[2]) * t;
}

/** One small disc per lattice cell with probability p; returns the cell hash when hit, else -1. */
function sparkle(x: number, y: number, cells: number, p: number, radius: number, seed: number) {
  const gx = x * cells;
  const gy = y * cells;
  const cx = Math.floor(gx);
  const cy = Math.floor(gy);
  const h = latticeUnit(cx, cy, seed);
  if (h >= p) return -1;
  const px = cx + 0.15 + 0.7 * latticeUnit(cx, cy, seed + 1);
  const py = cy + 0.15 + 0.7 * latticeUnit(cx, cy, seed + 2);
  const r = radius * cells;
  return (gx - px) ** 2 + (gy - py) ** 2 <= r * r ? h / p : -1;
}

function snow(rng: Rng): Painter {
  const seed = rng.uint32();
  const horizon = rng.range(0.14, 0.3);
  const trees = Array.from({ length: 3 + rng.int(5) }, () => ({
    x: rng.next(),
    h: rng.range(0.06, 0.13),
    w: rng.range(0.035, 0.06),
  }));
  const skyTop: Rgb = [160, 178, 205];
  const skyLow: Rgb = [208, 218, 232];
  const shade: Rgb = [188, 204, 230];
  const lit: Rgb = [244, 247, 252];
  const tree: Rgb = [38, 72, 62];
  const drifts = new FractalField(seed, 0, 5, 0, 9);
  return (x, y, out) => {
    if (y < horizon) {
      mix(out, skyTop, skyLow, y / horizon);
      for (const t of trees) {
        // Small pines on the horizon: triangles standing on it.
        const up = (horizon - y) / t.h;
        if (up <= 1 && Math.abs(x - t.x) <= (1 - up) * t.w) set(out, tree);
      }
    } else {
      // Blue-grey hollows and white drifts.
      const n = drifts.at(x * 5, (y - horizon) * 9);
      mix(out, shade, lit, n * 1.4 - 0.1);
    }
    // Falling flakes (visible against the sky and the shaded parts).
    if (sparkle(x, y, 16, 0.45, 0.013, seed + 7) >= 0) set(out, WHITE);
  };
}

function beach(rng: Rng): Painter {
  const seed = rng.uint32();
  const horizon = rng.range(0.2, 0.34);
  const shore = horizon + rng.range(0.12, 0.2);
  const waveFreq = rng.range(1.5, 3.5) * 2 * Math.PI;
  const wavePhase = rng.range(0, 2 * Math.PI);
  const skyTop: Rgb = [95, 170, 232];
  const skyLow: Rgb = [190, 224, 246];
  const seaFar: Rgb = [20, 92, 165];
  const seaNear: Rgb = [40, 160, 185];
  const foam: Rgb = [238, 246, 250];
  const wet: Rgb = [196, 166, 118];
  const sand: Rgb = [232, 206, 150];
  const crests = new NoiseField(seed, 0, 12, 0, 60);
  const grains = new NoiseField(seed + 3, 0, 70, 0, 70);
  return (x, y, out) => {
    if (y < horizon) {
      mix(out, skyTop, skyLow, y / horizon);
      return;
    }
    const s = shore + 0.022 * Math.sin(x * waveFreq + wavePhase);
    if (y < s - 0.018) {
      mix(out, seaFar, seaNear, (y - horizon) / (s - horizon));
      // A few bright wave crests.
      if (crests.at(x * 12, y * 60) > 0.8) blendOut(out, foam, 0.5);
    } else if (y < s + 0.012) {
      set(out, foam);
    } else {
      const grain = grains.at(x * 70, y * 70) * 0.08 + 0.96;
      mix(out, wet, sand, (y - s) / 0.08);
      scaleOut(out, grain);
    }
  };
}

function grass(rng: Rng): Painter {
  const seed = rng.uint32();
  const dark: Rgb = [40, 92, 28];
  const light: Rgb = [118, 168, 52];
  const tilt = rng.range(-0.3, 0.3);
  const flowers = rng.range(0.1, 0.3);
  const bladeNoise = new NoiseField(seed, -14, 59, 0, 4);
  const patchNoise = new FractalField(seed + 1, 0, 4, 0, 4);
  return (x, y, out) => {
    // Blades: noise stretched vertically; patches: coarse noise.
    const blades = bladeNoise.at((x + y * tilt) * 45, y * 4);
    const patches = patchNoise.at(x * 4, y * 4);
    mix(out, dark, light, 0.6 * blades + 0.55 * patches - 0.1);
    const f = sparkle(x, y, 11, flowers, 0.014, seed + 5);
    if (f >= 0) set(out, f < 0.5 ? FLOWER : WHITE);
  };
}

function brickWall(rng: Rng): Painter {
  const seed = rng.uint32();
  const bh = rng.range(0.075, 0.1);
  const bw = bh * rng.range(2.0, 2.6);
  const mortar = 0.2;
  const ox = rng.next();
  const oy = rng.next();
  const base: Rgb = rng.pick<Rgb>([
    [168, 70, 48],
    [150, 62, 45],
    [178, 88, 58],
  ]);
  const mortarColour: Rgb = [200, 194, 182];
  const floor = rng.chance(0.5) ? rng.range(0.78, 0.88) : 2;
  const floorNoise = new NoiseField(seed + 9, 0, 30, 0, 30);
  const grit = new NoiseField(seed + 1, 0, 60, 0, 60);
  const floorColour: Rgb = [118, 114, 108];
  const skirting: Rgb = [80, 76, 72];
  return (x, y, out) => {
    if (y > floor) {
      set(out, floorColour, 0.9 + 0.15 * floorNoise.at(x * 30, y * 30));
      if (y - floor < 0.015) set(out, skirting);
      return;
    }
    const gy = (y + oy) / bh;
    const row = Math.floor(gy);
    const gx = (x + ox) / bw + (row & 1) * 0.5;
    const col = Math.floor(gx);
    const fy = gy - row;
    const fx = gx - col;
    if (fy < mortar || fx < mortar * (bh / bw)) {
      set(out, mortarColour);
      return;
    }
    // Every brick its own shade, plus a fine grit.
    const k = 0.82 + 0.3 * hashUnit(row, col, seed) + 0.08 * grit.at(x * 60, y * 60);
    set(out, base, k);
  };
}

function night(rng: Rng): Painter {
  const seed = rng.uint32();
  const horizon = rng.range(0.6, 0.78);
  const hillFreq = rng.range(1, 3) * 2 * Math.PI;
  const hillPhase = rng.range(0, 2 * Math.PI);
  // A crescent, not a full moon: a disc would look like one of the objects.
  const moon = {
    x: rng.range(0.12, 0.88),
    y: rng.range(0.1, 0.28),
    r: rng.range(0.06, 0.09),
    dx: rng.chance(0.5) ? 0.45 : -0.45,
  };
  const skyTop: Rgb = [6, 10, 36];
  const skyLow: Rgb = [34, 46, 104];
  const ground: Rgb = [40, 50, 84];
  const groundDark: Rgb = [24, 30, 54];
  const moonlight: Rgb = [245, 238, 200];
  const dimStar: Rgb = [150, 160, 200];
  const brightStar: Rgb = [255, 255, 240];
  const terrain = new FractalField(seed + 1, 0, 8, 0, 8);
  return (x, y, out) => {
    const hill = horizon + 0.035 * Math.sin(x * hillFreq + hillPhase);
    if (y > hill) {
      mix(out, groundDark, ground, terrain.at(x * 8, y * 8));
      return;
    }
    mix(out, skyTop, skyLow, y / hill);
    const mx = (x - moon.x) / moon.r;
    const my = (y - moon.y) / moon.r;
    if (mx * mx + my * my <= 1 && (mx - moon.dx) ** 2 + (my + 0.15) ** 2 > 0.8) {
      set(out, moonlight);
      return;
    }
    const s = sparkle(x, y, 18, 0.4, 0.01, seed);
    if (s >= 0) mix(out, dimStar, brightStar, s);
  };
}

function city(rng: Rng): Painter {
  const seed = rng.uint32();
  const street = rng.range(0.74, 0.86);
  const buildings: { x0: number; x1: number; top: number; tone: number; far: boolean }[] = [];
  for (const far of [true, false]) {
    for (let x = -rng.range(0, 0.1); x < 1;) {
      const w = rng.range(0.08, 0.2);
      const top = far ? rng.range(0.1, 0.35) : rng.range(0.25, 0.55);
      buildings.push({ x0: x, x1: x + w, top, tone: rng.range(0.75, 1.1), far });
      x += w + (far ? 0 : rng.range(0, 0.08));
    }
  }
  const skyTop: Rgb = [130, 178, 228];
  const skyLow: Rgb = [200, 216, 234];
  const farWall: Rgb = [150, 162, 182];
  const wall: Rgb = [118, 118, 126];
  const lit: Rgb = [236, 214, 130];
  const dark: Rgb = [52, 62, 80];
  const pavement: Rgb = [128, 128, 132];
  const kerb: Rgb = [182, 182, 186];
  const paving = new NoiseField(seed + 1, 0, 40, 0, 40);
  return (x, y, out) => {
    if (y > street) {
      set(out, pavement, 0.9 + 0.12 * paving.at(x * 40, y * 40));
      if (y - street < 0.02) set(out, kerb);
      return;
    }
    mix(out, skyTop, skyLow, y / street);
    // Near buildings are pushed last, so the last hit is the frontmost.
    let hit = -1;
    for (let i = 0; i < buildings.length; i++) {
      const b = buildings[i]!;
      if (x >= b.x0 && x < b.x1 && y >= b.top) hit = i;
    }
    if (hit < 0) return;
    const b = buildings[hit]!;
    set(out, b.far ? farWall : wall, b.tone);
    if (b.far) return;
    // Windows: a grid inside the facade, some lit.
    const wx = (x - b.x0) / 0.04;
    const wy = (y - b.top) / 0.05;
    const cx = Math.floor(wx);
    const cy = Math.floor(wy);
    if (wx - cx > 0.35 && wy - cy > 0.35 && x < b.x1 - 0.015) {
      set(out, hashUnit(cx + hit * 97, cy, seed) < 0.35 ? lit : dark);
    }
  };
}

const FACTORIES: Readonly<Record<BackgroundName, (rng: Rng) => Painter>> = {
  snow,
  beach,
  grass,
  'brick-wall': brickWall,
  night,
  city,
};

/** The painter for one background, its per-scene variation fixed by seed. */
export function makeBackground(name: BackgroundName, seed: number): Painter {
  return FACTORIES[name](new Rng(seed));
}
