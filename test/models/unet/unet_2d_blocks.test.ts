import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SafetensorsFile, Tensor, manualSeed, noGrad, randn, tidy } from '../../../src/index.js';
import {
  Attention,
  CrossAttnDownBlock2D,
  CrossAttnUpBlock2D,
  DownBlock2D,
  UNet2DConditionModel,
  UNetMidBlock2DCrossAttn,
  UpBlock2D,
} from '../../../src/models/unet/index.js';
import { fixturePath } from '../../helpers/paths.js';
import { assertClose, maxAbsDiff } from '../../helpers/tensors.js';

// Each block of the fixture UNet run alone on diffusers' own input to it (the previous stage's
// recorded output) and compared with diffusers' output of that block.
const TOL = { atol: 1e-4, rtol: 1e-4 };
const dir = fixturePath('tiny-sd');
const ref = SafetensorsFile.open(`${dir}/reference.safetensors`);
const unet = UNet2DConditionModel.fromPretrained(`${dir}/unet`);
const context = ref.tensor('unet_encoder_hidden_states');
const temb = ref.tensor('unet_intermediate.time_embedding');
const stage = (name: string): Tensor => ref.tensor(`unet_intermediate.${name}`);

function check(actual: Tensor, name: string): number {
  const e = stage(name);
  const data = e.toArray();
  assertClose(actual, { shape: e.shape, data }, { ...TOL, label: name });
  return maxAbsDiff(actual.toArray(), data);
}

test('CrossAttnDownBlock2D alone matches diffusers (down_blocks.0)', (t) => {
  const block = unet.downBlocks.at(0);
  assert.ok(block instanceof CrossAttnDownBlock2D);
  noGrad(() =>
    tidy(() => {
      const out = block.forward(stage('conv_in'), temb, context);
      // two (resnet, transformer) outputs at 8×8, then the downsampled state at 4×4
      assert.deepEqual(
        out.residuals.map((r) => r.shape),
        [
          [2, 16, 8, 8],
          [2, 16, 8, 8],
          [2, 16, 4, 4],
        ],
      );
      assert.equal(out.residuals.at(-1), out.hidden);
      t.diagnostic(`max abs error ${check(out.hidden, 'down_blocks.0').toExponential(2)}`);
    }),
  );
});

test('DownBlock2D alone matches diffusers (down_blocks.3, no downsampler)', (t) => {
  const block = unet.downBlocks.at(3);
  assert.ok(block instanceof DownBlock2D);
  assert.equal(block.downsamplers, null);
  noGrad(() =>
    tidy(() => {
      const out = block.forward(stage('down_blocks.2'), temb);
      assert.equal(out.residuals.length, 2);
      t.diagnostic(`max abs error ${check(out.hidden, 'down_blocks.3').toExponential(2)}`);
    }),
  );
});

test('UNetMidBlock2DCrossAttn alone matches diffusers', (t) => {
  const block = unet.midBlock;
  assert.ok(block instanceof UNetMidBlock2DCrossAttn);
  noGrad(() =>
    tidy(() => {
      const out = block.forward(stage('down_blocks.3'), temb, context);
      t.diagnostic(`max abs error ${check(out, 'mid_block').toExponential(2)}`);
    }),
  );
});

test('UpBlock2D and CrossAttnUpBlock2D alone match diffusers (up_blocks.0, up_blocks.1)', (t) => {
  noGrad(() =>
    tidy(() => {
      // The skips come from the down path (itself checked against diffusers above).
      const residuals: Tensor[] = [stage('conv_in')];
      let h = residuals[0]!;
      for (const block of unet.downBlocks) {
        const out = block.forward(h, temb, context);
        h = out.hidden;
        residuals.push(...out.residuals);
      }
      assert.equal(residuals.length, 12);
      const up0 = unet.upBlocks.at(0);
      assert.ok(up0 instanceof UpBlock2D);
      const a = up0.forward(stage('mid_block'), residuals.splice(-3), temb, context, null);
      const up1 = unet.upBlocks.at(1);
      assert.ok(up1 instanceof CrossAttnUpBlock2D);
      const b = up1.forward(stage('up_blocks.0'), residuals.splice(-3), temb, context, null);
      const errs = [check(a, 'up_blocks.0'), check(b, 'up_blocks.1')];
      t.diagnostic(`max abs error ${Math.max(...errs).toExponential(2)}`);
      assert.throws(() => up1.forward(a, residuals.slice(0, 2), temb, context), /3 residual/);
    }),
  );
});

test('small blocks: key names, channel bookkeeping and shapes', () => {
  manualSeed(0);
  const common = { tembChannels: 12, resnetGroups: 4, numAttentionHeads: 2, crossAttentionDim: 6 };
  const down = new CrossAttnDownBlock2D({
    ...common,
    numLayers: 2,
    inChannels: 8,
    outChannels: 16,
  });
  assert.deepEqual(
    [...down.stateDict().keys()].filter((k) => !k.includes('transformer_blocks')).sort(),
    [
      'attentions.0.norm.bias',
      'attentions.0.norm.weight',
      'attentions.0.proj_in.bias',
      'attentions.0.proj_in.weight',
      'attentions.0.proj_out.bias',
      'attentions.0.proj_out.weight',
      'attentions.1.norm.bias',
      'attentions.1.norm.weight',
      'attentions.1.proj_in.bias',
      'attentions.1.proj_in.weight',
      'attentions.1.proj_out.bias',
      'attentions.1.proj_out.weight',
      'downsamplers.0.conv.bias',
      'downsamplers.0.conv.weight',
      'resnets.0.conv1.bias',
      'resnets.0.conv1.weight',
      'resnets.0.conv2.bias',
      'resnets.0.conv2.weight',
      'resnets.0.conv_shortcut.bias',
      'resnets.0.conv_shortcut.weight',
      'resnets.0.norm1.bias',
      'resnets.0.norm1.weight',
      'resnets.0.norm2.bias',
      'resnets.0.norm2.weight',
      'resnets.0.time_emb_proj.bias',
      'resnets.0.time_emb_proj.weight',
      'resnets.1.conv1.bias',
      'resnets.1.conv1.weight',
      'resnets.1.conv2.bias',
      'resnets.1.conv2.weight',
      'resnets.1.norm1.bias',
      'resnets.1.norm1.weight',
      'resnets.1.norm2.bias',
      'resnets.1.norm2.weight',
      'resnets.1.time_emb_proj.bias',
      'resnets.1.time_emb_proj.weight',
    ],
  );
  // Up block of 3 resnets at 8 channels, below a 16-channel level, skips of 8, 8 and 4 channels.
  const up = new UpBlock2D({
    ...common,
    numLayers: 3,
    inChannels: 4,
    outChannels: 8,
    prevOutputChannels: 16,
  });
  const sd = up.stateDict();
  assert.deepEqual(sd.get('resnets.0.conv1.weight')!.shape, [8, 16 + 8, 3, 3]);
  assert.deepEqual(sd.get('resnets.1.conv1.weight')!.shape, [8, 8 + 8, 3, 3]);
  assert.deepEqual(sd.get('resnets.2.conv1.weight')!.shape, [8, 8 + 4, 3, 3]);
  assert.deepEqual(sd.get('upsamplers.0.conv.weight')!.shape, [8, 8, 3, 3]);
  const mid = new UNetMidBlock2DCrossAttn({ ...common, inChannels: 16, outputScaleFactor: 2 });
  assert.deepEqual(
    [...mid.stateDict().keys()].filter((k) => k.endsWith('conv1.weight')),
    ['resnets.0.conv1.weight', 'resnets.1.conv1.weight'],
  );
  assert.equal(mid.resnets.at(1).outputScaleFactor, 2);
  assert.deepEqual(
    [...mid.namedModules()].filter(([, m]) => m instanceof Attention).map(([path]) => path),
    ['attentions.0.transformer_blocks.0.attn1', 'attentions.0.transformer_blocks.0.attn2'],
  );
  // A block alone reports hook paths relative to itself.
  assert.equal(
    mid.attentions.at(0).transformerBlocks.at(0).path,
    'attentions.0.transformer_blocks.0',
  );
  noGrad(() =>
    tidy(() => {
      const e = randn([1, 12]);
      const c = randn([1, 5, 6]);
      const d = down.forward(randn([1, 8, 7, 5]), e, c);
      assert.deepEqual(d.hidden.shape, [1, 16, 4, 3]);
      // an explicit size overrides 2× (odd skips): 2×2 -> 3×5
      const u = up.forward(
        randn([1, 16, 2, 2]),
        [randn([1, 4, 2, 2]), randn([1, 8, 2, 2]), randn([1, 8, 2, 2])],
        e,
        null,
        [3, 5],
      );
      assert.deepEqual(u.shape, [1, 8, 3, 5]);
      assert.deepEqual(mid.forward(randn([1, 16, 3, 3]), e, c).shape, [1, 16, 3, 3]);
    }),
  );
});
