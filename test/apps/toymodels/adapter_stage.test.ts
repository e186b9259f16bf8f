// The adapter stage's data: each pair shows one subject twice, the condition cut to the subject
// alone (grey around it), the target another photo of it, captioned with its shape and context.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adapterPair } from '../../../apps/toymodels/adapter_stage.js';
import { BACKGROUND_PHRASES } from '../../../src/toyworld/index.js';

const GREY = 128;

test('a pretraining pair: the subject alone as condition, another photo of it as target', () => {
  for (let index = 0; index < 6; index++) {
    const pair = adapterPair(index, 1.5);
    const again = adapterPair(index, 1.5);
    assert.deepEqual(pair.condition.data, again.condition.data, 'a pure function of the index');
    assert.ok(
      Object.values(BACKGROUND_PHRASES).some((b) => pair.caption === `a sks ${pair.shape} ${b}`),
      pair.caption,
    );
    // the condition keeps the subject's pixels and greys everything else: some of each
    const { width, height, data } = pair.condition;
    assert.equal(width, pair.target.width);
    let grey = 0;
    for (let i = 0; i < width * height; i++) {
      if (data[i * 3] === GREY && data[i * 3 + 1] === GREY && data[i * 3 + 2] === GREY) grey++;
    }
    const share = grey / (width * height);
    assert.ok(share > 0.1 && share < 0.9, `pair ${index}: ${share} of the condition is grey`);
    // the target's subject mask covers some of the target, not all of it
    let inside = 0;
    for (let i = 0; i < width * height; i++) if (pair.targetMask.data[i * 3]! > 127) inside++;
    assert.ok(inside > 30 && inside < width * height * 0.6, `pair ${index}: mask ${inside} px`);
  }
  assert.notDeepEqual(adapterPair(0, 1.5).target.data, adapterPair(1, 1.5).target.data);
});
