// The demo report: a loss curve that scales to its data, and a page that links every image
// relative to itself, draws the clicks where they were made, groups the generated images by
// context with both runs side by side and the base model beneath, puts every number in a table
// row that explains it (no raw JSON), escapes text and needs nothing from the network.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BackgroundName } from '../../../src/toyworld/attributes.js';
import type {
  BaseModelImages,
  ExperimentResult,
  GeneratedVerdict,
} from '../../../apps/toymodels/experiment.js';
import { lossCurveSvg, renderReport, type ReportInput } from '../../../apps/demo/report.js';
import { pct } from '../../../apps/demo/report_tables.js';

test('the loss curve spans its data and draws raw and smoothed paths', () => {
  const svg = lossCurveSvg([1, 0.5, 0.25, 0.125]);
  assert.match(svg, /<text[^>]*>1\.000<\/text>/);
  assert.equal((svg.match(/<path /g) ?? []).length, 2);
  assert.match(lossCurveSvg([]), /No training steps/);
});

const look = { shape: 'star' as const, colour: 'red' as const, pattern: 'stripes' as const };
const CONTEXTS: BackgroundName[] = ['beach', 'snow'];
const SEEDS = [7, 8];

/** Images of every context × seed, listed seed-major so that grouping has work to do. */
function fakeImages(dir: string, tag: string, hit: (k: number) => boolean): GeneratedVerdict[] {
  const pairs = SEEDS.flatMap((seed) => CONTEXTS.map((background) => ({ seed, background })));
  return pairs.map(({ seed, background }, k) => ({
    path: join(dir, `${tag}-${background}-${seed}.png`),
    prompt: `a sks star <b>${background}</b>`,
    seed,
    background,
    seen: { colour: hit(k) ? 'red' : 'blue', shape: 'star', pattern: 'stripes', background },
    isSubject: hit(k),
    isLookalike: !hit(k),
  }));
}

function fakeRun(root: string, negativePoint: boolean, base?: BaseModelImages): ExperimentResult {
  const dir = join(root, negativePoint ? 'selective' : 'baseline');
  const generated = fakeImages(join(dir, 'generated'), 'p3s', (k) => negativePoint && k % 3 === 0);
  return {
    subjectSeed: 6,
    subject: look,
    lookalikes: [
      { ...look, colour: 'blue' },
      { ...look, pattern: 'checks' },
    ],
    identifier: 'olis',
    negativePoint,
    referencePaths: [0, 1].map((k) => join(dir, 'references', `ref-${k}.png`)),
    clicks: [
      {
        width: 64,
        height: 64,
        positive: [{ x: 10, y: 20 }],
        negative: negativePoint ? [{ x: 40, y: 50 }] : [],
      },
      {
        width: 64,
        height: 64,
        positive: [{ x: 33, y: 3 }],
        negative: negativePoint ? [{ x: 5, y: 60 }] : [],
      },
    ],
    annotationPath: join(dir, 'subject.json'),
    masks: [0, 1].map((k) => ({
      overlay: join(dir, 'mask', `ref-${k}.overlay.png`),
      filled: join(dir, 'mask', `ref-${k}.filled.png`),
      subjectIoU: negativePoint ? 0.75 : 0.5,
    })),
    losses: [0.3, 0.2],
    trainSeconds: 12,
    adapterPath: join(dir, 'train', 'adapter.safetensors'),
    // the baseline lists its images in the other order: pairing must go by context and seed
    generated: negativePoint ? generated : generated.reverse(),
    contactSheet: null,
    fidelity: negativePoint ? 0.875 : 0.25,
    lookalikeRate: negativePoint ? 0.0625 : 0.5,
    colourFidelity: negativePoint ? 0.9375 : 0.3125,
    lookalikeColourRate: 0.1875,
    shapeAccuracy: 0.4375,
    backgroundAccuracy: 0.5625,
    ...(base ? { baseModel: base } : {}),
  };
}

function fakeBase(root: string): BaseModelImages {
  return {
    generated: fakeImages(join(root, 'selective', 'base-model'), 'base', () => false),
    fidelity: 0.03125,
    lookalikeRate: 0.09375,
    colourFidelity: 0.15625,
    lookalikeColourRate: 0.21875,
    shapeAccuracy: 0.34375,
    backgroundAccuracy: 0.65625,
  };
}

/** Quality numbers, each distinct so that each can be found in the page. */
const QUALITY = {
  clipRetrieval: { count: 200, candidates: 8, accuracy: 0.991, hardAccuracy: 0.232 },
  probe: { all: 0.961, count: 256, colour: 0.972, shape: 0.953, pattern: 0.984, background: 0.945 },
  vaeRoundTrip: {
    all: 0.703,
    count: 256,
    colour: 0.851,
    shape: 0.898,
    pattern: 0.891,
    background: 0.996,
    colourAndPattern: 0.769,
  },
  generation: {
    all: 0.016,
    count: 64,
    colour: 0.641,
    shape: 0.157,
    pattern: 0.266,
    background: 0.503,
    steps: 25,
    guidanceScale: 5,
  },
  rngr: [
    {
      layer: -1,
      dense: 1,
      rule: 'compare',
      refine: 'guided',
      count: 50,
      subjectIoU: 0.23,
      distractorLeak: 0.167,
      distractorIoU: 0.41,
    },
    {
      layer: 0,
      dense: 4,
      rule: 'compare',
      refine: 'guided',
      count: 50,
      subjectIoU: 0.76,
      distractorLeak: 0.025,
      distractorIoU: 0.8,
    },
  ],
  maskLayer: 0,
  maskDense: 4,
  selective: {
    subjects: 6,
    steps: 200,
    imagesPerSubject: 16,
    withNegative: {
      fidelity: 0.042,
      lookalikeRate: 0.083,
      colourFidelity: 0.251,
      lookalikeColourRate: 0.323,
      maskIoU: 0.55,
    },
    positiveOnly: {
      fidelity: 0.043,
      lookalikeRate: 0.073,
      colourFidelity: 0.261,
      lookalikeColourRate: 0.324,
      maskIoU: 0.47,
    },
  },
};

/** Writes the report for the input and returns its HTML. */
function render(root: string, input: Omit<ReportInput, 'seconds'>): string {
  const path = join(root, 'report.html');
  renderReport(path, { seconds: 61, ...input });
  return readFileSync(path, 'utf8');
}

function withReport(fn: (root: string) => void): void {
  const root = mkdtempSync(join(tmpdir(), 'p3s-report-'));
  try {
    fn(root);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

const rows = (html: string) => html.match(/<tr[^>]*>[\s\S]*?<\/tr>/g) ?? [];
const cells = (row: string) =>
  [...row.matchAll(/<t[dh][^>]*>([\s\S]*?)<\/t[dh]>/g)].map((m) => m[1]!.trim());

test('the report links images relative to itself, escapes text and has no raw JSON', () => {
  withReport((root) => {
    const html = render(root, {
      main: fakeRun(root, true),
      baseline: fakeRun(root, false),
      modelQuality: QUALITY,
      settings: { injection: 'aligned', 'subject-guidance': true, 'crop-subject': null },
      settingsHelp: { injection: 'how the copy joins the U-Net' },
    });
    assert.ok(html.includes('src="selective/references/ref-0.png"'));
    assert.ok(html.includes('src="baseline/generated/p3s-beach-7.png"'));
    assert.ok(html.includes('red striped star'));
    assert.ok(!html.includes('<b>beach</b>'));
    assert.ok(html.includes('a sks star &lt;b&gt;beach&lt;/b&gt;'));
    assert.ok(html.includes('draws "a olis star"'), "the prompt with the run's identifier");
    assert.ok(!html.includes('<pre'), 'no preformatted dump');
    assert.ok(!/[{[]\s*&quot;|&quot;\s*:|"\w+":/.test(html), 'no JSON keys in the page');
    assert.ok(!html.includes('clipRetrieval') && !html.includes('vaeRoundTrip'));
    const injection = rows(html).find((r) => cells(r)[0] === 'injection');
    assert.deepEqual(cells(injection!), [
      'injection',
      '<code>aligned</code>',
      'how the copy joins the U-Net',
    ]);
  });
});

test('the page loads nothing from the network', () => {
  withReport((root) => {
    const html = render(root, {
      main: fakeRun(root, true, fakeBase(root)),
      baseline: fakeRun(root, false),
      modelQuality: QUALITY,
    });
    assert.ok(!/(src|href)\s*=\s*"(https?:)?\/\//i.test(html));
    assert.ok(!/url\(|@import|<link|<script/i.test(html));
  });
});

test("each of this run's numbers sits in a table row with an explanation and chance where it has one", () => {
  withReport((root) => {
    const main = fakeRun(root, true, fakeBase(root));
    const baseline = fakeRun(root, false);
    const html = render(root, { main, baseline, modelQuality: null });
    const table = rows(html).map(cells);
    const keys = [
      'fidelity',
      'lookalikeRate',
      'colourFidelity',
      'shapeAccuracy',
      'backgroundAccuracy',
    ] as const;
    for (const key of keys) {
      const values = [main[key], baseline[key], main.baseModel![key]].map(pct);
      const row = table.find((c) => values.every((v, i) => c[i + 1] === v));
      assert.ok(row, `a row with ${key} of all three runs`);
      assert.ok(row.at(-1)!.length > 20, `${key} is explained`);
    }
    const fidelityRow = table.find((c) => c[1] === pct(main.fidelity))!;
    assert.equal(fidelityRow[4], pct(1 / 90), 'look chance: 6 colours × 3 patterns × 5 shapes');
    assert.ok(
      table.some((c) => c[1] === '0.75' && c[2] === '0.50'),
      'mean mask IoU per run',
    );
  });
});

/** Every number of QUALITY with how the page writes it (IoUs as such, the rest as shares). */
function qualityNumbers(): string[] {
  const iou = new Set(['subjectIoU', 'distractorIoU', 'maskIoU']);
  const skip = new Set([
    'count',
    'candidates',
    'steps',
    'guidanceScale',
    'subjects',
    'imagesPerSubject',
    'layer',
    'dense',
    'maskLayer',
    'maskDense',
  ]);
  const out: string[] = [];
  const walk = (v: unknown, key: string): void => {
    if (typeof v === 'number' && !skip.has(key)) out.push(iou.has(key) ? v.toFixed(2) : pct(v));
    else if (Array.isArray(v))
      walk(v[1], key); // the best RNGR entry is the one shown
    else if (typeof v === 'object' && v !== null)
      for (const [k, x] of Object.entries(v)) walk(x, k);
  };
  walk(QUALITY, '');
  return out;
}

test("each of the shipped models' quality numbers is in a table row with an explanation", () => {
  withReport((root) => {
    const html = render(root, { main: fakeRun(root, true), baseline: null, modelQuality: QUALITY });
    const quality = html.slice(html.indexOf('The shipped toy models'));
    const table = rows(quality).map(cells);
    const numbers = qualityNumbers();
    assert.ok(numbers.length >= 30);
    for (const n of numbers) {
      const row = table.find((c) => c.slice(1, -2).includes(n));
      assert.ok(row, `${n} in a row`);
      assert.ok(row.at(-1)!.length > 15, `${n} explained: ${row.join(' | ')}`);
    }
    const retrieval = table.find((c) => c[0] === 'retrieval')!;
    assert.equal(retrieval[2], pct(1 / 8), 'chance among 8 captions');
    assert.ok(quality.includes('CLIP layer 0, grid ×4'), 'the best mask entry named');
  });
});

test('a quality file without later fields shows what it has', () => {
  withReport((root) => {
    const { clipRetrieval, probe } = QUALITY;
    const html = render(root, {
      main: fakeRun(root, true),
      baseline: null,
      modelQuality: { clipRetrieval, probe },
    });
    assert.ok(html.includes(pct(probe.shape)));
    assert.ok(!html.includes('VAE round trip') && !html.includes('Selective generation'));
    assert.ok(
      !render(root, { main: fakeRun(root, true), baseline: null, modelQuality: null }).includes(
        'shipped toy models',
      ),
    );
  });
});

/** The click markers inside one reference photo's cell. */
function markers(
  html: string,
  src: string,
): { kind: string; x: number; y: number; cx: number; cy: number }[] {
  const at = html.indexOf(`src="${src}"`);
  const span = html.slice(at, html.indexOf('</span>', at));
  return [
    ...span.matchAll(
      /<g class="click (\w+)" data-x="(\d+)" data-y="(\d+)">.*?<circle cx="([\d.]+)" cy="([\d.]+)"/g,
    ),
  ].map((m) => ({
    kind: m[1]!,
    x: Number(m[2]),
    y: Number(m[3]),
    cx: Number(m[4]),
    cy: Number(m[5]),
  }));
}

test('positive and negative clicks are drawn with distinct markers where they were made', () => {
  withReport((root) => {
    const main = fakeRun(root, true);
    const baseline = fakeRun(root, false);
    const html = render(root, { main, baseline, modelQuality: null });
    for (const [k, clicks] of main.clicks.entries()) {
      const drawn = markers(html, `selective/references/ref-${k}.png`);
      const want = [
        ...clicks.positive.map((p) => ({ kind: 'positive', ...p })),
        ...clicks.negative.map((p) => ({ kind: 'negative', ...p })),
      ];
      assert.deepEqual(
        drawn.map(({ kind, x, y }) => ({ kind, x, y })),
        want,
      );
      for (const d of drawn)
        assert.deepEqual([d.cx, d.cy], [d.x + 0.5, d.y + 0.5], 'at the pixel centre');
      assert.deepEqual(
        markers(html, `baseline/references/ref-${k}.png`).map((d) => d.kind),
        ['positive'],
      );
    }
    const marks = html.match(/<g class="click (positive|negative)"[^]*?<\/g>/g)!;
    const pos = marks
      .find((m) => m.includes('click positive'))!
      .replace(/data-[xy]="\d+"|[\d.]+/g, '');
    const neg = marks
      .find((m) => m.includes('click negative'))!
      .replace(/data-[xy]="\d+"|[\d.]+/g, '');
    assert.notEqual(pos.replace('positive', ''), neg.replace('negative', ''), 'different shapes');
    assert.match(pos, /<circle[^>]*fill="#/, 'positive: a filled disc');
    assert.match(pos, /<path d="M[^"]*H[^"]*V[^"]*"/, 'positive: a "+"');
    assert.ok(!/fill="#/.test(neg), 'negative: a ring, not a disc');
    assert.ok(!/<path d="[^"]*V/.test(neg), 'negative: a "−"');
    assert.ok(/viewBox="0 0 64 64"/.test(html), "the overlay's units are the photo's pixels");
    assert.ok(html.includes('src="selective/mask/ref-1.overlay.png"'), 'mask overlay beside');
  });
});

/** The figures (run, seed, src) of one row of a context's table. */
function figures(table: string, rowClass: string): { run: string; seed: number; src: string }[] {
  const row = table.match(new RegExp(`<tr class="${rowClass}">[\\s\\S]*?</tr>`))?.[0] ?? '';
  return [...row.matchAll(/data-run="([^"]+)" data-seed="(\d+)"><img src="([^"]+)"/g)].map((m) => ({
    run: m[1]!,
    seed: Number(m[2]),
    src: m[3]!,
  }));
}

test('generated images are grouped by context, both runs side by side per seed, the base model beneath', () => {
  withReport((root) => {
    const html = render(root, {
      main: fakeRun(root, true, fakeBase(root)),
      baseline: fakeRun(root, false),
      modelQuality: null,
    });
    const tables = html.match(/<table class="context"[\s\S]*?<\/table>/g)!;
    assert.deepEqual(
      tables.map((t) => /data-context="([^"]+)"/.exec(t)![1]),
      CONTEXTS,
    );
    for (const [c, table] of tables.entries()) {
      const context = CONTEXTS[c]!;
      assert.deepEqual(
        figures(table, 'p3s'),
        SEEDS.flatMap((seed) => [
          {
            run: 'with negative click',
            seed,
            src: `selective/generated/p3s-${context}-${seed}.png`,
          },
          {
            run: 'positive click only',
            seed,
            src: `baseline/generated/p3s-${context}-${seed}.png`,
          },
        ]),
      );
      const pairs = table.match(/<div class="pair">[\s\S]*?<\/div>/g)!;
      assert.equal(pairs.length, SEEDS.length, 'one side-by-side pair per seed');
      assert.deepEqual(
        figures(table, 'base'),
        SEEDS.map((seed) => ({
          run: 'base model',
          seed,
          src: `selective/base-model/base-${context}-${seed}.png`,
        })),
      );
      assert.ok(/✓ subject's look/.test(table) && /✗ a look-alike's look/.test(table), 'verdicts');
      assert.ok(table.includes('probe read: red stripes star'));
    }
    const noBase = render(root, {
      main: fakeRun(root, true),
      baseline: fakeRun(root, false),
      modelQuality: null,
    });
    assert.ok(!noBase.includes('class="base"') && !noBase.includes('base model, no adapter'));
  });
});

test('generated images are shown at 128 px or more, pixelated', () => {
  withReport((root) => {
    const html = render(root, { main: fakeRun(root, true), baseline: null, modelQuality: null });
    const rule = /\.gen img \{([^}]*)\}/.exec(html)![1]!;
    assert.ok(Number(/width:\s*(\d+)px/.exec(rule)![1]) >= 128);
    assert.match(html, /img \{[^}]*image-rendering: pixelated/);
  });
});
