// What the p3s command line says when a value is wrong, run as a user runs it (a child process,
// the CLI compiled next to this test): the flag typed and the range for a bad setting, exit 2;
// the file, key, point or photo and what to do for bad input, exit 1.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writePng } from '../../../src/io/image.js';
import { setNumThreads } from '../../../src/engine/index.js';
import { trainP3S } from '../../../src/p3s/train.js';
import { fixturePath } from '../../helpers/paths.js';
import { writeToySubject } from '../../helpers/toy_subject.js';

setNumThreads(1); // the training in before() shares the machine with other tests

const CLI = fileURLToPath(new URL('../../../apps/cli/main.js', import.meta.url));
const BASE = fixturePath('tiny-sd');
const CLIP = fixturePath('tiny-clip-vision'); // a 4×4 patch grid
const root = mkdtempSync(join(tmpdir(), 'p3s-messages-'));
let adapter = '';

function p3s(...args: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, P3S_NUM_THREADS: '1' },
  });
  return { status: r.status, stderr: r.stderr.replace(/^CLIP features.*\n/gm, '') };
}

/** Two halves, red and blue, so a click on each gives two patches of different tokens. */
async function photo(name: string, width: number, height: number): Promise<void> {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++)
    data.set(i % width < width / 2 ? [200, 40, 40] : [40, 40, 200], 3 * i);
  await writePng(join(root, name), { width, height, data });
}

/** Writes an annotation file (its text as given, so a test can write 1e999) and returns its path. */
function annotation(name: string, text: string): string {
  writeFileSync(join(root, name), text);
  return join(root, name);
}

const mask = (file: string, ...flags: string[]) =>
  p3s('mask', file, '--clip', CLIP, '--out', join(root, 'masks'), ...flags);

before(async () => {
  await photo('two.png', 64, 64);
  await photo('dot.png', 1, 1);
  const trained = await trainP3S({
    baseModel: BASE,
    clipModel: CLIP,
    outDir: join(root, 'train'),
    references: [join(root, 'two.png')],
    classWord: 'toy',
    maxSteps: 1,
    checkpointEvery: 0,
    evaluate: false,
  });
  adapter = trained.adapterPath;
});
after(() => rmSync(root, { recursive: true, force: true }));

const GOOD =
  '{"classWord": "toy", "images": [{"path": "two.png", "positive": [[10, 30]], "negative": [[50, 30]]}]}';

test('a setting refused after the models load names the flag typed, with exit 2', () => {
  const r = p3s('generate', '--base', BASE, '--adapter', adapter, '--out', join(root, 'g'));
  assert.equal(r.status, 2, r.stderr); // (no prompt: the usual usage error, for comparison)
  const steps = p3s(
    'generate',
    ...['--base', BASE, '--adapter', adapter, '--out', join(root, 'g')],
    ...['--prompt', 'a {}', '--images', '1', '--steps', '2000'],
  );
  assert.equal(steps.status, 2, steps.stderr);
  assert.equal(
    steps.stderr.trim(),
    "p3s: Expected an integer in [1, 1000] (the scheduler's num_train_timesteps) for --steps " +
      'but received 2000 (see --help)',
  );
  const layer = mask(annotation('good.json', GOOD), '--layer', '-9');
  assert.equal(layer.status, 2, layer.stderr);
  assert.match(
    layer.stderr,
    /^p3s: Expected an integer in \[-\d+, \d+\] .* for --layer but received -9/,
  );
});

test('a number too large for a double is shown as typed and called not finite', () => {
  const train = ['train', join(root, 'two.png'), '--base', BASE, '--clip', CLIP];
  for (const lr of ['1e999', 'Infinity']) {
    const r = p3s(...train, '--out', join(root, 't'), '--class', 'toy', '--lr', lr);
    assert.equal(r.status, 2, r.stderr);
    assert.equal(
      r.stderr.trim(),
      `p3s: Expected a positive number for --lr but received "${lr}", not a finite number (see --help)`,
    );
  }
  const file = annotation('huge.json', GOOD.replace('[[10, 30]]', '[[1e999, 30]]'));
  const r = mask(file);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /huge\.json: the number 1e999 \(line 1, column \d+\) is not finite/);
});

test('--layer -2, as --help writes it, is a value', () => {
  const r = mask(annotation('good.json', GOOD), '--layer', '-2');
  assert.equal(r.status, 0, r.stderr);
});

test('a mistyped annotation key is named with the key it was meant to be', () => {
  const r = mask(annotation('typo.json', GOOD.replace('"positive"', '"postive"')));
  assert.equal(r.status, 1, r.stderr);
  assert.match(
    r.stderr,
    /typo\.json: Unknown key "postive" in images\[0\]; did you mean "positive"\?/,
  );
});

test('a point clicked as positive and negative is refused, naming point and photo', () => {
  const r = mask(annotation('twice.json', GOOD.replace('[[50, 30]]', '[[10, 30]]')));
  assert.equal(r.status, 1, r.stderr);
  assert.match(
    r.stderr,
    /The point \(10, 30\) is both positive and negative in images\[0\] \(.*two\.png\)/,
  );
});

test('a photo too small for a mask is refused with its size and the minimum', () => {
  const r = mask(
    annotation(
      'dot.json',
      '{"classWord": "toy", "images": [{"path": "dot.png", "positive": [[0, 0]]}]}',
    ),
  );
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /Photo .*dot\.png is 1×1 px, too small for a mask: .* at least 4×4 px/);
});

test('an empty subject mask is refused, naming the photo, before any file is written', async () => {
  // With the fixtures' random tiny CLIP and the clicked patch alone as the query, toy subject
  // 11's third photo gets no subject pixels.
  const { annotationPath } = await writeToySubject(join(root, 'toy'), 11, 3);
  const out = join(root, 'toy-masks');
  const r = p3s('mask', annotationPath, '--clip', CLIP, '--out', out, '--click-radius', '0');
  assert.equal(r.status, 1, r.stderr);
  assert.match(
    r.stderr,
    /^p3s: .*ref-2\.png: The subject mask is empty: nothing around the positive point \(\d+, \d+\) was kept; make sure it lies on the subject\./,
  );
  // the folder itself is made (and probed) before the work, to find an unwritable --out early
  assert.deepEqual(readdirSync(out), [], 'nothing written');
});

test('--clip pointed at a U-Net says what the folder looks like, in a few lines', () => {
  const unet = join(BASE, 'unet');
  const r = p3s('mask', annotation('good.json', GOOD), '--clip', unet, '--out', join(root, 'm'));
  assert.equal(r.status, 1, r.stderr);
  assert.match(
    r.stderr,
    /does not hold CLIPVisionModel weights: it looks like a UNet2DConditionModel \(config\.json _class_name "UNet2DConditionModel"; diffusion_pytorch_model\.safetensors: \d+ tensors under conv_in, /,
  );
  assert.match(
    r.stderr,
    /missing keys: (vision_model\.[\w.]+, ){4}vision_model\.[\w.]+ and \d+ more/,
  );
  assert.ok(r.stderr.length < 1200, `${r.stderr.length} characters`);
});
