import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Generator,
  inferenceMode,
  manualSeed,
  memory,
  randn,
  tensor,
  tidy,
} from '../../../src/index.js';
import { ModelLoadError } from '../../../src/models/loading.js';
import { AutoencoderKL, DiagonalGaussianDistribution } from '../../../src/models/vae/index.js';

const TINY = {
  block_out_channels: [4, 8],
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'],
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'],
  layers_per_block: 1,
  norm_num_groups: 2,
  latent_channels: 4,
};

function tiny(extra: Record<string, unknown> = {}): AutoencoderKL {
  manualSeed(0);
  return new AutoencoderKL({ ...TINY, ...extra }).eval();
}

test('shapes: 2^(n-1) downsampling, non-square inputs keep height and width apart', () => {
  const vae = tiny();
  tidy(() => {
    const x = randn([2, 3, 16, 24], { generator: new Generator(1) });
    const dist = vae.encode(x);
    assert.deepEqual([...dist.parameters.shape], [2, 8, 8, 12]);
    assert.deepEqual([...dist.mean.shape], [2, 4, 8, 12]);
    assert.deepEqual([...vae.decode(dist.mean).shape], [2, 3, 16, 24]);
    assert.deepEqual([...vae.forward(x).shape], [2, 3, 16, 24]);
    assert.throws(() => vae.encode(randn([1, 4, 8, 8])), /images of shape \(B, 3, H, W\)/);
    assert.throws(() => vae.decode(randn([1, 3, 8, 8])), /latents of shape \(B, 4, H, W\)/);
  });
  vae.dispose();
});

test('sample() is mean + std · ε with ε from the generator, and deterministic', () => {
  tidy(() => {
    const moments = randn([2, 8, 3, 5], { generator: new Generator(7) });
    const dist = new DiagonalGaussianDistribution(moments);
    const a = dist.sample(new Generator(42));
    const b = dist.sample(new Generator(42));
    const c = dist.sample(new Generator(43));
    assert.deepEqual(a.toArray(), b.toArray());
    assert.notDeepEqual(a.toArray(), c.toArray());
    const eps = randn([2, 4, 3, 5], { generator: new Generator(42) });
    assert.deepEqual(a.toArray(), dist.mean.add(dist.std.mul(eps)).toArray());
    // A list of generators draws sample i from generator i (diffusers' randn_tensor).
    const perSample = dist.sample([new Generator(5), new Generator(6)]);
    for (const [i, seed] of [5, 6].entries()) {
      const e = randn([1, 4, 3, 5], { generator: new Generator(seed) });
      const want = dist.mean.slice(0, i, i + 1).add(dist.std.slice(0, i, i + 1).mul(e));
      assert.deepEqual(perSample.slice(0, i, i + 1).toArray(), want.toArray(), `sample ${i}`);
    }
    assert.throws(() => dist.sample([new Generator(5)]), /Expected 2 generators/);
  });
});

test('encodeToLatents samples and scales; decodeLatents unscales', () => {
  const vae = tiny({ scaling_factor: 0.5 });
  inferenceMode(() =>
    tidy(() => {
      const x = randn([1, 3, 8, 8], { generator: new Generator(2) });
      const latents = vae.encodeToLatents(x, new Generator(3));
      const manual = vae.encode(x).sample(new Generator(3)).mul(0.5);
      assert.deepEqual(latents.toArray(), manual.toArray());
      assert.deepEqual(
        vae.decodeLatents(latents).toArray(),
        vae.decode(latents.div(0.5)).toArray(),
      );
    }),
  );
  vae.dispose();
});

test('logvar is clamped to [-30, 20]; std, var and kl follow it', () => {
  tidy(() => {
    const mean = [0.5, -1];
    const rawLogvar = [-40, 25];
    // (1, 2, 1, 2): channel 0 is the mean, channel 1 the log-variance.
    const dist = new DiagonalGaussianDistribution(tensor([...mean, ...rawLogvar], [1, 2, 1, 2]));
    const lv = [-30, 20];
    assert.deepEqual(dist.logvar.toArray(), lv);
    const close = (got: number, want: number): void =>
      assert.ok(Math.abs(got - want) <= 1e-6 * Math.abs(want), `${got} vs ${want}`);
    dist.std.toArray().forEach((s, i) => close(s, Math.exp(0.5 * lv[i]!)));
    dist.var.toArray().forEach((s, i) => close(s, Math.exp(lv[i]!)));
    const klWant =
      0.5 * [0, 1].reduce((s, i) => s + mean[i]! ** 2 + Math.exp(lv[i]!) - 1 - lv[i]!, 0);
    const kl = dist.kl().toArray();
    assert.equal(kl.length, 1);
    close(kl[0]!, klWant);
    assert.ok(Math.abs(dist.kl(dist).item()) < 1e-6, 'KL with itself is 0');
    assert.deepEqual(dist.mode().toArray(), mean);
    const det = new DiagonalGaussianDistribution(
      tensor([...mean, ...rawLogvar], [1, 2, 1, 2]),
      true,
    );
    assert.deepEqual(det.std.toArray(), [0, 0]);
    assert.deepEqual(det.kl().toArray(), [0]);
  });
});

test('tidy-wrapped encode and decode leak no tensors, with and without grad', () => {
  const vae = tiny();
  const x = randn([1, 3, 16, 16], { generator: new Generator(4) });
  const run = (): void => {
    const before = memory().liveTensors;
    const out = tidy(() => {
      const dist = vae.encode(x);
      return { latents: vae.encodeToLatents(x, new Generator(1)), image: vae.decode(dist.mean) };
    });
    assert.equal(memory().liveTensors, before + 2, 'only the two results survive');
    out.latents.dispose();
    out.image.dispose();
    tidy(() => {
      vae.forward(x, { samplePosterior: true, generator: new Generator(2) });
    });
    assert.equal(memory().liveTensors, before, 'nothing else is left');
  };
  inferenceMode(run);
  run(); // with autograd: freeing activations mid-forward must not break anything
  tidy(() => {
    vae.decode(vae.encode(x).mean).square().mean().backward();
  });
  assert.ok(vae.encoder.convIn.weight.grad !== null, 'gradients reach the encoder');
  vae.dispose();
  x.dispose();
});

test('a distribution returned from tidy() says why it cannot be used', () => {
  const vae = tiny();
  const x = randn([1, 3, 8, 8]);
  const dist = tidy(() => vae.encode(x));
  assert.throws(() => dist.mean, /returned from tidy\(\)/);
  vae.dispose();
  x.dispose();
});

test('mid_block_add_attention: false builds no attention', () => {
  const vae = tiny({ mid_block_add_attention: false });
  const keys = [...vae.stateDict().keys()];
  assert.ok(!keys.some((k) => k.includes('attentions')));
  assert.ok(keys.includes('decoder.mid_block.resnets.1.conv2.weight'));
  tidy(() => assert.deepEqual([...vae.forward(randn([1, 3, 8, 8])).shape], [1, 3, 8, 8]));
  vae.dispose();
  const withAttn = tiny();
  assert.ok(withAttn.stateDict().has('encoder.mid_block.attentions.0.to_q.weight'));
  assert.deepEqual(
    [...withAttn.stateDict().get('encoder.mid_block.attentions.0.to_q.weight')!.shape],
    [8, 8],
  );
  withAttn.dispose();
});

test('unsupported config values throw naming the key', () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ down_block_types: ['DownEncoderBlock2D', 'AttnDownEncoderBlock2D'] }, 'down_block_types'],
    [{ up_block_types: ['UpDecoderBlock2D'] }, 'up_block_types'],
    [{ act_fn: 'gelu' }, 'act_fn'],
    [{ block_out_channels: [4, 5] }, 'block_out_channels'],
    [{ layers_per_block: 0 }, 'layers_per_block'],
    [{ latent_channels: 2.5 }, 'latent_channels'],
    [{ scaling_factor: 'x' }, 'scaling_factor'],
    [{ mid_block_add_attention: 'yes' }, 'mid_block_add_attention'],
    [{ use_quant_conv: false }, 'use_quant_conv'],
  ];
  for (const [extra, key] of cases) {
    assert.throws(
      () => new AutoencoderKL({ ...TINY, ...extra }),
      (err: unknown) => err instanceof ModelLoadError && err.message.includes(`"${key}"`),
      key,
    );
  }
});
