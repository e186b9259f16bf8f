import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  SafetensorsFile,
  Tensor,
  keep,
  manualSeed,
  memory,
  noGrad,
  randn,
  tidy,
} from '../../../src/index.js';
import {
  AttnCaptureProcessor,
  AttnProcessor,
  ExtraKVProcessor,
  UNet2DConditionModel,
  type AttentionProcessor,
} from '../../../src/models/unet/index.js';
import { ModelLoadError } from '../../../src/models/loading.js';
import { fixturePath } from '../../helpers/paths.js';
import { assertClose, maxAbsDiff } from '../../helpers/tensors.js';

const TOL = { atol: 1e-4, rtol: 1e-4 };
const dir = fixturePath('tiny-sd');
const ref = SafetensorsFile.open(`${dir}/reference.safetensors`);
const unet = UNet2DConditionModel.fromPretrained(`${dir}/unet`);

const sample = ref.tensor('unet_sample');
const timesteps = ref.tensor('unet_timesteps');
const context = ref.tensor('unet_encoder_hidden_states');

function expected(name: string): { shape: readonly number[]; data: number[] } {
  const t = ref.tensor(name);
  const out = { shape: t.shape, data: t.toArray() };
  t.dispose();
  return out;
}

function closeTo(actual: Tensor, name: string, label = name): number {
  const e = expected(name);
  assertClose(actual, e, { ...TOL, label });
  return maxAbsDiff(actual.toArray(), e.data);
}

/** The plain forward's output on the fixture inputs, saved by the first test for the others. */
let plainOut: number[] | null = null;

const CROSS = {
  first: 'down_blocks.0.attentions.0.transformer_blocks.0.attn2',
  mid: 'mid_block.attentions.0.transformer_blocks.0.attn2',
  last: 'up_blocks.3.attentions.2.transformer_blocks.0.attn2',
};

test('matches diffusers: output, every stage and three cross-attention maps', (t) => {
  const store = new Map<string, Tensor>();
  const processors = unet.attnProcessors();
  for (const path of Object.values(CROSS)) {
    processors.set(`${path}.processor`, new AttnCaptureProcessor(path, store));
  }
  unet.setAttnProcessor(processors);
  try {
    const errors: string[] = [];
    let worst = 0;
    const stages: string[] = [];
    noGrad(() =>
      tidy(() => {
        const out = unet.forward(sample, timesteps, context, {
          onBlock: (name, h) => {
            stages.push(name);
            worst = Math.max(worst, closeTo(h, `unet_intermediate.${name}`));
          },
        });
        errors.push(`output ${closeTo(out, 'unet_out').toExponential(2)}`);
        plainOut = out.toArray();
      }),
    );
    assert.deepEqual(stages, [
      'time_proj',
      'time_embedding',
      'conv_in',
      'down_blocks.0',
      'down_blocks.1',
      'down_blocks.2',
      'down_blocks.3',
      'mid_block',
      'up_blocks.0',
      'up_blocks.1',
      'up_blocks.2',
      'up_blocks.3',
      'conv_norm_out',
    ]);
    errors.push(`stages ${worst.toExponential(2)}`);
    for (const [which, path] of Object.entries(CROSS)) {
      const probs = store.get(path);
      assert.ok(probs, `captured ${path}`);
      const err = closeTo(probs, `unet_attn_probs_${which}_cross`);
      errors.push(`${which} probs ${err.toExponential(2)}`);
    }
    t.diagnostic(`max abs error: ${errors.join(', ')}`);
  } finally {
    for (const p of store.values()) p.dispose();
    unet.setDefaultAttnProcessor();
  }
});

test('matches diffusers on a non-square latent [1, 4, 16, 24]', (t) => {
  noGrad(() =>
    tidy(() => {
      const out = unet.forward(
        ref.tensor('unet_nonsquare_sample'),
        ref.tensor('unet_nonsquare_timesteps'),
        ref.tensor('unet_nonsquare_encoder_hidden_states'),
      );
      t.diagnostic(`max abs error ${closeTo(out, 'unet_nonsquare_out').toExponential(2)}`);
    }),
  );
});

test('a number timestep equals the same timestep as a tensor', () => {
  noGrad(() =>
    tidy(() => {
      const x = sample.slice(0, 0, 1);
      const c = context.slice(0, 0, 1);
      const a = unet.forward(x, 999, c);
      const b = unet.forward(x, timesteps.slice(0, 0, 1), c);
      assert.deepEqual(a.toArray(), b.toArray());
      assert.throws(() => unet.forward(sample, randn([3]), context), /timestep/);
    }),
  );
});

test('attnProcessors() is keyed by module path like diffusers', () => {
  const keys = [...unet.attnProcessors().keys()];
  // 3 cross-attention down blocks × 2 + 1 mid + 3 cross-attention up blocks × 3, two layers each
  assert.equal(keys.length, 32);
  assert.equal(keys[0], 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor');
  assert.equal(keys[1], 'down_blocks.0.attentions.0.transformer_blocks.0.attn2.processor');
  assert.ok(keys.includes('mid_block.attentions.0.transformer_blocks.0.attn1.processor'));
  assert.equal(keys.at(-1), `${CROSS.mid}.processor`); // diffusers registers mid_block last
  assert.ok(keys.includes(`${CROSS.last}.processor`));
  assert.equal(keys.filter((k) => k.endsWith('attn1.processor')).length, 16);
  assert.ok(unet.attnProcessors().get(keys[0]!) instanceof AttnProcessor);
});

test('setAttnProcessor refuses a Map with a wrong count or wrong keys, changing nothing', () => {
  const before = unet.attnProcessors();
  const capture = new AttnCaptureProcessor('x');
  const short = new Map(before);
  short.delete(`${CROSS.first}.processor`);
  assert.throws(() => unet.setAttnProcessor(short), /31 processors for 32 attention layers/);
  const renamed = new Map(short);
  renamed.set('down_blocks.0.attentions.0.transformer_blocks.0.attn3.processor', capture);
  assert.throws(
    () => unet.setAttnProcessor(renamed),
    /unknown keys: down_blocks\.0\.attentions\.0\.transformer_blocks\.0\.attn3\.processor; missing keys: down_blocks\.0\.attentions\.0\.transformer_blocks\.0\.attn2\.processor/,
  );
  assert.deepEqual([...unet.attnProcessors().values()], [...before.values()]);
  const one: AttentionProcessor = new AttnProcessor();
  unet.setAttnProcessor(one);
  assert.ok([...unet.attnProcessors().values()].every((p) => p === one));
  unet.setDefaultAttnProcessor();
});

test('hooked UNet (ExtraKVProcessor without extras, block hook) equals the plain one exactly', () => {
  assert.ok(plainOut, 'the first test ran');
  const procs = new Map(unet.attnProcessors());
  let calls = 0;
  for (const key of procs.keys()) {
    if (key.endsWith('attn1.processor')) {
      procs.set(
        key,
        new ExtraKVProcessor(() => {
          calls++;
          return calls % 2 ? null : {};
        }),
      );
    }
  }
  unet.setAttnProcessor(procs);
  const paths: string[] = [];
  try {
    noGrad(() =>
      tidy(() => {
        const hooked = unet.forward(sample, timesteps, context, {
          onTransformerBlock: (path, s) => {
            paths.push(path);
            assert.equal(s.input.ndim, 3);
            assert.deepEqual(s.normed.shape, s.input.shape);
            assert.deepEqual(s.output.shape, s.input.shape);
          },
        });
        assert.deepEqual(hooked.toArray(), plainOut);
      }),
    );
  } finally {
    unet.setDefaultAttnProcessor();
  }
  assert.equal(calls, 16);
  assert.equal(paths.length, 16);
  assert.equal(paths[0], 'down_blocks.0.attentions.0.transformer_blocks.0');
  assert.ok(paths.includes('mid_block.attentions.0.transformer_blocks.0'));
  assert.equal(paths.at(-1), 'up_blocks.3.attentions.2.transformer_blocks.0');
});

test('extra self-attention features (P3S Eq. 7–8) change the output and carry gradients', () => {
  assert.ok(plainOut, 'the first test ran');
  const lambda = 0.2;
  // f for every self-attention layer, shaped like the layer's input z: (B, HW, C).
  const feats = new Map<string, Tensor>();
  const procs = new Map(unet.attnProcessors());
  for (const key of procs.keys()) {
    if (!key.endsWith('attn1.processor')) continue;
    procs.set(
      key,
      new ExtraKVProcessor((z) => {
        let f = feats.get(key);
        if (!f) feats.set(key, (f = keep(randn([...z.shape]).requiresGrad_())));
        return { extraKey: f, valueInput: z.add(f.mul(lambda)), extraValue: f };
      }),
    );
  }
  unet.freeze();
  unet.setAttnProcessor(procs);
  try {
    tidy(() => {
      const out = unet.forward(sample, timesteps, context);
      assert.ok(maxAbsDiff(out.toArray(), plainOut!) > 1e-3);
      out.square().mean().backward();
      assert.equal(feats.size, 16);
      const g = feats.get(`${CROSS.last.replace('attn2', 'attn1')}.processor`)!.grad;
      assert.ok(g !== null && g.abs().sum().item() > 0);
      assert.equal(unet.convIn.weight.grad, null); // frozen
    });
  } finally {
    unet.setDefaultAttnProcessor();
    unet.requiresGrad_(true);
    for (const f of feats.values()) f.dispose();
  }
});

test('a forward inside tidy leaves no tensors behind', () => {
  const before = memory().liveTensors;
  const out = noGrad(() =>
    tidy(() => unet.forward(sample, timesteps, context, { onBlock: () => {} })),
  );
  out.dispose();
  assert.equal(memory().liveTensors, before);
});

test('odd latent sizes: each upsampler matches its skip (forward_upsample_size)', () => {
  manualSeed(0);
  const small = new UNet2DConditionModel({
    block_out_channels: [8, 16, 16],
    down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
    up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
    layers_per_block: 1,
    attention_head_dim: 2,
    cross_attention_dim: 12,
    norm_num_groups: 4,
  });
  assert.equal(small.numUpsamplers, 2);
  noGrad(() =>
    tidy(() => {
      for (const [h, w] of [
        [9, 13],
        [5, 7],
        [8, 12],
        [4, 6],
      ] as const) {
        const out = small.forward(randn([2, 4, h, w]), 500, randn([2, 5, 12]));
        assert.deepEqual(out.shape, [2, 4, h, w]);
      }
    }),
  );
  small.dispose();
});

test('config: unsupported values throw naming the key and the allowed values', () => {
  const tiny = {
    block_out_channels: [8, 16],
    down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'],
    up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'],
    norm_num_groups: 4,
    cross_attention_dim: 8,
    attention_head_dim: 2,
  };
  const bad: [Record<string, unknown>, RegExp][] = [
    [
      { down_block_types: ['SimpleCrossAttnDownBlock2D', 'DownBlock2D'] },
      /"down_block_types".*"CrossAttnDownBlock2D", "DownBlock2D"/,
    ],
    [{ up_block_types: ['UpBlock2D', 'AttnUpBlock2D'] }, /"up_block_types"/],
    [
      { mid_block_type: 'UNetMidBlock2DSimpleCrossAttn' },
      /"mid_block_type".*"UNetMidBlock2DCrossAttn", null/,
    ],
    [{ class_embed_type: 'timestep' }, /"class_embed_type"; allowed: null/],
    [{ addition_embed_type: 'text_time' }, /"addition_embed_type"; allowed: null/],
    [{ num_attention_heads: 8 }, /"num_attention_heads".*null/],
    [{ only_cross_attention: true }, /"only_cross_attention"; allowed: false/],
    [{ time_embedding_type: 'fourier' }, /"time_embedding_type"; allowed: "positional"/],
    [
      { resnet_time_scale_shift: 'spatial' },
      /"resnet_time_scale_shift"; allowed: "default", "scale_shift"/,
    ],
    [{ act_fn: 'gelu' }, /"act_fn"; allowed: "silu"/],
    [{ block_out_channels: [8, 16, 32] }, /"block_out_channels".*a list of 2 positive integers/],
    [{ layers_per_block: [1, 2, 3] }, /"layers_per_block"/],
    [{ attention_head_dim: 0 }, /"attention_head_dim"/],
    [{ _class_name: 'UNet2DModel' }, /"_class_name"/],
    [{ dual_cross_attention: true }, /"dual_cross_attention"; allowed: false/],
    [{ attention_type: 'gated' }, /"attention_type"; allowed: "default"/],
  ];
  for (const [override, message] of bad) {
    assert.throws(
      () => new UNet2DConditionModel({ ...tiny, ...override }),
      (err: Error) => err instanceof ModelLoadError && message.test(err.message),
      JSON.stringify(override),
    );
  }
  // Keys diffusers ignores for these blocks are accepted (SD 1.5 configs carry them).
  const ok = new UNet2DConditionModel({
    ...tiny,
    resnet_skip_time_act: false,
    cross_attention_norm: null,
  });
  assert.equal(ok.config.block_out_channels.length, 2);
  ok.dispose();
});

test('config variants: per-block heads, linear projection, scale_shift, no mid block', () => {
  manualSeed(1);
  const m = new UNet2DConditionModel({
    block_out_channels: [8, 16],
    down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'],
    up_block_types: ['CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
    norm_num_groups: 4,
    cross_attention_dim: [6, 10],
    attention_head_dim: [2, 4],
    layers_per_block: [1, 2],
    use_linear_projection: true,
    resnet_time_scale_shift: 'scale_shift',
    mid_block_type: null,
    time_embedding_dim: 20,
  });
  const keys = new Set(m.stateDict().keys());
  assert.ok(!keys.has('mid_block.resnets.0.conv1.weight'));
  assert.deepEqual(m.stateDict().get('down_blocks.0.attentions.0.proj_in.weight')!.shape, [8, 8]);
  assert.deepEqual(
    m.stateDict().get('down_blocks.1.attentions.1.transformer_blocks.0.attn2.to_k.weight')!.shape,
    [16, 10],
  );
  // up block 0 mirrors down block 1: 3 resnets, 4 heads, context 10
  assert.ok(keys.has('up_blocks.0.resnets.2.conv1.weight'));
  assert.deepEqual(
    m.stateDict().get('up_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight')!.shape,
    [8, 6],
  );
  assert.equal(
    m.attentionLayers().get('up_blocks.0.attentions.0.transformer_blocks.0.attn1')!.heads,
    4,
  );
  assert.deepEqual(
    m.stateDict().get('down_blocks.0.resnets.0.time_emb_proj.weight')!.shape,
    [16, 20],
  );
  assert.ok(!keys.has('down_blocks.1.downsamplers.0.conv.weight'));
  assert.ok(!keys.has('up_blocks.1.upsamplers.0.conv.weight'));
  m.dispose();
  manualSeed(2);
  const n = new UNet2DConditionModel({
    block_out_channels: [8, 16],
    down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'],
    up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'],
    norm_num_groups: 4,
    cross_attention_dim: 6,
    attention_head_dim: 2,
    use_linear_projection: true,
    resnet_time_scale_shift: 'scale_shift',
    mid_block_type: null,
    center_input_sample: true,
  });
  noGrad(() =>
    tidy(() => {
      const out = n.forward(randn([1, 4, 6, 6]), 10, randn([1, 3, 6]));
      assert.deepEqual(out.shape, [1, 4, 6, 6]);
      assert.throws(() => n.forward(randn([1, 3, 6, 6]), 10, randn([1, 3, 6])), /sample of shape/);
      assert.throws(
        () => n.forward(randn([1, 4, 6, 6]), 10, randn([2, 3, 6])),
        /encoderHiddenStates/,
      );
    }),
  );
  n.dispose();
});
