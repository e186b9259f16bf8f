// The shipped toy models: a new data folder starts with a ready toy subject (photos with a
// look-alike in each, the first one clicked), a click after the first masks reuses every photo's
// CLIP features (how fast that is, `npm run bench -- serve` measures), and the toy subject is made
// once only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { MaskPreview, ModelsInfo, Subject } from '../../apps/serve/api.js';
import { TOY_RECIPE } from '../../apps/toymodels/recipes.js';
import { repoRoot } from '../helpers/paths.js';
import { click, testServer } from './helpers.js';

const TOY = join(repoRoot(), 'models', 'toy');

test("a new data folder on the toy models has a ready toy subject; a click reuses every photo's CLIP features", async () => {
  const s = await testServer({ baseModel: TOY, clipModel: join(TOY, 'image_encoder') });
  try {
    const info = (await s.app.inject('/api/models')).json<ModelsInfo>();
    assert.equal(info.toy, true);
    assert.equal(info.resolution, 64);
    // the web app trains and generates with p3s demo's recipe on the toy models
    assert.equal(info.trainDefaults.maxSteps, TOY_RECIPE.steps);
    assert.equal(info.generateDefaults.weightCurve, TOY_RECIPE.weightCurve);
    assert.equal(info.generateDefaults.localInjection, TOY_RECIPE.localInjection);
    assert.equal(info.generateDefaults.guidanceScale, TOY_RECIPE.guidanceScale);
    const subjects = (await s.app.inject('/api/subjects')).json<Subject[]>();
    assert.equal(subjects.length, 1);
    let toy = subjects[0]!;
    assert.match(toy.name, /^Toy /);
    assert.equal(toy.identifier, TOY_RECIPE.identifier, "named in prompts by the recipe's token");
    assert.equal(toy.photos.length, 4);
    assert.equal(toy.photos[0]!.positive.length, 1);
    assert.equal(toy.photos[0]!.negative.length, 1);
    assert.ok(toy.photos.slice(1).every((p) => p.positive.length === 0));

    const first = await s.app.inject({ method: 'POST', url: `/api/subjects/${toy.id}/masks` });
    assert.equal(first.statusCode, 200, first.body);
    const preview = first.json<MaskPreview>();
    assert.ok(
      preview.photos.every((p) => p.subjectShare > 0),
      'every photo has a subject mask',
    );
    assert.ok(
      preview.photos.every((p) => p.layers.distractor),
      'and a look-alike mask',
    );

    // a new click: the features are cached, only the masks are remade
    const [x, y] = toy.photos[0]!.positive[0]!;
    toy = await click(s.app, toy, 0, [[x + 1, y]], toy.photos[0]!.negative);
    const again = await s.app.inject({ method: 'POST', url: `/api/subjects/${toy.id}/masks` });
    assert.equal(again.statusCode, 200, again.body);
    // the speed this buys is measured by `npm run bench -- serve`
    assert.equal(again.json<MaskPreview>().encoded, 0, 'every photo came from the cache');
    assert.equal(preview.encoded, 4, 'the first masks encoded every photo');

    // deleted, it does not come back on the next start
    await s.app.inject({ method: 'DELETE', url: `/api/subjects/${toy.id}` });
  } finally {
    await s.app.close();
  }
  const { createServer } = await import('../../apps/serve/server.js');
  const restarted = createServer({
    dataDir: s.dataDir,
    baseModel: TOY,
    clipModel: join(TOY, 'image_encoder'),
    queue: s.queue,
    host: '127.0.0.1',
  });
  try {
    await restarted.ready();
    assert.equal((await restarted.inject('/api/subjects')).json<Subject[]>().length, 0);
  } finally {
    await s.close();
    await restarted.close();
  }
});
