// The page of `p3s serve` end to end, in a real browser (Debian's chromium driven by
// playwright-core) against the real server and job queue on the shipped toy models: create a
// subject, add three toy photos, click the subject and its look-alike on the canvas, see the
// masks, train a short run from the Advanced panel, watch it finish, generate two images, see the
// gallery, reopen the page, and check every file through the API. Screenshots go to
// $P3S_SCREENSHOTS (or a temporary folder), whose path is printed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { startServer } from '../../apps/serve/server.js';
import type { JobRecord, Subject } from '../../apps/serve/api.js';
import { LocalJobQueue } from '../../src/jobs/local_queue.js';
import { TRAIN_SETTINGS } from '../../src/p3s/train_settings.js';
import { repoRoot } from '../helpers/paths.js';
import { writeToySubject } from '../helpers/toy_subject.js';

const CHROMIUM = process.env.P3S_CHROMIUM ?? '/usr/bin/chromium';
const TOKEN = 'e2e-secret';
const TOY = join(repoRoot(), 'models', 'toy');
/** Long waits: a training run on the toy models, on 2 shared cores. */
const JOB_WAIT_MS = 240_000;
/** Browser-side (a string: the test is compiled without the DOM's types). */
const ALL_IMAGES_LOADED =
  "[...document.querySelectorAll('img')].every((img) => img.complete && img.naturalWidth > 0)";
/** The toy photos' side in pixels. */
const PHOTO_SIZE = 64;

interface Annotation {
  images: { path: string; positive: [number, number][]; negative?: [number, number][] }[];
}

test(
  'the page: photos, clicks, masks, training and generating in a browser',
  { timeout: 600_000 },
  async (t) => {
    assert.ok(
      existsSync(CHROMIUM),
      `The end-to-end test needs a Chromium at ${CHROMIUM}: install it with ` +
        '`sudo apt-get install chromium` (CI does), or point P3S_CHROMIUM at one.',
    );
    const started = Date.now();
    const root = mkdtempSync(join(tmpdir(), 'p3s-e2e-'));
    const shots = resolve(process.env.P3S_SCREENSHOTS ?? join(root, 'screenshots'));
    mkdirSync(shots, { recursive: true });
    const pageDir = join(root, 'page');
    execFileSync(process.execPath, [join(repoRoot(), 'scripts', 'build-page.mjs'), pageDir], {
      stdio: 'pipe',
    });

    const toy = await writeToySubject(join(root, 'toy'), 3, 3, PHOTO_SIZE);
    const annotation = JSON.parse(readFileSync(toy.annotationPath, 'utf8')) as Annotation;
    const photoFiles = annotation.images.map((im) => join(root, 'toy', im.path));

    const dataDir = join(root, 'data');
    const queue = await LocalJobQueue.open({ dataDir, concurrency: 1 });
    const server = await startServer({
      dataDir,
      baseModel: TOY,
      clipModel: join(TOY, 'image_encoder'),
      queue,
      host: '127.0.0.1',
      port: 0,
      token: TOKEN,
      pageDir,
    });
    let browser: Browser | null = null;
    t.after(async () => {
      await browser?.close();
      await server.close();
      await queue.close();
      if (!process.env.P3S_SCREENSHOTS) console.log(`screenshots kept in ${shots}`);
      for (const dir of ['data', 'page', 'toy'])
        rmSync(join(root, dir), { recursive: true, force: true });
    });

    const base = server.url.replace(/\/+$/, '');
    /** The API as the page sees it, with the token. */
    const apiGet = async <T>(path: string): Promise<{ status: number; body: T; type: string }> => {
      const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
      const type = res.headers.get('content-type') ?? '';
      const body = (type.includes('json') ? await res.json() : await res.arrayBuffer()) as T;
      return { status: res.status, body, type };
    };

    browser = await chromium.launch({ executablePath: CHROMIUM });
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      // refused requests show as messages on the page (checked below), not as console errors
      if (m.type() === 'error' && !/Failed to load resource/.test(m.text()))
        problems.push(`console: ${m.text()}`);
    });
    page.on('response', (r) => {
      if (r.status() >= 500) problems.push(`HTTP ${r.status()} from ${r.url()}`);
    });
    const shot = async (name: string, fullPage = false): Promise<void> => {
      await page.screenshot({ path: join(shots, name), fullPage });
    };
    const step = (what: string): void =>
      console.log(`# ${((Date.now() - started) / 1000).toFixed(1)} s: ${what}`);

    await page.goto(`${base}/?token=${TOKEN}`);
    await page.locator('#live.on').waitFor();

    // an API error is shown to the person, in the server's words
    await page.getByLabel('New subject name').fill('Bad');
    await page.getByLabel('New subject class word').fill('two words');
    await page.getByRole('button', { name: 'Create' }).click();
    await page.locator('.message.error').first().waitFor();
    await page.locator('.message.error .close').first().click();

    // 1: subject, photos, clicks, masks
    step('subject and photos');
    await page.getByLabel('New subject name').fill('Toy');
    await page.getByLabel('New subject class word').fill('toy');
    await page.getByRole('button', { name: 'Create' }).click();
    await page.locator('#photos-section:not([hidden])').waitFor();
    await page.setInputFiles('#file-input', photoFiles);
    await page
      .locator('.thumbs li')
      .nth(photoFiles.length - 1)
      .waitFor();

    const canvas = page.locator('#canvas');
    /** Clicks photo pixel (x, y) of the large photo. */
    const clickPhoto = async (
      [x, y]: [number, number],
      button: 'left' | 'right' = 'left',
    ): Promise<void> => {
      const box = await canvas.boundingBox();
      assert.ok(box, 'the canvas is shown');
      const s = box.width / PHOTO_SIZE;
      await canvas.click({ position: { x: (x + 0.5) * s, y: (y + 0.5) * s }, button });
    };
    const maskReady = async (): Promise<void> => {
      await page.locator('#mask-info[data-state="ready"]').waitFor();
    };

    const first = annotation.images[0]!;
    // a click next to an existing mark removes it
    await clickPhoto([4, 4]);
    await page.locator('#points li.pos').waitFor();
    await clickPhoto([5, 5]);
    await page.locator('#points li').waitFor({ state: 'detached' });
    // left click: the subject; right click: the look-alike
    await clickPhoto(first.positive[0]!);
    await clickPhoto(first.negative![0]!, 'right');
    await page.locator('#points li.neg').waitFor();
    await maskReady();
    // the second photo: both marks by left clicks, with the toggle for touch
    const second = annotation.images[1]!;
    await page.locator('.thumbs li').nth(1).locator('.thumb').click();
    await clickPhoto(second.positive[0]!);
    await page.getByLabel('look-alike', { exact: true }).check();
    await clickPhoto(second.negative![0]!);
    await page.getByLabel('subject', { exact: true }).check();
    await page.locator('#points li.neg').waitFor();
    await maskReady();
    // every thumbnail shows its mask overlay (the third one's found from the others' clicks)
    await page.waitForFunction(
      `[...document.querySelectorAll('.thumbs img')].filter(
        (img) => img.src.includes('/masks/') && img.complete && img.naturalWidth > 0,
      ).length === ${photoFiles.length}`,
    );
    const info = await page.locator('#mask-info').textContent();
    assert.match(info ?? '', /masks made in \d+ ms on the server/);

    const subjects = (await apiGet<Subject[]>('/api/subjects')).body;
    const subject = subjects.find((s) => s.name === 'Toy');
    assert.ok(subject, 'the subject was created');
    assert.equal(subject.photos.length, 3);
    assert.deepEqual(subject.photos[0]!.positive, [first.positive[0]]);
    assert.deepEqual(subject.photos[0]!.negative, [first.negative![0]]);
    assert.deepEqual(subject.photos[1]!.negative, [second.negative![0]]);
    assert.deepEqual(subject.photos[2]!.positive, []);
    // the filled photo instead of the tinted one
    await page.locator('.thumbs li').first().locator('.thumb').click();
    await page.getByLabel('filled photo').check();
    await shot('1-filled.png');
    await page.getByLabel('filled photo').uncheck();
    await shot('1-clicks.png');

    // 2: a short training run from the Advanced panel
    step('training');
    await page.locator('#advanced summary').click();
    const keys = await Promise.all(
      (await page.locator('#train-fields [data-setting]').all()).map((e) =>
        e.getAttribute('data-setting'),
      ),
    );
    assert.ok(keys.length >= 5, 'the Advanced panel has the common settings');
    const known = new Set(TRAIN_SETTINGS.map((s) => s.key as string));
    for (const key of keys)
      assert.ok(known.has(key ?? ''), `the Advanced panel's ${key} is a train setting`);
    await page.locator('[data-setting="maxSteps"]').fill('4');
    await page.locator('[data-setting="learningRate"]').fill('0.001');
    await page.locator('[data-setting="sampleEvery"]').fill('4');
    await page.getByRole('button', { name: 'Train adapter' }).click();
    const trainCard = page.locator('.job.train').first();
    await trainCard.waitFor();
    await page
      .locator('.job.train[data-state="running"] .progress-line', { hasText: /step|loss/i })
      .or(page.locator('.job.train[data-state="succeeded"]'))
      .first()
      .waitFor({ timeout: JOB_WAIT_MS });
    await shot('2-training.png');
    await page
      .locator('.job.train[data-state="succeeded"], .job.train[data-state="failed"]')
      .first()
      .waitFor({ timeout: JOB_WAIT_MS });
    if ((await trainCard.getAttribute('data-state')) !== 'succeeded')
      assert.fail(`training failed: ${await trainCard.locator('.job-error').textContent()}`);
    assert.match((await trainCard.locator('.progress-line').textContent()) ?? '', /4/);
    await trainCard.locator('svg.loss polyline, svg.loss circle').first().waitFor();
    await trainCard.locator('img.sheet').first().waitFor();
    await trainCard.locator('a', { hasText: 'adapter.safetensors' }).waitFor();

    // 3: two images of the subject on the beach
    step('generating');
    await page.locator('#generate-section').scrollIntoViewIfNeeded();
    const chips = page.locator('#contexts .chip');
    assert.ok((await chips.count()) > 0, 'the example contexts are one click away');
    await page.getByLabel('Prompts').fill('');
    await chips.first().click();
    assert.match(await page.getByLabel('Prompts').inputValue(), /\{\}/);
    await page.locator('#num-images').fill('2');
    await page.locator('#gen-seed').fill('7');
    await page.locator('#gen-steps').fill('10');
    await page.getByRole('button', { name: 'Generate', exact: true }).click();
    const results = page.locator('.result-group figure');
    await page
      .locator('.result-group a.download')
      .or(page.locator('.job.generate[data-state="failed"]'))
      .first()
      .waitFor({ timeout: JOB_WAIT_MS });
    const failed = page.locator('.job.generate[data-state="failed"]');
    if ((await failed.count()) > 0)
      assert.fail(`generating failed: ${await failed.first().locator('.job-error').textContent()}`);
    assert.equal(await results.count(), 2);
    assert.match((await results.nth(1).locator('.meta').textContent()) ?? '', /seed 8/);
    await page.waitForFunction(ALL_IMAGES_LOADED);
    await shot('3-gallery.png', true);

    // reopening the page shows the past jobs and their images
    step('reopening');
    await page.reload();
    await page.locator('.job.train[data-state="succeeded"]').waitFor();
    await page.locator('.result-group figure').nth(1).waitFor();
    await maskReady();
    await page.waitForFunction(ALL_IMAGES_LOADED);
    await shot('4-reopened.png', true);
    const width = (await page.evaluate('document.documentElement.scrollWidth')) as number;
    assert.ok(width <= 1280, `the page fits 1280 px without scrolling sideways (${width} px)`);

    // every file the page links exists through the API
    const jobs = (await apiGet<JobRecord[]>(`/api/jobs?subject=${subject.id}`)).body;
    const trained = jobs.find((j) => j.input.kind === 'train' && j.state === 'succeeded');
    const generated = jobs.find((j) => j.input.kind === 'generate' && j.state === 'succeeded');
    assert.ok(trained && generated, 'a finished training run and generate job');
    const links = await Promise.all(
      (await page.locator('.result img, .job.train img.sheet').all()).map(
        async (img) => (await img.getAttribute('src')) ?? '',
      ),
    );
    assert.equal(links.length >= 3, true);
    for (const link of links) {
      const url = new URL(link, base);
      const res = await apiGet<ArrayBuffer>(url.pathname + url.search);
      assert.equal(res.status, 200, url.pathname);
      assert.match(res.type, /image\/png/);
    }
    const adapter = await apiGet<ArrayBuffer>(`/api/jobs/${trained.id}/files/adapter.safetensors`);
    assert.equal(adapter.status, 200);
    assert.ok(adapter.body.byteLength > 100);
    const zip = await apiGet<ArrayBuffer>(`/api/jobs/${generated.id}/archive.zip`);
    assert.equal(zip.status, 200);
    assert.equal(Buffer.from(zip.body).subarray(0, 2).toString(), 'PK');

    assert.equal(
      await page.locator('.message.error').count(),
      0,
      `errors shown: ${await page.locator('#messages').textContent()}`,
    );
    assert.deepEqual(problems, []);
    step(`done; screenshots in ${shots}`);
  },
);
