// Frozen models held in 16 bits next to float32 trainable layers (models/precision.ts): layers
// compute in their weights' dtype, gradients reach the float32 layers, outputs stay close.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Generator, manualSeed, nn, noGrad, randn, tidy } from '../../src/index.js';
import { UNet2DConditionModel } from '../../src/models/unet/unet_2d_condition.js';
import { frozenHalfDtype, holdFrozenInHalfPrecision } from '../../src/models/precision.js';
import { TINY_UNET_CONFIG } from '../../apps/testing/tiny_models.js';
import { assertClose } from '../helpers/tensors.js';

test('the 16-bit dtype is bfloat16 on CPU and float16 on CUDA', () => {
  assert.equal(frozenHalfDtype('cpu'), 'bfloat16');
  assert.equal(frozenHalfDtype('cuda:1'), 'float16');
});

test('a module with a trainable parameter is refused', () => {
  const layer = new nn.Linear(4, 4);
  assert.throws(() => holdFrozenInHalfPrecision([layer]), /trainable parameter \(weight\)/);
  assert.equal(layer.weight.dtype, 'float32');
  layer.dispose();
});

test('a frozen U-Net in bfloat16 takes float32 input and stays close to float32', () => {
  manualSeed(3);
  const unet = new UNet2DConditionModel({ ...TINY_UNET_CONFIG }).eval().freeze();
  const g = new Generator(1);
  tidy(() => {
    const x = randn([2, 4, 8, 8], { generator: g });
    const c = randn([2, 77, 32], { generator: g });
    const want = noGrad(() => unet.forward(x, 500, c));
    holdFrozenInHalfPrecision([unet]);
    assert.ok(unet.parameters().every((p) => p.dtype === 'bfloat16'));
    const got = noGrad(() => unet.forward(x, 500, c));
    assert.equal(got.dtype, 'bfloat16');
    // bfloat16 keeps 8 bits of mantissa, and how a CPU rounds its bfloat16 arithmetic differs:
    // the largest deviation is 3.6–6.9 % of the output's range over seeds 1–12 on an AVX2-only CPU
    const scale = want.abs().max().item();
    assertClose(got.float(), { shape: want.shape, data: want.toArray() }, { atol: 0.1 * scale });
  });
  unet.dispose();
});

test('float32 trainable layers around a bfloat16 frozen one get float32 gradients', () => {
  const before = new nn.Linear(8, 8);
  const frozen = new nn.Linear(8, 8).freeze();
  const after = new nn.Linear(8, 2);
  holdFrozenInHalfPrecision([frozen]);
  tidy(() => {
    const y = after.forward(frozen.forward(before.forward(randn([3, 8]))));
    assert.equal(y.dtype, 'float32');
    y.square().sum().backward();
    for (const p of [...before.parameters(), ...after.parameters()]) {
      assert.equal(p.grad?.dtype, 'float32');
    }
    assert.equal(frozen.weight.grad, null);
  });
  for (const m of [before, frozen, after]) m.dispose();
});
