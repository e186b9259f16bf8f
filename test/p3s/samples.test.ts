// Validation samples during training: prompts that cannot go into a sheet's text chunks are
// refused when the writer is made (before training starts), not at the first sheet.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SampleWriter, type SampleSettings } from '../../src/p3s/samples.js';
import type { SamplingModels } from '../../src/p3s/generate.js';
import type { SamplingScheduler } from '../../src/pipelines/stable_diffusion.js';

const settings = (prompts: string[]): SampleSettings => ({
  every: 10,
  prompts,
  images: 1,
  firstSeed: 0,
  steps: 2,
  guidanceScale: 1,
});

test('SampleWriter refuses a validation prompt with a NUL when it is made', () => {
  const make = (prompts: string[]) =>
    new SampleWriter(
      {} as SamplingModels,
      {} as SamplingScheduler,
      settings(prompts),
      'samples',
      () => {},
    );
  assert.throws(
    () => make(['a sks dog', 'a sks\0dog']),
    /^RangeError: Validation prompt 2 holds the control character U\+0000 \(NUL\) at character 6$/,
  );
  assert.doesNotThrow(() => make(['a sks dog\ton a beach']));
});
