// Outline retention (SDEdit from a timestep) on the shipped toy models: denoising starts at the
// sampler's first timestep at or below the one asked for, the scenes' own captions keep what the
// scenes show at low noise, and a timestep below the sampler's last is refused. The floors are
// below what the shipped models measure (docs/toy.md); raise them as the models improve.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { setNumThreads } from '../../../src/engine/index.js';
import { StableDiffusionPipeline } from '../../../src/pipelines/stable_diffusion.js';
import { outlineRetention } from '../../../apps/toymodels/outline.js';
import { AttributeProbe } from '../../../apps/toymodels/probe.js';
import { repoRoot } from '../../helpers/paths.js';

setNumThreads(1);
const MODELS = join(repoRoot(), 'models', 'toy');
let pipeline: StableDiffusionPipeline;
let probe: AttributeProbe;
before(() => {
  pipeline = StableDiffusionPipeline.fromPretrained(MODELS, { scheduler: 'ddim' });
  probe = AttributeProbe.load(join(MODELS, 'probe'));
});
after(() => {
  pipeline.dispose();
  probe.dispose();
});

test('from low noise the own caption keeps the scene; the swapped caption keeps all but the shape asked', async () => {
  const [r] = await outlineRetention(pipeline, probe, [200], { count: 8 });
  console.log(JSON.stringify(r));
  assert.equal(r!.timestep, 161, "DDIM 25's timesteps run 961, 921, …, 1");
  assert.equal(r!.own.count, 8);
  assert.ok(r!.own.shape >= 0.75 && r!.own.colour >= 0.75 && r!.own.background >= 0.75);
  assert.ok(r!.swapped.colour >= 0.75 && r!.swapped.background >= 0.75);
});

test("a timestep below the sampler's last is refused", async () => {
  await assert.rejects(
    outlineRetention(pipeline, probe, [0], { count: 2 }),
    /Expected a timestep of at least 1 \(the sampler's last of 25\) but received 0/,
  );
});
