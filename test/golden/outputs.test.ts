// What the top floor computes, pinned: masks, adapters (weights, subject condition, metadata),
// checkpoints, sample sheets and generated images for fixed seeds on the tiny fixtures, compared
// with the values recorded in test/fixtures/golden/outputs.json. A refactor that changes no
// number passes; one that changes the order of a draw, a default or a setting's meaning fails.
//
// On the machine that recorded the file (same CPU model, libtorch and BLAS) every output must match
// bit for bit (SHA-256 of tensor bytes and decoded pixels). Elsewhere libtorch may pick other
// kernels, so the test compares summaries (sums, means) within tolerances set from the
// differences between 1- and 2-thread runs here (the JSON file's tolerance holds them, 10×
// the measured ones), which no change of meaning stays inside.
//
// To record anew (only when a change is meant to change numbers, with a note saying why):
//   P3S_RECORD_GOLDEN=1 node scripts/run-tests.mjs golden/
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { readImage } from '../../src/io/image.js';
import { tidy } from '../../src/engine/scope.js';
import { libtorchVersion, setNumThreads } from '../../src/engine/index.js';
import { trainP3S } from '../../src/p3s/train.js';
import { generateP3S } from '../../src/p3s/generate.js';
import { UNet2DConditionModel } from '../../src/models/unet/unet_2d_condition.js';
import { P3SAdapter } from '../../src/p3s/adapter/p3s_unet.js';
import { TINY_UNET_CONFIG } from '../../apps/testing/tiny_models.js';
import { manualSeed } from '../../src/engine/random.js';
import type { Module } from '../../src/nn/module.js';
import { runMaskJob } from '../../src/p3s/supervision/mask_job.js';
import { writeToySubject } from '../helpers/toy_subject.js';
import { fixturePath, repoRoot } from '../helpers/paths.js';

setNumThreads(Number(process.env.P3S_GOLDEN_THREADS ?? 1));

const BASE = fixturePath('tiny-sd');
const CLIP = fixturePath('tiny-clip-vision');
const RECORD = process.env.P3S_RECORD_GOLDEN === '1';
const GOLDEN =
  process.env.P3S_GOLDEN_FILE ?? join(repoRoot(), 'test', 'fixtures', 'golden', 'outputs.json');

/** One output: its exact digest and a summary that survives another CPU's kernels. */
interface Digest {
  sha: string;
  /** Tensors: [sum, sum of |x|]; images: [mean of each channel]. */
  summary: number[];
}
type Outputs = Record<string, Digest | number | string | unknown>;

interface GoldenFile {
  machine: string;
  /** Largest relative summary difference per kind, measured between 1 and 2 threads. */
  tolerance: { tensor: number; image: number; number: number };
  outputs: Record<string, Outputs>;
}

/**
 * The BLAS libtorch runs its matrix products on, by its folder (Debian: blas/ is the reference
 * implementation, openblas-serial/ or openblas-pthread/ OpenBLAS): they round differently.
 */
function blasLibrary(): string {
  const maps = existsSync('/proc/self/maps') ? readFileSync('/proc/self/maps', 'utf8') : '';
  const path = /\/\S*\/(lib(?:open)?blas[^/\s]*\.so[^/\s]*)/.exec(maps)?.[0];
  return path ? basename(dirname(path)) : 'unknown';
}

const machine = (): string =>
  `${cpus()[0]?.model ?? 'unknown'} / libtorch ${libtorchVersion()} / BLAS ${blasLibrary()}`;

/** One digest per group of tensors (the key's first component: copy, subject_encoder, ...). */
function tensorDigests(path: string): Record<string, Digest> {
  const file = SafetensorsFile.open(path);
  const groups = new Map<string, { hash: ReturnType<typeof createHash>; sums: number[] }>();
  for (const key of file.keys().sort()) {
    const group = `tensor:${key.split(/[./]/)[0]}`;
    if (!groups.has(group)) groups.set(group, { hash: createHash('sha256'), sums: [0, 0] });
    const g = groups.get(group)!;
    tidy(() => {
      const t = file.tensor(key);
      const a = t.contiguous().toTypedArray();
      g.hash.update(`${key}:${t.dtype}:${t.shape.join('x')}:`);
      g.hash.update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
      if (t.isFloatingPoint) {
        const values = t.to('float64');
        g.sums[0]! += values.sum().item();
        g.sums[1]! += values.abs().sum().item();
      }
    });
  }
  return Object.fromEntries(
    [...groups].map(([k, g]) => [k, { sha: g.hash.digest('hex'), summary: g.sums }]),
  );
}

async function imageDigest(path: string): Promise<Digest> {
  const img = await readImage(path);
  const sums = [0, 0, 0];
  for (let i = 0; i < img.data.length; i++) sums[i % 3]! += img.data[i]!;
  const n = img.width * img.height;
  return {
    sha: createHash('sha256').update(`${img.width}x${img.height}:`).update(img.data).digest('hex'),
    summary: sums.map((s) => s / n),
  };
}

async function folderImages(dir: string): Promise<Record<string, Digest>> {
  const out: Record<string, Digest> = {};
  for (const name of readdirSync(dir)
    .filter((f) => f.endsWith('.png'))
    .sort())
    out[name] = await imageDigest(join(dir, name));
  return out;
}

function adapterMetadata(path: string): Record<string, unknown> {
  const m = { ...SafetensorsFile.open(path).metadata } as Record<string, unknown>;
  delete m.p3sVersion;
  return Object.fromEntries(
    Object.keys(m)
      .sort()
      .map((k) => [k, m[k]]),
  );
}

let root = '';
let annotationPath = '';
const computed: Record<string, Outputs> = {};

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'p3s-golden-'));
  ({ annotationPath } = await writeToySubject(root, 11, 3));
});

after(() => {
  if (RECORD) {
    const tolerance = existsSync(GOLDEN) ? golden().tolerance : { tensor: 0, image: 0, number: 0 };
    mkdirSync(dirname(GOLDEN), { recursive: true });
    const file: GoldenFile = { machine: machine(), tolerance, outputs: computed };
    writeFileSync(GOLDEN, `${JSON.stringify(file, null, 1)}\n`);
  }
  if (root) rmSync(root, { recursive: true, force: true });
});

function golden(): GoldenFile {
  return JSON.parse(readFileSync(GOLDEN, 'utf8')) as GoldenFile;
}

function relativeDiff(a: number, b: number): number {
  return Math.abs(a - b) / Math.max(1e-6, Math.abs(a), Math.abs(b));
}

/** Compares one output tree with the recorded one: exactly here, by summaries elsewhere. */
function compare(name: string, got: unknown, want: unknown, file: GoldenFile, path = name): void {
  const exact = file.machine === machine();
  if (want !== null && typeof want === 'object' && 'sha' in want && 'summary' in want) {
    const w = want as Digest;
    const g = got as Digest;
    if (exact) {
      assert.equal(g.sha, w.sha, `${path} differs from the recorded output`);
      return;
    }
    const isTensor = path.split('/').pop()!.startsWith('tensor:');
    // tensors: |Δ| of both sums relative to the sum of |x|; images: |Δ| of channel means
    const scale = isTensor ? Math.max(1e-6, w.summary[1]!) : 1;
    const tol = isTensor ? file.tolerance.tensor : file.tolerance.image;
    g.summary.forEach((v, i) =>
      assert.ok(
        Math.abs(v - w.summary[i]!) / scale <= tol,
        `${path}: summary ${g.summary.join(', ')} against recorded ${w.summary.join(', ')}`,
      ),
    );
    return;
  }
  if (typeof want === 'number' && typeof got === 'number') {
    if (exact) assert.equal(got, want, `${path} differs from the recorded value`);
    else assert.ok(relativeDiff(got, want) <= file.tolerance.number, `${path}: ${got} vs ${want}`);
    return;
  }
  if (Array.isArray(want)) {
    assert.ok(Array.isArray(got) && got.length === want.length, `${path}: length differs`);
    want.forEach((w, i) => compare(name, (got as unknown[])[i], w, file, `${path}[${i}]`));
    return;
  }
  if (want !== null && typeof want === 'object') {
    assert.deepEqual(
      Object.keys(got as object).sort(),
      Object.keys(want).sort(),
      `${path}: other entries`,
    );
    for (const [k, w] of Object.entries(want))
      compare(name, (got as Record<string, unknown>)[k], w, file, `${path}/${k}`);
    return;
  }
  assert.deepEqual(got, want, `${path} differs from the recorded value`);
}

function check(name: string, outputs: Outputs): void {
  computed[name] = outputs;
  if (RECORD) return;
  const file = golden();
  assert.ok(name in file.outputs, `no recorded outputs for ${name}`);
  compare(name, outputs, file.outputs[name], file);
}

const tensorsOf = tensorDigests;

test('the mask job: masks and filled photos of a look-alike set', async () => {
  const out = join(root, 'mask');
  await runMaskJob({ annotationPath, clipFolder: CLIP, outDir: out });
  check('mask', await folderImages(out));
});

test('training with most settings away from their defaults, from raw photos and clicks', async () => {
  const out = join(root, 'train-a');
  const result = await trainP3S({
    baseModel: BASE,
    clipModel: CLIP,
    outDir: out,
    annotation: annotationPath,
    maxSteps: 4,
    batchSize: 2,
    gradientAccumulation: 2,
    flip: true,
    conditionFrom: 'other',
    backgroundLossWeight: 0.5,
    subjectCrop: 1.5,
    injectionMode: 'aligned',
    learningRate: 1e-3,
    maxGradNorm: 1,
    seed: 3,
    checkpointEvery: 2,
    sampleEvery: 2,
    sampleSteps: 3,
    validationPrompts: ['a {} on the beach'],
  });
  check('train-a', {
    losses: result.losses,
    evalLossBefore: result.evalLossBefore,
    evalLossAfter: result.evalLossAfter,
    adapter: tensorsOf(result.adapterPath),
    metadata: adapterMetadata(result.adapterPath),
    checkpoint: tensorsOf(result.lastCheckpoint!),
    samples: await folderImages(join(out, 'samples')),
  });
});

test('training with the subject-only condition and joint injection, from filled photos', async () => {
  const out = join(root, 'train-b');
  await runMaskJob({ annotationPath, clipFolder: CLIP, outDir: join(root, 'mask-b') });
  const result = await trainP3S({
    baseModel: BASE,
    clipModel: CLIP,
    outDir: out,
    references: [join(root, 'mask-b')],
    classWord: 'toy',
    identifier: 'zwx',
    promptTemplate: 'a photo of {}',
    subjectOnlyCondition: true,
    injectionMode: 'joint',
    weightCurve: 'fixed:1',
    lambda: 0.5,
    gamma: 0.3,
    conditionDropout: 0.5,
    maxSteps: 3,
    learningRate: 1e-2,
    checkpointEvery: 0,
    evaluate: false,
  });
  check('train-b', {
    losses: result.losses,
    adapter: tensorsOf(result.adapterPath),
    metadata: adapterMetadata(result.adapterPath),
  });
});

test('generation: guidance, η, latent bias and subject guidance; and the defaults', async () => {
  const adapterA = join(root, 'train-a', 'adapter.safetensors');
  const adapterB = join(root, 'train-b', 'adapter.safetensors');
  const a = await generateP3S({
    baseModel: BASE,
    adapter: adapterA,
    outDir: join(root, 'gen-a'),
    prompts: ['a {} on the beach', 'a {} in the snow'],
    seeds: [1, 2],
    steps: 4,
    eta: 0.5,
    latentBias: 0.3,
    subjectGuidance: true,
    batchSize: 1,
    reference: 1,
  });
  const b = await generateP3S({
    baseModel: BASE,
    adapter: adapterB,
    outDir: join(root, 'gen-b'),
    prompts: ['{} in a forest'],
    numImages: 3,
    seed: 5,
    steps: 3,
    guidanceScale: 4,
  });
  const parameters = (r: typeof a) =>
    r.images.map((i) => {
      const p = { ...i.parameters };
      delete p.Software;
      return p;
    });
  check('generate', {
    a: await folderImages(join(root, 'gen-a')),
    b: await folderImages(join(root, 'gen-b')),
    parametersA: parameters(a),
    parametersB: parameters(b),
  });
});

test('seeded initialisation: the U-Net and a P3S adapter draw the same weights', () => {
  manualSeed(0);
  const unet = new UNet2DConditionModel({ ...TINY_UNET_CONFIG });
  const adapter = new P3SAdapter(unet, 32);
  const digest = (m: Module): Digest => {
    const hash = createHash('sha256');
    const sums = [0, 0];
    for (const [key, t] of m.stateDict()) {
      tidy(() => {
        const a = t.contiguous().toTypedArray();
        hash.update(`${key}:`).update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
        sums[0]! += t.to('float64').sum().item();
        sums[1]! += t.to('float64').abs().sum().item();
      });
    }
    return { sha: hash.digest('hex'), summary: sums };
  };
  check('init', { 'tensor:unet': digest(unet), 'tensor:adapter': digest(adapter) });
  adapter.dispose();
  unet.dispose();
});
