// Photos and clicks no mask can come from are refused, naming the photo; an empty subject mask
// is recorded with its point, and refused by `p3s mask` before any file is written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildSubjectMasks, type RngrImageInput } from '../../../src/p3s/supervision/rngr.js';
import { AnnotationError } from '../../../src/p3s/supervision/annotations.js';
import { refuseEmptySubjects } from '../../../src/p3s/supervision/mask_job.js';
import type { PatchFeatureExtractor } from '../../../src/p3s/supervision/rngr.js';
import { tensor } from '../../../src/engine/creation.js';
import { memory } from '../../../src/engine/scope.js';
import type { RgbImage } from '../../../src/io/image.js';
import { colourPatchExtractor } from './colour_features.js';

function grey(width: number, height: number): RgbImage {
  return { width, height, data: new Uint8Array(width * height * 3).fill(128) };
}

async function refusal(
  inputs: RngrImageInput[],
  extractor: PatchFeatureExtractor,
): Promise<string> {
  const before = memory().liveTensors;
  try {
    await buildSubjectMasks(inputs, extractor);
  } catch (err) {
    assert.ok(err instanceof AnnotationError, String(err));
    assert.equal(memory().liveTensors, before, 'the refusal frees the patch tokens');
    return err.message;
  }
  return assert.fail('the photos were accepted');
}

test('a photo smaller than the patch grid is refused with its size and the minimum', async () => {
  const ok = { name: 'ok.png', image: grey(64, 64), positive: [[10, 10]] as const, negative: [] };
  const message = await refusal(
    [ok, { name: 'tiny.png', image: grey(1, 1), positive: [[0, 0]], negative: [] }],
    colourPatchExtractor(8),
  );
  assert.equal(
    message,
    'Photo tiny.png is 1×1 px, too small for a mask: masks are built on its grid of 8×8 ' +
      'patches, so a photo needs at least 8×8 px',
  );
  // one pixel per patch is the least that holds a mask
  const narrow = { ...ok, image: grey(8, 7), positive: [[1, 1]] as const };
  assert.match(await refusal([narrow], colourPatchExtractor(8)), /is 8×7 px, too small/);
});

test('a positive and a negative point on the same patch are refused', async () => {
  const message = await refusal(
    [{ name: 'two.png', image: grey(64, 64), positive: [[10, 10]], negative: [[12, 14]] }],
    colourPatchExtractor(8), // 8-px patches: both points in the second column and row
  );
  assert.equal(
    message,
    'The positive point (10, 10) and the negative point (12, 14) of two.png fall on the same ' +
      'patch of its 8×8 grid, so they cannot tell the subject from the look-alike: put the ' +
      'negative point on the look-alike',
  );
});

/**
 * Tokens that make the compare rule's subject mask empty: one patch (under the positive click)
 * unlike all the others, which the negative click then claims, smoothing and all.
 */
function loneTokenExtractor(grid: number, lone: number): PatchFeatureExtractor {
  return {
    extract(image) {
      const f = new Float32Array(grid * grid * 2);
      for (let i = 0; i < grid * grid; i++) f.set(i === lone ? [0, 1] : [1, 0.1], 2 * i);
      return {
        tokens: tensor(f, [grid * grid, 2]),
        gridH: grid,
        gridW: grid,
        imageWidth: image.width,
        imageHeight: image.height,
      };
    },
  };
}

test('an empty subject mask is recorded with the point, and refused for the mask command', async () => {
  const [r] = await buildSubjectMasks(
    [{ name: 'lone.png', image: grey(64, 64), positive: [[28, 28]], negative: [[60, 60]] }],
    loneTokenExtractor(8, 3 * 8 + 3),
    { clickRadius: 0 }, // the clicked token alone is unlike every other
  );
  assert.equal(r!.subject.maskArea, 0);
  assert.deepEqual(r!.subject.fallbacks.at(-1), {
    code: 'empty-subject-mask',
    message:
      'The subject mask is empty: nothing around the positive point (28, 28) was kept; make ' +
      'sure it lies on the subject.',
  });
  assert.throws(
    () => refuseEmptySubjects([r!]),
    (e: unknown) =>
      e instanceof AnnotationError &&
      e.message ===
        'lone.png: The subject mask is empty: nothing around the positive point (28, 28) was ' +
          'kept; make sure it lies on the subject.',
  );
  // a set whose subject masks all hold pixels passes
  const [ok] = await buildSubjectMasks(
    [{ name: 'ok.png', image: grey(64, 64), positive: [[28, 28]], negative: [[60, 60]] }],
    loneTokenExtractor(8, 3 * 8 + 3),
    { rule: 'product', clickRadius: 0 },
  );
  assert.ok(ok!.subject.maskArea > 0);
  refuseEmptySubjects([ok!]);
});
