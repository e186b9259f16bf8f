// p3s eval and scoreImages on the shipped toy CLIP towers and the tiny-vit fixture: the scores
// must equal metrics.ts on embeddings computed here directly from the models (so the plumbing —
// batching, prompts, per-prompt grouping — is what is proven), DINO is null without a DINO
// model, and the command line refuses bad input with a message and its exit code.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { memory, noGrad, tensor, tidy } from '../../src/index.js';
import { readImage, writePng, type RgbImage } from '../../src/io/image.js';
import { CLIPVisionModelWithProjection } from '../../src/models/clip/clip_vision_model.js';
import { CLIPTextModelWithProjection } from '../../src/models/clip/clip_text_model.js';
import { ViTImageProcessor, ViTModel } from '../../src/models/vit/index.js';
import { CLIPTokenizer } from '../../src/tokenizers/clip_tokenizer.js';
import { loadSafetensors, saveSafetensors } from '../../src/io/safetensors.js';
import { clipProcessorFor } from '../../src/p3s/references.js';
import {
  clipImageScore,
  clipImageVariance,
  clipTextScore,
  dinoScore,
  dinoVariance,
  embeddingRows,
} from '../../src/eval/metrics.js';
import { scoreImages } from '../../src/eval/score.js';
import { EvalInputError } from '../../src/eval/eval_inputs.js';
import { EVAL_SETTINGS } from '../../src/eval/eval_settings.js';
import { fixturePath, repoRoot } from '../helpers/paths.js';

const CLI = fileURLToPath(new URL('../../apps/cli/main.js', import.meta.url));
const TOY = join(repoRoot(), 'models', 'toy');
const VIT = fixturePath('tiny-vit');
const root = mkdtempSync(join(tmpdir(), 'p3s-eval-'));
const GEN = join(root, 'generated');
const REAL = join(root, 'real');
const PROMPTS = ['a sks toy on the beach', 'a sks toy in the snow'];

/** A 64×64 picture: a coloured square on a background, different for each seed. */
function picture(seed: number): RgbImage {
  const data = new Uint8Array(64 * 64 * 3);
  for (let y = 0; y < 64; y++)
    for (let x = 0; x < 64; x++) {
      const inside = x > 8 + seed * 5 && x < 40 + seed * 3 && y > 10 && y < 50;
      const c = inside
        ? [200 - seed * 30, 40 + seed * 25, 60]
        : [30 + seed * 20, 90, 180 - seed * 10];
      data.set(c, 3 * (y * 64 + x));
    }
  return { width: 64, height: 64, data };
}

const chunks = (prompt: string) => ({ prompt, identifier: 'sks', class_word: 'toy', seed: '0' });

before(async () => {
  mkdirSync(GEN);
  mkdirSync(REAL);
  // Five generated images (batch size 2 leaves a short last batch), prompts alternating.
  for (let i = 0; i < 5; i++)
    await writePng(join(GEN, `img-${i}.png`), picture(i), { text: chunks(PROMPTS[i % 2]!) });
  await writePng(join(GEN, 'contact-sheet.png'), picture(0)); // skipped, as generate's own
  for (let i = 0; i < 3; i++) await writePng(join(REAL, `photo-${i}.png`), picture(i + 1));
});

after(() => rmSync(root, { recursive: true, force: true }));

async function images(folder: string, names: string[]): Promise<RgbImage[]> {
  return Promise.all(names.map((n) => readImage(join(folder, n))));
}

/** CLIP image and text embeddings computed here in one batch, as a reader of metrics.ts would. */
async function directClip(gen: RgbImage[], real: RgbImage[], prompts: string[]) {
  const vision = CLIPVisionModelWithProjection.fromPretrained(join(TOY, 'image_encoder'));
  const text = CLIPTextModelWithProjection.fromPretrained(join(TOY, 'text_encoder'));
  const tokenizer = CLIPTokenizer.fromPretrained(join(TOY, 'tokenizer'));
  const processor = clipProcessorFor(join(TOY, 'image_encoder'), vision);
  const embed = (imgs: RgbImage[]) =>
    noGrad(() => tidy(() => embeddingRows(vision.forward(processor.preprocess(imgs)).imageEmbeds)));
  const { inputIds } = tokenizer.call(prompts, { padding: 'max_length' });
  const ids = tensor(inputIds.flat(), [inputIds.length, 77], { dtype: 'int64' });
  const textRows = noGrad(() => tidy(() => embeddingRows(text.forward(ids).textEmbeds)));
  ids.dispose();
  const out = { gen: embed(gen), real: embed(real), text: textRows };
  vision.dispose();
  text.dispose();
  return out;
}

const close = (actual: number | null, expected: number, label: string, tol = 1e-5) =>
  assert.ok(
    actual !== null && Math.abs(actual - expected) <= tol,
    `${label}: ${actual} vs ${expected}`,
  );

const GEN_NAMES = [0, 1, 2, 3, 4].map((i) => `img-${i}.png`);
const REAL_NAMES = [0, 1, 2].map((i) => `photo-${i}.png`);

test('scoreImages equals metrics.ts on the toy CLIP embeddings, overall and per prompt', async () => {
  const live = memory().liveTensors;
  const result = await scoreImages({ generated: GEN, real: [REAL], batchSize: 2 });
  assert.equal(memory().liveTensors, live, 'every model and batch tensor is freed');
  // CLIP-T reads the prompt without the identifier: "a toy on the beach".
  const clipPrompts = GEN_NAMES.map((_, i) => PROMPTS[i % 2]!.replace('sks ', ''));
  const e = await directClip(
    await images(GEN, GEN_NAMES),
    await images(REAL, REAL_NAMES),
    clipPrompts,
  );
  close(result.scores.clipI, clipImageScore(e.gen, e.real), 'CLIP-I');
  close(result.scores.clipIv, clipImageVariance(e.gen, e.real), 'CLIP-Iv', 1e-7);
  close(result.scores.clipT, clipTextScore(e.gen, e.text), 'CLIP-T');
  const beach = [0, 2, 4]; // the images of PROMPTS[0]
  const p0 = result.perPrompt.find((p) => p.prompt === PROMPTS[0])!;
  assert.equal(p0.clipPrompt, 'a toy on the beach');
  assert.equal(p0.images, 3);
  const pick = (rows: number[][]) => beach.map((i) => rows[i]!);
  close(p0.scores.clipI, clipImageScore(pick(e.gen), e.real), 'CLIP-I of a prompt');
  close(p0.scores.clipT, clipTextScore(pick(e.gen), pick(e.text)), 'CLIP-T of a prompt');
  assert.deepEqual(result.counts, { images: 5, references: 3, prompts: 2 });
  assert.equal(result.scores.dino, null);
  assert.equal(result.scores.dinoV, null);
  assert.deepEqual(result.notMeasured, ['dino', 'dinoV']);
  assert.ok(!result.perImage.some((p) => p.path.endsWith('contact-sheet.png')));
});

test('with a DINO ViT, DINO and DINO-v equal metrics.ts on its CLS tokens', async () => {
  const result = await scoreImages({ generated: GEN, real: [REAL], dinoModel: VIT, batchSize: 3 });
  const model = ViTModel.fromPretrained(VIT);
  const processor = ViTImageProcessor.fromPretrained(VIT);
  const cls = (imgs: RgbImage[]) =>
    noGrad(() => tidy(() => embeddingRows(model.clsEmbeddings(processor.preprocess(imgs)))));
  const gen = cls(await images(GEN, GEN_NAMES));
  const real = cls(await images(REAL, REAL_NAMES));
  model.dispose();
  close(result.scores.dino, dinoScore(gen, real), 'DINO');
  close(result.scores.dinoV, dinoVariance(gen, real), 'DINO-v', 1e-7);
  assert.deepEqual(result.notMeasured, []);
});

/**
 * A transformers CLIPModel folder as openai/clip-vit-large-patch14 is laid out (one config.json
 * with text_config and vision_config, both towers' weights in one file, the tokenizer and the
 * image preprocessor beside them), made of the toy towers.
 */
function combinedClipFolder(): string {
  const dir = join(root, 'clip-combined');
  mkdirSync(dir);
  const config = (tower: string) =>
    JSON.parse(readFileSync(join(TOY, tower, 'config.json'), 'utf8'));
  writeFileSync(
    join(dir, 'config.json'),
    JSON.stringify({
      architectures: ['CLIPModel'],
      model_type: 'clip',
      projection_dim: 64,
      text_config: config('text_encoder'),
      vision_config: config('image_encoder'),
    }),
  );
  const weights = new Map([
    ...loadSafetensors(join(TOY, 'text_encoder', 'model.safetensors')),
    ...loadSafetensors(join(TOY, 'image_encoder', 'model.safetensors')),
    ['logit_scale', tensor([2.6592])],
  ]);
  saveSafetensors(join(dir, 'model.safetensors'), weights);
  for (const t of weights.values()) t.dispose();
  for (const f of ['vocab.json', 'merges.txt', 'tokenizer_config.json', 'special_tokens_map.json'])
    copyFileSync(join(TOY, 'tokenizer', f), join(dir, f));
  copyFileSync(
    join(TOY, 'image_encoder', 'preprocessor_config.json'),
    join(dir, 'preprocessor_config.json'),
  );
  return dir;
}

test('a transformers CLIP folder with both towers gives both towers and the tokenizer', async () => {
  const folder = combinedClipFolder();
  const combined = await scoreImages({ generated: GEN, real: [REAL], clipModel: folder });
  const separate = await scoreImages({ generated: GEN, real: [REAL] });
  assert.equal(combined.models.clipText, folder);
  assert.equal(combined.models.tokenizer, folder);
  close(combined.scores.clipI, separate.scores.clipI, 'CLIP-I', 1e-9);
  close(combined.scores.clipT, separate.scores.clipT, 'CLIP-T', 1e-9);
});

test('--identifier and --class supply the subject of PNGs without those chunks', async () => {
  const dir = join(root, 'bare');
  mkdirSync(dir);
  await writePng(join(dir, 'a.png'), picture(1), { text: { prompt: 'a zwx toy at night' } });
  await assert.rejects(scoreImages({ generated: dir, real: [REAL] }), /No identifier known/);
  const r = await scoreImages({
    generated: dir,
    real: [REAL],
    identifier: 'zwx',
    classWord: 'toy',
  });
  assert.equal(r.perPrompt[0]!.clipPrompt, 'a toy at night');
});

test('refuses an empty folder, an image without a prompt and a tower without a projection', async () => {
  const empty = join(root, 'empty');
  mkdirSync(empty);
  await assert.rejects(scoreImages({ generated: empty, real: [REAL] }), EvalInputError);
  await assert.rejects(scoreImages({ generated: REAL, real: [REAL] }), /No prompt known/);
  await assert.rejects(
    scoreImages({
      generated: GEN,
      real: [REAL],
      clipTextModel: fixturePath('tiny-sd', 'text_encoder'),
    }),
    /has no text_projection\.weight/,
  );
});

function p3s(...args: string[]) {
  return spawnSync(process.execPath, [CLI, 'eval', ...args], {
    encoding: 'utf8',
    timeout: 60_000,
  });
}

test('p3s eval writes eval.json and a table; --help lists every flag', () => {
  const out = join(root, 'scores.json');
  const r = p3s('--generated', GEN, '--real', REAL, '--out', out);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /overall\s+5\s/);
  assert.match(r.stdout, /not measured/);
  const json = JSON.parse(readFileSync(out, 'utf8'));
  assert.equal(json.format, 'p3s-eval/1');
  assert.equal(json.scores.dino, null);
  assert.equal(json.counts.references, 3);
  assert.match(json.definitions.clipT, /clipTextScore/);
  // the page beside the JSON: every generated image and real photo linked relative to it, with
  // its own scores, and each prompt's row
  const page = readFileSync(join(root, 'scores.html'), 'utf8');
  for (const img of json.perImage) {
    const src = relative(root, img.path).split(sep).join('/');
    assert.ok(page.includes(`src="${src}"`), src);
    assert.ok(page.includes(`CLIP-I ${img.clipI.toFixed(3)}`));
  }
  for (const r of json.references) assert.ok(page.includes(relative(root, r).split(sep).join('/')));
  for (const p of json.perPrompt) assert.ok(page.includes(`<td>${p.prompt}</td>`), p.prompt);
  assert.match(page, /Not measured: DINO, DINO-v/);
  const help = p3s('--help');
  assert.equal(help.status, 0);
  for (const s of EVAL_SETTINGS) if (s.flag) assert.ok(help.stdout.includes(`--${s.flag}`), s.flag);
});

test('p3s eval --dreambench-prompts prints a prompts file for the subject; an unknown one exits 1', () => {
  const r = p3s('--dreambench-prompts', 'teapot');
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.match(lines[0]!, /teapot: class "teapot", object subject/);
  const prompts = lines.filter((l) => !l.startsWith('#'));
  assert.equal(prompts.length, 25);
  assert.equal(prompts[0], 'a {} in the jungle');
  const unknown = p3s('--dreambench-prompts', 'dragon');
  assert.equal(unknown.status, 1);
  assert.match(unknown.stderr, /Unknown DreamBench subject "dragon"/);
});

test('p3s eval: usage errors exit 2, input it cannot score exits 1', () => {
  const missing = p3s('--real', REAL);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /Expected --generated/);
  assert.equal(p3s('--generated', GEN, '--real', REAL, '--batch-size', '0').status, 2);
  const empty = p3s('--generated', join(root, 'empty'), '--real', REAL);
  assert.equal(empty.status, 1);
  assert.match(empty.stderr, /No generated PNGs/);
  const noText = p3s('--generated', GEN, '--real', REAL, '--clip', fixturePath('tiny-clip-vision'));
  assert.equal(noText.status, 1);
  assert.match(noText.stderr, /give --clip-text/);
});
