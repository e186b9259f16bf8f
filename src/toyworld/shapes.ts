// Shapes and patterns as point tests in object-local coordinates: (u, v) with the object's centre
// at the origin, v pointing down, and the shape inside [-1, 1]² at radius 1. Point tests make
// supersampling, rotation and exact masks all fall out of one function per shape.

import type { Pattern, Shape } from './attributes.js';

export type InsideTest = (u: number, v: number) => boolean;

// Five-pointed star: fold the angle into one point's half-sector and test against the edge from
// the outer vertex (R, 0) to the inner vertex (STAR_INNER, half-sector) in that frame.
const STAR_POINTS = 5;
const STAR_SECTOR = (2 * Math.PI) / STAR_POINTS;
const STAR_INNER = 0.5;
const STAR_IX = STAR_INNER * Math.cos(STAR_SECTOR / 2);
const STAR_IY = STAR_INNER * Math.sin(STAR_SECTOR / 2);
const STAR_EX = STAR_IX - 1;
const STAR_EY = STAR_IY;

function insideStar(u: number, v: number): boolean {
  const rho = Math.hypot(u, v);
  if (rho > 1) return false;
  if (rho <= STAR_INNER) return true;
  // Angle from the top, clockwise; the top vertex sits at 0.
  let a = Math.atan2(u, -v);
  a = (((a % STAR_SECTOR) + STAR_SECTOR) % STAR_SECTOR) - STAR_SECTOR / 2;
  const phi = STAR_SECTOR / 2 - Math.abs(a); // angular distance from the nearest outer vertex
  const qx = rho * Math.cos(phi) - 1;
  const qy = rho * Math.sin(phi);
  // Inside when the point lies on the origin's side of the edge (the origin gives a positive cross).
  return STAR_EX * qy - STAR_EY * qx >= 0;
}

const SHAPE_TESTS: Readonly<Record<Shape, InsideTest>> = {
  circle: (u, v) => u * u + v * v <= 0.94,
  // Smaller half-width than 1 so a square's area is close to a circle's at the same radius.
  square: (u, v) => Math.abs(u) <= 0.84 && Math.abs(v) <= 0.84,
  // Upward triangle: apex (0, −0.95), base at v = 0.8 with half-width 1.
  triangle: (u, v) => v <= 0.8 && v >= -0.95 && Math.abs(u) <= (v + 0.95) / 1.75,
  star: insideStar,
  cross: (u, v) => {
    const au = Math.abs(u);
    const av = Math.abs(v);
    return (au <= 0.38 && av <= 0.95) || (av <= 0.38 && au <= 0.95);
  },
};

export function shapeTest(shape: Shape): InsideTest {
  return SHAPE_TESTS[shape];
}

/** Furthest any shape reaches from its centre, in local units (the square's corner). */
export const SHAPE_EXTENT = 0.84 * Math.SQRT2;

/** True where a pattern uses its ink colour rather than the fill. */
export type PatternTest = (u: number, v: number) => boolean;

// Periods are in local units so a pattern scales with its object: a subject looks the same at
// every size, like a real object's texture. About three repeats across: each band is at least a
// latent cell (4 px) wide at the smallest size.
const STRIPE_PERIOD = 0.72;
const CHECK_PERIOD = 0.66;

const PATTERN_TESTS: Readonly<Record<Pattern, PatternTest>> = {
  solid: () => false,
  // Diagonal so stripes never look like checks or like the background's brick and plank lines.
  stripes: (u, v) => {
    const t = (u + v) / (STRIPE_PERIOD * Math.SQRT2) + 0.25;
    return t - Math.floor(t) < 0.5;
  },
  checks: (u, v) => ((Math.floor(u / CHECK_PERIOD) + Math.floor(v / CHECK_PERIOD)) & 1) === 1,
};

export function patternTest(pattern: Pattern): PatternTest {
  return PATTERN_TESTS[pattern];
}

/** How far a shape reaches from its centre (local units), so placement can keep it in frame. */
export function shapeExtent(shape: Shape): number {
  return shape === 'square' ? SHAPE_EXTENT : 1.02;
}
