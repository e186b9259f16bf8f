import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { measuredMaskChoice, readQuality } from '../../../apps/toymodels/quality_file.js';
import { liveMaskSettings } from '../../../apps/serve/mask_settings.js';
import { experimentMasks } from '../../../apps/toymodels/experiment.js';

const root = mkdtempSync(join(tmpdir(), 'p3s-quality-file-'));
after(() => rmSync(root, { recursive: true, force: true }));

test('the measured mask choice keeps only usable values', () => {
  assert.deepEqual(measuredMaskChoice({ maskLayer: 2, maskDense: 4 }), {
    maskLayer: 2,
    maskDense: 4,
  });
  assert.deepEqual(measuredMaskChoice({ maskLayer: 1.5, maskDense: 0 }), {});
  assert.deepEqual(measuredMaskChoice({ maskLayer: '2' }), {});
  assert.deepEqual(measuredMaskChoice(null), {});
  assert.equal(readQuality(join(root, 'none')), null);
});

test("the web app's live masks take the measured choice for the models' own CLIP only, and survive a broken quality.json", () => {
  const models = join(root, 'models');
  mkdirSync(models);
  const own = join(models, 'image_encoder');
  const defaults = liveMaskSettings(models, own);
  writeFileSync(join(models, 'quality.json'), JSON.stringify({ maskLayer: 2, maskDense: 4 }));
  assert.deepEqual(liveMaskSettings(models, own), { clipFolder: own, layer: 2, dense: 4 });
  assert.deepEqual(liveMaskSettings(models, join(root, 'other-clip')), {
    ...defaults,
    clipFolder: join(root, 'other-clip'),
  });
  writeFileSync(join(models, 'quality.json'), '{ torn');
  assert.deepEqual(liveMaskSettings(models, own), defaults);
});

test('an experiment masks as the model card reports unless told otherwise', () => {
  const models = join(root, 'experiment-models');
  mkdirSync(models);
  assert.deepEqual(experimentMasks({ modelFolder: models }), {
    maskLayer: undefined,
    maskDense: undefined,
  });
  writeFileSync(join(models, 'quality.json'), JSON.stringify({ maskLayer: 2, maskDense: 4 }));
  assert.deepEqual(experimentMasks({ modelFolder: models }), { maskLayer: 2, maskDense: 4 });
  assert.deepEqual(experimentMasks({ modelFolder: models, maskLayer: -1 }), {
    maskLayer: -1,
    maskDense: 4,
  });
  assert.deepEqual(experimentMasks({ modelFolder: models, maskLayer: undefined, maskDense: 1 }), {
    maskLayer: 2,
    maskDense: 1,
  });
});
