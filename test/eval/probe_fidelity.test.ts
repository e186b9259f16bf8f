// p3s eval's toy-world columns: the shipped attribute probe reads rendered scenes of known
// attributes (it reads held-out scenes at 100 %), so the counts of the subject's look, a
// look-alike's look and the prompted context are known exactly; bad flags are refused before
// any model runs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writePng } from '../../src/io/image.js';
import { scoreImages } from '../../src/eval/score.js';
import { EvalInputError } from '../../src/eval/eval_inputs.js';
import type { BackgroundName, ObjectAttributes } from '../../src/toyworld/attributes.js';
import { parseObject, promptBackground } from '../../src/toyworld/captions.js';
import { generateScene } from '../../src/toyworld/scene.js';
import { sceneImage } from '../../src/toyworld/views.js';
import { repoRoot } from '../helpers/paths.js';

const CLI = fileURLToPath(new URL('../../apps/cli/main.js', import.meta.url));
const PROBE = join(repoRoot(), 'models', 'toy', 'probe');
const root = mkdtempSync(join(tmpdir(), 'p3s-eval-probe-'));
const GEN = join(root, 'generated');
const REAL = join(root, 'real');
const SUBJECT: ObjectAttributes = { colour: 'blue', pattern: 'stripes', shape: 'circle' };
const LOOKALIKE: ObjectAttributes = { colour: 'red', pattern: 'stripes', shape: 'circle' };

/** [drawn object, drawn background, prompted background] per image. */
const IMAGES: [ObjectAttributes, BackgroundName, BackgroundName][] = [
  [SUBJECT, 'beach', 'beach'],
  [SUBJECT, 'snow', 'snow'],
  [SUBJECT, 'grass', 'snow'], // the wrong context
  [LOOKALIKE, 'beach', 'beach'],
  [{ colour: 'green', pattern: 'solid', shape: 'star' }, 'night', 'night'],
];
const PHRASE: Record<string, string> = {
  beach: 'on the beach',
  snow: 'in the snow',
  night: 'at night',
};

before(async () => {
  mkdirSync(GEN);
  mkdirSync(REAL);
  for (const [i, [object, drawn, prompted]] of IMAGES.entries()) {
    const scene = generateScene(900 + i, { objectCount: 1, objects: [object], background: drawn });
    const text = {
      prompt: `a sks circle ${PHRASE[prompted]}`,
      identifier: 'sks',
      class_word: 'circle',
    };
    await writePng(join(GEN, `img-${i}.png`), sceneImage(scene), { text });
  }
  const real = generateScene(950, { objectCount: 1, objects: [SUBJECT], background: 'city' });
  await writePng(join(REAL, 'photo.png'), sceneImage(real));
});

after(() => rmSync(root, { recursive: true, force: true }));

test('parseObject reads the world’s names and refuses others; promptBackground finds the context', () => {
  assert.deepEqual(parseObject('Blue striped circle'), SUBJECT);
  assert.deepEqual(parseObject('red star'), { colour: 'red', pattern: 'solid', shape: 'star' });
  assert.throws(
    () => parseObject('blue dotted circle'),
    /Expected "<colour> \[striped\|checkered\] <shape>"/,
  );
  assert.throws(() => parseObject('teal circle'), /colours: red, green/);
  assert.equal(promptBackground('a sks star in front of a brick wall'), 'brick-wall');
  assert.equal(promptBackground('a sks star'), null);
});

test('the probe counts the subject’s look, a look-alike’s and the prompted context', async () => {
  const r = await scoreImages({
    generated: GEN,
    real: [REAL],
    probe: PROBE,
    subjectLook: 'blue striped circle',
    lookalikes: ['red striped circle'],
  });
  const sel = r.selective!;
  assert.equal(sel.images, 5);
  assert.deepEqual(
    sel.perImage.map((v) => [v.isSubject, v.isLookalike]),
    [
      [true, false],
      [true, false],
      [true, false],
      [false, true],
      [false, false],
    ],
  );
  assert.equal(sel.subjectLook, 3 / 5);
  assert.equal(sel.lookalikeLook, 1 / 5);
  assert.equal(sel.context, 4 / 5);
  const without = await scoreImages({ generated: GEN, real: [REAL] });
  assert.equal(without.selective, null);
  assert.equal(without.scores.clipI, r.scores.clipI, 'the probe leaves the other scores alone');
});

test('--probe needs --subject-look, names it in the world’s words, and reads 64-px images only', async () => {
  const base = { generated: GEN, real: [REAL] };
  await assert.rejects(scoreImages({ ...base, probe: PROBE }), /--probe needs --subject-look/);
  await assert.rejects(scoreImages({ ...base, subjectLook: 'blue circle' }), /need --probe/);
  await assert.rejects(
    scoreImages({ ...base, probe: PROBE, subjectLook: 'blue wavy circle' }),
    EvalInputError,
  );
  const big = join(root, 'big');
  mkdirSync(big);
  const scene = generateScene(1, { size: 96 });
  await writePng(join(big, 'a.png'), sceneImage(scene), {
    text: { prompt: 'a sks circle on the beach', identifier: 'sks', class_word: 'circle' },
  });
  await assert.rejects(
    scoreImages({ generated: big, real: [REAL], probe: PROBE, subjectLook: 'blue circle' }),
    /reads the toy world's 64-px images; .*a\.png is 96×96/,
  );
});

test('p3s eval --probe prints the selective rows and puts them in eval.json and the page', () => {
  const out = join(root, 'probe.json');
  const args = ['--generated', GEN, '--real', REAL, '--out', out, '--probe', PROBE];
  const r = spawnSync(
    process.execPath,
    [
      CLI,
      'eval',
      ...args,
      '--subject-look',
      'blue striped circle',
      '--look-alike',
      'red striped circle',
    ],
    { encoding: 'utf8', timeout: 60_000 },
  );
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /subject's look \(blue striped circle\)\s+3\/5\s+60\.0 %/);
  assert.match(r.stdout, /a look-alike's look \(red striped circle\)\s+1\/5\s+20\.0 %/);
  assert.match(r.stdout, /prompted context\s+4\/5\s+80\.0 %/);
  assert.equal(JSON.parse(readFileSync(out, 'utf8')).selective.subjectLook, 0.6);
  const page = readFileSync(out.replace(/\.json$/, '.html'), 'utf8');
  assert.match(page, /Selective fidelity \(toy world\)/);
  assert.match(page, /probe: red striped circle, beach → look-alike/);
  const bad = spawnSync(process.execPath, [CLI, 'eval', ...args], { encoding: 'utf8' });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /--probe needs --subject-look/);
});
