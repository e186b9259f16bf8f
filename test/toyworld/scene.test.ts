import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  BACKGROUNDS,
  BACKGROUND_PHRASES,
  COLOUR_NAMES,
  PATTERNS,
  PATTERN_ADJECTIVES,
  SHAPES,
  nearestColour,
} from '../../src/toyworld/attributes.js';
import {
  generateScene,
  interiorPoint,
  renderScene,
  sampleSceneSpec,
  type Scene,
} from '../../src/toyworld/scene.js';

const SEEDS = Array.from({ length: 60 }, (_, i) => i * 7919 + 11);

function pixel(scene: Scene, i: number): [number, number, number] {
  return [scene.rgb[i * 3]!, scene.rgb[i * 3 + 1]!, scene.rgb[i * 3 + 2]!];
}

/** Mask pixels whose 8 neighbours are all in the mask too. */
function interior(mask: Uint8Array, size: number): number[] {
  const out: number[] = [];
  for (let y = 1; y < size - 1; y++) {
    for (let x = 1; x < size - 1; x++) {
      let all = true;
      for (let dy = -1; dy <= 1 && all; dy++) {
        for (let dx = -1; dx <= 1 && all; dx++) all = mask[(y + dy) * size + x + dx] === 1;
      }
      if (all) out.push(y * size + x);
    }
  }
  return out;
}

describe('generateScene determinism', () => {
  it('gives the same bytes for the same seed', () => {
    for (const seed of [0, 1, 12345, 0xffffffff]) {
      const a = generateScene(seed);
      const b = generateScene(seed);
      assert.deepEqual(a.rgb, b.rgb);
      assert.deepEqual(a.instances, b.instances);
      assert.equal(a.caption, b.caption);
    }
  });

  it('gives different images for different seeds', () => {
    const images = new Set(SEEDS.map((s) => Buffer.from(generateScene(s).rgb).toString('base64')));
    assert.equal(images.size, SEEDS.length);
  });

  it('draws the same scene at every size', () => {
    for (const seed of SEEDS.slice(0, 10)) {
      const a = generateScene(seed);
      const b = generateScene(seed, { size: 96 });
      assert.equal(b.rgb.length, 96 * 96 * 3);
      assert.equal(a.caption, b.caption);
      assert.deepEqual(a.spec, b.spec);
      a.objects.forEach((o, k) => {
        const area96 = b.objects[k]!.area;
        assert.ok(Math.abs(area96 / (o.area * 2.25) - 1) < 0.25, `${o.area} vs ${area96}`);
      });
    }
  });

  it('keeps the layout when a fixed attribute is given', () => {
    const free = sampleSceneSpec(5);
    const fixed = sampleSceneSpec(5, { background: 'night' });
    assert.equal(fixed.background, 'night');
    assert.deepEqual(fixed.objects, free.objects);
  });

  it('rejects bad options with clear messages', () => {
    assert.throws(() => generateScene(-1), /for seed but received -1/);
    assert.throws(() => generateScene(1, { size: 8 }), /for size but received 8/);
    assert.throws(() => generateScene(1, { objectCount: 99 }), /for objectCount/);
  });
});

describe('instance masks', () => {
  it('partition the image: one visible owner per pixel, masks equal to the instance map', () => {
    for (const seed of SEEDS) {
      const scene = generateScene(seed);
      const n = scene.size * scene.size;
      const owners = new Uint8Array(n);
      for (const o of scene.objects) {
        for (let i = 0; i < n; i++) {
          if (!o.mask[i]) continue;
          assert.equal(owners[i], 0, 'masks overlap');
          owners[i] = o.index + 1;
        }
      }
      assert.deepEqual(owners, scene.instances);
    }
  });

  it('report area, bbox and visibility that match the mask, above the minimum', () => {
    for (const seed of SEEDS) {
      const scene = generateScene(seed);
      for (const o of scene.objects) {
        let area = 0;
        for (let y = 0; y < scene.size; y++) {
          for (let x = 0; x < scene.size; x++) {
            if (!o.mask[y * scene.size + x]) continue;
            area++;
            assert.ok(x >= o.bbox.x0 && x < o.bbox.x1 && y >= o.bbox.y0 && y < o.bbox.y1);
          }
        }
        assert.equal(area, o.area);
        assert.ok(o.area >= 60, `area ${o.area}`);
        assert.ok(o.visibleFraction >= 0.6, `visible ${o.visibleFraction}`);
        assert.ok(o.fullArea >= o.area);
      }
    }
  });

  it('cover exactly the object colours when not antialiased', () => {
    for (const seed of SEEDS) {
      const scene = generateScene(seed, { antialias: false });
      for (const o of scene.objects) {
        for (let i = 0; i < o.mask.length; i++) {
          if (!o.mask[i]) continue;
          const p = pixel(scene, i);
          const isFill = p.every((v, c) => v === o.fill[c]);
          const isInk = p.every((v, c) => v === o.ink[c]);
          assert.ok(o.pattern === 'solid' ? isFill : isFill || isInk, `seed ${seed} pixel ${i}`);
        }
      }
    }
  });

  /** True when a pixel touches (8-neighbourhood) a pixel of an object other than `id`. */
  function nextToOther(scene: Scene, i: number, id: number): boolean {
    const { size, instances } = scene;
    const x = i % size;
    const y = (i - x) / size;
    for (let dy = -1; dy <= 1; dy++) {
      for (let dx = -1; dx <= 1; dx++) {
        const nx = x + dx;
        const ny = y + dy;
        if (nx < 0 || ny < 0 || nx >= size || ny >= size) continue;
        const other = instances[ny * size + nx]!;
        if (other !== 0 && other !== id) return true;
      }
    }
    return false;
  }

  it('hold the colour family of solid objects (antialiased: exact inside, same family at edges)', () => {
    let checked = 0;
    for (const seed of SEEDS) {
      const scene = generateScene(seed);
      for (const o of scene.objects) {
        if (o.pattern !== 'solid') continue;
        for (const i of interior(o.mask, scene.size)) {
          assert.deepEqual(pixel(scene, i), [...o.fill]);
          checked++;
        }
        for (let i = 0; i < o.mask.length; i++) {
          if (!o.mask[i] || nextToOther(scene, i, o.index + 1)) continue;
          // Edge pixels are at least half object (the half-coverage rule), so no channel can be
          // more than half the range away from the fill. (Where another object covers part of
          // the pixel, less of it is this object's.)
          const p = pixel(scene, i);
          for (let c = 0; c < 3; c++) assert.ok(Math.abs(p[c]! - o.fill[c]!) <= 128);
        }
        assert.equal(nearestColour(...o.fill), o.colour);
      }
    }
    assert.ok(checked > 1000);
  });

  it('put each object point well inside its own mask', () => {
    for (const seed of SEEDS) {
      const scene = generateScene(seed);
      for (const o of scene.objects) {
        const { x, y } = o.point;
        assert.equal(scene.instances[y * scene.size + x], o.index + 1);
        // Well inside: the 4-neighbourhood is in the mask too.
        for (const [dx, dy] of [
          [1, 0],
          [-1, 0],
          [0, 1],
          [0, -1],
        ] as const) {
          assert.equal(o.mask[(y + dy) * scene.size + x + dx], 1);
        }
      }
    }
  });
});

describe('interiorPoint', () => {
  it('finds the centre of a square and nothing in an empty mask', () => {
    const size = 9;
    const mask = new Uint8Array(size * size);
    for (let y = 2; y <= 6; y++) for (let x = 2; x <= 6; x++) mask[y * size + x] = 1;
    assert.deepEqual(interiorPoint(mask, size, size), { x: 4, y: 4 });
    assert.deepEqual(interiorPoint(new Uint8Array(size * size), size, size), { x: -1, y: -1 });
  });
});

describe('labels and reachability', () => {
  it('name the right attributes in captions', () => {
    for (const seed of SEEDS) {
      const scene = generateScene(seed, { objectCount: 1 });
      const [o] = scene.objects;
      const adjective = PATTERN_ADJECTIVES[o!.pattern];
      const words = [o!.colour, adjective, o!.shape].filter((w) => w).join(' ');
      assert.match(
        scene.caption,
        new RegExp(`^an? ${words} ${BACKGROUND_PHRASES[scene.background]}$`),
      );
    }
    for (const seed of SEEDS) {
      const scene = generateScene(seed);
      assert.ok(scene.caption.endsWith(BACKGROUND_PHRASES[scene.background]));
      for (const o of scene.objects) assert.ok(scene.caption.includes(o.colour));
    }
  });

  it('reach every shape, colour, pattern and background, and 1 or 2 objects', () => {
    const seen = {
      shape: new Set(),
      colour: new Set(),
      pattern: new Set(),
      bg: new Set(),
      n: new Set(),
    };
    for (let seed = 0; seed < 400; seed++) {
      const spec = sampleSceneSpec(seed);
      seen.bg.add(spec.background);
      seen.n.add(spec.objects.length);
      for (const o of spec.objects) {
        seen.shape.add(o.shape);
        seen.colour.add(o.colour);
        seen.pattern.add(o.pattern);
      }
    }
    assert.equal(seen.shape.size, SHAPES.length);
    assert.equal(seen.colour.size, COLOUR_NAMES.length);
    assert.equal(seen.pattern.size, PATTERNS.length);
    assert.equal(seen.bg.size, BACKGROUNDS.length);
    assert.deepEqual([...seen.n].sort(), [1, 2]);
  });

  it('renders every shape × pattern and every background with a visible object', () => {
    for (const shape of SHAPES) {
      for (const pattern of PATTERNS) {
        const scene = generateScene(3, { objectCount: 1, objects: [{ shape, pattern }] });
        assert.equal(scene.objects[0]!.shape, shape);
        assert.ok(scene.objects[0]!.area > 60);
      }
    }
    for (const background of BACKGROUNDS) {
      const scene = generateScene(4, { background });
      assert.equal(scene.background, background);
      // Not a flat colour: the background has texture.
      const values = new Set<number>();
      for (let i = 0; i < scene.size * scene.size; i++) {
        if (scene.instances[i] === 0)
          values.add(
            scene.rgb[i * 3]! * 65536 + scene.rgb[i * 3 + 1]! * 256 + scene.rgb[i * 3 + 2]!,
          );
      }
      assert.ok(values.size > 20, `${background}: ${values.size} colours`);
    }
  });

  it('distinguishes patterns: striped and checkered objects use both fill and ink', () => {
    for (const pattern of PATTERNS) {
      const scene = generateScene(8, {
        antialias: false,
        objectCount: 1,
        objects: [{ pattern }],
        radius: [0.25, 0.25],
      });
      const o = scene.objects[0]!;
      let ink = 0;
      for (let i = 0; i < o.mask.length; i++) {
        if (o.mask[i] && pixel(scene, i).every((v, c) => v === o.ink[c])) ink++;
      }
      const share = ink / o.area;
      if (pattern === 'solid') assert.equal(ink, 0);
      else assert.ok(share > 0.1 && share < 0.7, `${pattern}: ink share ${share}`);
    }
  });

  it('renders a hand-made spec', () => {
    const scene = renderScene({
      background: 'beach',
      backgroundSeed: 1,
      objects: [
        {
          shape: 'star',
          colour: 'red',
          pattern: 'stripes',
          x: 0.5,
          y: 0.5,
          radius: 0.3,
          rotation: 0,
          tint: 0,
        },
      ],
    });
    assert.equal(scene.caption, 'a red striped star on the beach');
    assert.equal(scene.seed, null);
    // The centre (32, 32) is a pixel corner: any of the four pixels around it is as interior.
    const { x, y } = scene.objects[0]!.point;
    assert.ok(Math.abs(x - 31.5) <= 0.5 && Math.abs(y - 31.5) <= 0.5, `${x}, ${y}`);
  });
});

describe('the slots layout', () => {
  it('puts objects upright at fixed places, one size per count, with the free layout’s attributes', () => {
    for (const seed of SEEDS.slice(0, 20)) {
      for (const count of [1, 2]) {
        const free = generateScene(seed, { objectCount: count });
        const slots = generateScene(seed, { objectCount: count, layout: 'slots' });
        const looks = (s: Scene) =>
          s.objects.map((o) => `${o.colour} ${o.pattern} ${o.shape}`).sort();
        assert.deepEqual(looks(slots), looks(free));
        assert.equal(slots.background, free.background);
        assert.equal(slots.objects.length, count);
        slots.objects.forEach((o, k) => {
          assert.equal(o.spec.rotation, 0);
          assert.ok(Math.abs(o.spec.x - (k + 0.5) / count) <= 0.02, `x ${o.spec.x}`);
          assert.ok(Math.abs(o.spec.y - 0.5) <= 0.02, `y ${o.spec.y}`);
          const [lo, hi] = count === 1 ? [0.3, 0.34] : [0.19, 0.22];
          assert.ok(o.spec.radius >= lo && o.spec.radius <= hi, `radius ${o.spec.radius}`);
          assert.ok(o.visibleFraction > 0.99, 'slots never overlap');
        });
      }
    }
  });

  it('is deterministic for a seed', () => {
    const a = generateScene(77, { layout: 'slots' });
    const b = generateScene(77, { layout: 'slots' });
    assert.deepEqual(a.rgb, b.rgb);
  });
});
