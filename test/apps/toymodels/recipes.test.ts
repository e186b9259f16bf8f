import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  PAPER_RECIPE,
  recipeExperimentSettings,
  recipeFromSettings,
  recipeSettings,
  TOY_RECIPE,
} from '../../../apps/toymodels/recipes.js';
import { TRAIN_SETTINGS } from '../../../src/p3s/train_settings.js';
import { GENERATE_SETTINGS } from '../../../src/p3s/generate_settings.js';

test('a recipe maps to p3s train and generate settings and back, every field once', () => {
  for (const recipe of [TOY_RECIPE, PAPER_RECIPE]) {
    const { train, generate } = recipeSettings(recipe);
    assert.deepEqual(recipeFromSettings({ ...train, ...generate }), recipe);
    const keys = [...Object.keys(train), ...Object.keys(generate)];
    assert.equal(keys.length, Object.keys(recipe).length);
    const known = (table: readonly { key: string }[], key: string) =>
      table.some((s) => s.key === key);
    for (const key of Object.keys(train)) assert.ok(known(TRAIN_SETTINGS, key), key);
    for (const key of Object.keys(generate)) assert.ok(known(GENERATE_SETTINGS, key), key);
  }
});

test("an experiment takes the recipe's steps, learning rate and guidance as its own options", () => {
  const e = recipeExperimentSettings(TOY_RECIPE);
  assert.equal(e.steps, TOY_RECIPE.steps);
  assert.equal(e.learningRate, TOY_RECIPE.learningRate);
  assert.equal(e.guidanceScale, TOY_RECIPE.guidanceScale);
  assert.equal(e.train?.injectionMode, TOY_RECIPE.injectionMode);
  assert.equal(e.generate?.localInjection, TOY_RECIPE.localInjection);
  assert.ok(!('maxSteps' in e.train!) && !('guidanceScale' in e.generate!));
});
