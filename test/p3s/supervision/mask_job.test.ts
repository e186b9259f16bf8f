// `p3s mask` end to end on real photos: two DreamBench subjects side by side, clicks on one.
// With the tiny random CLIP of the fixtures the masks carry no meaning yet; this proves the
// plumbing (files, sizes, propagation, summary) and records the IoU for the record.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { readImage, writePng, pasteSideBySide, resizeImage } from '../../../src/io/image.js';
import { runMaskJob } from '../../../src/p3s/supervision/mask_job.js';
import { MASK_SETTINGS } from '../../../src/p3s/supervision/mask_settings.js';
import { maskCommand } from '../../../apps/cli/mask.js';
import { memory } from '../../../src/engine/scope.js';
import { dreambenchPath, fixturePath, repoRoot } from '../../helpers/paths.js';
import { printedBy } from '../../helpers/console.js';
import { flagHead } from '../../../src/settings/table.js';

const dir = mkdtempSync(join(tmpdir(), 'p3s-mask-'));
const clip = fixturePath('tiny-clip-vision');

async function lookalikePhoto(name: string, left: string, right: string): Promise<void> {
  const a = resizeImage(await readImage(dreambenchPath(left)), 128, 128);
  const b = resizeImage(await readImage(dreambenchPath(right)), 128, 128);
  await writePng(join(dir, name), pasteSideBySide(a, b));
}

test('p3s mask runs end to end on two look-alikes and writes every output', async () => {
  await lookalikePhoto('dogs0.png', 'dog/00.jpg', 'dog5/00.jpg');
  await lookalikePhoto('dogs1.png', 'dog/01.jpg', 'dog5/01.jpg');
  writeFileSync(
    join(dir, 'subject.json'),
    JSON.stringify({
      version: 1,
      identifier: 'sks',
      classWord: 'dog',
      images: [
        { path: 'dogs0.png', positive: [[64, 64]], negative: [[192, 64]] },
        { path: 'dogs1.png' },
      ],
    }),
  );
  const before = memory().liveTensors;
  const out = join(dir, 'out');
  const progress: number[] = [];
  const { results, summaryPath } = await runMaskJob(
    { annotationPath: join(dir, 'subject.json'), clipFolder: clip, outDir: out },
    { onProgress: (d) => progress.push(d) },
  );
  assert.deepEqual(progress, [1, 2]);
  assert.equal(results.length, 2);
  assert.ok(results[1]!.propagated, 'second photo got propagated clicks');
  for (const f of [
    'dogs0.subject-mask.png',
    'dogs0.distractor-mask.png',
    'dogs0.overlay.png',
    'dogs0.filled.png',
    'dogs1.subject-mask.png',
    'dogs1.overlay.png',
  ]) {
    assert.ok(existsSync(join(out, f)), `${f} written`);
  }
  const mask = await readImage(join(out, 'dogs0.subject-mask.png'));
  assert.deepEqual([mask.width, mask.height], [256, 128]);
  const summary = JSON.parse(readFileSync(summaryPath, 'utf8')) as {
    images: { subject: { area: number } }[];
    classWord: string;
    rule: string;
    refine: string;
  };
  assert.equal(summary.classWord, 'dog');
  assert.deepEqual([summary.rule, summary.refine], ['compare', 'guided']);
  assert.equal(results[0]!.subject.level, 'pixel');
  assert.equal(summary.images.length, 2);
  // The subject's half: with random tiny CLIP weights this measures plumbing, not quality.
  const r = results[0]!;
  let inLeft = 0;
  let total = 0;
  for (let y = 0; y < 128; y++)
    for (let x = 0; x < 256; x++)
      if (r.subject.mask[y * 256 + x]) {
        total++;
        if (x < 128) inLeft++;
      }
  assert.ok(total > 0, 'a non-empty subject mask');
  console.log(
    `# tiny random CLIP: ${((100 * inLeft) / total).toFixed(0)}% of the subject mask on the clicked half`,
  );
  assert.equal(memory().liveTensors, before, 'no tensors leak');
});

test('p3s mask refuses bad input clearly', async () => {
  const job = (annotation: object): Promise<unknown> => {
    const path = join(dir, `bad-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(path, JSON.stringify(annotation));
    return runMaskJob({ annotationPath: path, clipFolder: clip, outDir: join(dir, 'bad-out') });
  };
  const photo = dreambenchPath('dog', '00.jpg');
  await assert.rejects(
    job({ classWord: 'dog', images: [{ path: photo, positive: [[9999, 5]] }] }),
    /Expected a point inside the 512×512 image .*00\.jpg but received \(9999, 5\)/,
  );
  await assert.rejects(
    job({ classWord: 'dog', images: [{ path: photo, negative: [[1, 1]] }] }),
    /positive point on at least one image/,
  );
  await assert.rejects(
    job({ images: [{ path: photo, positive: [[1, 1]] }] }),
    /Expected a classWord/,
  );
  writeFileSync(join(dir, 'bad.png'), 'not an image');
  await assert.rejects(
    job({ classWord: 'dog', images: [{ path: 'bad.png', positive: [[1, 1]] }] }),
    /Cannot read image bad\.png/,
  );
  await assert.rejects(
    job({ classWord: 'dog', images: [{ path: 'missing.png', positive: [[1, 1]] }] }),
    /Image file not found/,
  );
  await assert.rejects(
    runMaskJob({
      annotationPath: join(dir, 'subject.json'),
      clipFolder: join(dir, 'nowhere'),
      outDir: join(dir, 'o4'),
    }),
    /nowhere does not exist/,
  );
  // an output folder that cannot be made is found before the CLIP model is loaded
  writeFileSync(join(dir, 'a-file'), 'not a folder');
  await assert.rejects(
    runMaskJob({
      annotationPath: join(dir, 'subject.json'),
      clipFolder: join(dir, 'nowhere'),
      outDir: join(dir, 'a-file', 'out'),
    }),
    /Cannot create the output folder .*a-file\/out: a file is in the way of a folder on its path/,
  );
  // the settings are checked before the annotation is read
  const settings = (over: object) =>
    runMaskJob({
      annotationPath: join(dir, 'no-such-annotation.json'),
      clipFolder: clip,
      outDir: join(dir, 'o8'),
      ...over,
    });
  await assert.rejects(
    settings({ sigma: 0 }),
    /Expected a positive number for sigma but received 0/,
  );
  await assert.rejects(settings({ dense: 1.5 }), /Expected a positive integer for dense/);
  await assert.rejects(settings({ layer: 0.5 }), /Expected an integer for layer but received 0\.5/);
  await assert.rejects(
    settings({ refine: 'sharp' }),
    /Expected one of guided, none for refine but received "sharp"/,
  );
  await assert.rejects(settings({ clipFolder: undefined }), /Expected a path for clipFolder/);
});

test('p3s mask --help lists every flag of the settings table', async () => {
  const help = await printedBy(() => maskCommand.run(['--help']));
  assert.match(help, /^Usage: p3s mask <annotation\.json> --clip <folder> --out <folder>/);
  for (const s of MASK_SETTINGS) {
    if (!s.flag) continue;
    const head = flagHead(s);
    assert.ok(
      help.includes(`\n  ${head} `) || help.includes(`\n  ${head}\n`),
      `--help lacks ${head}`,
    );
  }
  assert.match(help, /--sigma <s> +Gaussian σ of Ψ \(Eq\. 2\) in patches \(default 1\)/);
});

test('the CLI reports usage and runtime errors with exit codes 2 and 1', () => {
  const cli = join(repoRoot(), 'dist', 'apps', 'cli', 'main.js');
  const run = (...args: string[]): { status: number | null; stderr: string } =>
    spawnSync(process.execPath, [cli, 'mask', ...args], { encoding: 'utf8' });
  let r = run(join(dir, 'subject.json'), '--clip', clip, '--out', join(dir, 'o5'), '--sigma=-1');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /Expected a positive number for --sigma but received "-1"/);
  r = run(join(dir, 'subject.json'), '--clip', clip, '--out', join(dir, 'o7'), '--rule', 'max');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /Expected one of compare, product for --rule but received "max"/);
  r = run(join(dir, 'no-such-annotation.json'), '--clip', clip, '--out', join(dir, 'o6'));
  assert.equal(r.status, 1);
  assert.match(r.stderr, /Cannot read annotation .*no-such-annotation\.json/);
});
