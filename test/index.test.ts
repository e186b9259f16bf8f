// The package entry exports what a user of p3s imports: the engine, the models and pipelines,
// and the method itself (masks, training, generation, adapters) with its errors and types.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as p3s from '../src/index.js';
import { repoRoot } from './helpers/paths.js';

test('the entry exports the method: masks, training, generation, adapters', () => {
  for (const name of [
    'runMaskJob',
    'readAnnotation',
    'trainP3S',
    'generateP3S',
    'sampleP3S',
    'loadAdapter',
    'readAdapterMetadata',
    'runTraining',
    'readImage',
    'writePng',
    'tensor',
    'saveSafetensors',
  ] as const)
    assert.equal(typeof p3s[name], 'function', name);
  for (const error of [
    p3s.TrainingDivergedError,
    p3s.TrainingInterruptedError,
    p3s.AdapterError,
    p3s.CheckpointError,
    p3s.SettingError,
    p3s.AnnotationError,
    p3s.ReferencePhotoError,
  ])
    assert.ok(error.prototype instanceof Error, error.name);
  assert.ok(p3s.TRAIN_SETTINGS.some((s) => s.key === 'learningRate'));
  assert.equal(typeof p3s.models.UNet2DConditionModel, 'function');
  assert.equal(typeof p3s.pipelines.StableDiffusionPipeline, 'function');
});

test("package.json's main and types name the compiled entry", () => {
  const pkg = JSON.parse(readFileSync(join(repoRoot(), 'package.json'), 'utf8')) as {
    main: string;
    types: string;
    bin: Record<string, string>;
  };
  assert.equal(pkg.main, 'dist/src/index.js');
  assert.equal(pkg.types, 'dist/src/index.d.ts');
  assert.equal(pkg.bin.p3s, 'dist/apps/cli/main.js');
});
