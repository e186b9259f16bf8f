// Saving as save_pretrained does: Python's JSON layout, safetensors weights under the usual
// names, dtype conversion of floating-point tensors only, and the per-key map in sorted order.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { memory } from '../../src/engine/scope.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { Linear } from '../../src/nn/layers.js';
import {
  diffusersConfig,
  positionIds,
  saveWeights,
  transformersConfig,
  weightFilePath,
  writeJson,
} from '../../src/models/save_pretrained.js';

const tmp = mkdtempSync(join(tmpdir(), 'p3s-save-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('writeJson sorts keys at every level and indents by two, as Python writes config.json', () => {
  const path = join(tmp, 'config.json');
  writeJson(path, { b: 1, a: [{ d: null, c: true }] });
  assert.equal(
    readFileSync(path, 'utf8'),
    '{\n  "a": [\n    {\n      "c": true,\n      "d": null\n    }\n  ],\n  "b": 1\n}\n',
  );
  assert.deepEqual(diffusersConfig('AutoencoderKL', { x: 1 }), {
    _class_name: 'AutoencoderKL',
    _diffusers_version: '0.27.2',
    x: 1,
  });
  assert.deepEqual(transformersConfig({ x: 1 }, 'float16'), {
    x: 1,
    torch_dtype: 'float16',
    transformers_version: '4.26.0',
  });
  assert.equal(weightFilePath('f', 'model'), join('f', 'model.safetensors'));
  assert.equal(weightFilePath('f', 'model', 'fp16'), join('f', 'model.fp16.safetensors'));
});

test('saveWeights: floats in the dtype asked for, extras as given, the map in key order', () => {
  const before = memory().liveTensors;
  const linear = new Linear(3, 2);
  const path = join(tmp, 'model.safetensors');
  const seen: string[] = [];
  saveWeights(
    linear,
    path,
    {
      dtype: 'float16',
      map: (key, value) => {
        seen.push(key);
        return key === 'bias' ? value.mul(0) : value;
      },
    },
    [positionIds('position_ids', 4)],
  );
  assert.deepEqual(seen, ['bias', 'weight']);
  const file = SafetensorsFile.open(path);
  assert.deepEqual(file.keys().sort(), ['bias', 'position_ids', 'weight']);
  assert.equal(file.metadata['format'], 'pt');
  assert.equal(file.info('weight').dtype, 'float16');
  assert.equal(file.info('position_ids').dtype, 'int64');
  assert.deepEqual(file.info('position_ids').shape, [1, 4]);
  saveWeights(linear, path);
  assert.equal(SafetensorsFile.open(path).info('weight').dtype, 'float32');
  linear.dispose();
  assert.equal(memory().liveTensors, before);
});
