import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tensor, tidy, inferenceMode } from '../../../src/index.js';
import { SafetensorsFile, saveSafetensors } from '../../../src/io/safetensors.js';
import { ModelLoadError } from '../../../src/models/loading.js';
import { AutoencoderKL } from '../../../src/models/vae/index.js';
import { fixturePath } from '../../helpers/paths.js';
import { assertClose, maxAbsDiff } from '../../helpers/tensors.js';

const root = fixturePath('tiny-sd');
const vaeDir = join(root, 'vae');
const weightFile = 'diffusion_pytorch_model.safetensors';
const ref = SafetensorsFile.open(join(root, 'reference.safetensors'));
const vae = AutoencoderKL.fromPretrained(vaeDir);
const tmp = mkdtempSync(join(tmpdir(), 'p3s-vae-'));
after(() => {
  vae.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

const ENCODE = { atol: 1e-4, rtol: 1e-4 };
const DECODE = { atol: 1e-3, rtol: 1e-3 };

function expected(name: string): { shape: readonly number[]; data: number[] } {
  const t = ref.tensor(name);
  const out = { shape: [...t.shape], data: t.toArray() };
  t.dispose();
  return out;
}

function report(label: string, actual: Tensor, name: string): void {
  const e = expected(name);
  console.log(`${label}: max abs error ${maxAbsDiff(actual.toArray(), e.data).toExponential(2)}`);
}

/** A VAE folder in tmp holding the fixture's config and its weights changed by `edit`. */
function folderWith(
  name: string,
  edit: (state: Map<string, Tensor>) => Map<string, Tensor>,
): string {
  const folder = join(tmp, name);
  mkdirSync(folder, { recursive: true });
  copyFileSync(join(vaeDir, 'config.json'), join(folder, 'config.json'));
  tidy(() => {
    const state = SafetensorsFile.open(join(vaeDir, weightFile)).loadAll();
    saveSafetensors(join(folder, weightFile), edit(state));
  });
  return folder;
}

test('the fixture VAE loads with diffusers 0.27 key names', () => {
  const keys = new Set(vae.stateDict().keys());
  const fileKeys = SafetensorsFile.open(join(vaeDir, weightFile)).keys();
  assert.deepEqual([...keys].sort(), [...fileKeys].sort());
  for (const k of [
    'encoder.conv_in.weight',
    'encoder.down_blocks.0.resnets.1.conv2.weight',
    'encoder.down_blocks.2.downsamplers.0.conv.weight',
    'encoder.mid_block.attentions.0.group_norm.weight',
    'encoder.mid_block.attentions.0.to_out.0.bias',
    'encoder.mid_block.resnets.1.norm1.bias',
    'quant_conv.weight',
    'post_quant_conv.bias',
    'decoder.up_blocks.3.resnets.2.conv1.weight',
    'decoder.up_blocks.0.upsamplers.0.conv.weight',
    'decoder.conv_norm_out.weight',
  ]) {
    assert.ok(keys.has(k), k);
  }
  assert.equal(vae.scalingFactor, 0.18215);
  assert.equal(vae.training, false);
});

test('encode matches diffusers: moments, mean, logvar, std', () => {
  inferenceMode(() =>
    tidy(() => {
      const dist = vae.encode(ref.tensor('vae_encode_input'));
      assertClose(dist.parameters, expected('vae_encode_moments'), { ...ENCODE, label: 'moments' });
      assertClose(dist.mean, expected('vae_latent_mean'), { ...ENCODE, label: 'mean' });
      assertClose(dist.logvar, expected('vae_latent_logvar'), { ...ENCODE, label: 'logvar' });
      assertClose(dist.std, expected('vae_latent_std'), { ...ENCODE, label: 'std' });
      assertClose(dist.mode(), expected('vae_latent_mean'), { ...ENCODE, label: 'mode' });
      report('encode mean', dist.mean, 'vae_latent_mean');
      report('encode logvar', dist.logvar, 'vae_latent_logvar');
      report('encode std', dist.std, 'vae_latent_std');
      // Round trip through the mean.
      const back = vae.decode(dist.mean);
      assertClose(back, expected('vae_roundtrip'), { ...DECODE, label: 'roundtrip' });
      report('roundtrip', back, 'vae_roundtrip');
    }),
  );
});

test('decode matches diffusers, square, scaled and non-square', () => {
  inferenceMode(() =>
    tidy(() => {
      const z = ref.tensor('vae_decode_input');
      const out = vae.decode(z);
      assertClose(out, expected('vae_decode_out'), { ...DECODE, label: 'decode' });
      report('decode', out, 'vae_decode_out');
      const scaled = vae.decodeLatents(z);
      assertClose(scaled, expected('vae_decode_out_scaled'), { ...DECODE, label: 'decodeLatents' });
      report('decodeLatents', scaled, 'vae_decode_out_scaled');
      const ns = vae.decode(ref.tensor('vae_decode_nonsquare_input'));
      assert.deepEqual([...ns.shape], [1, 3, 32, 48]);
      assertClose(ns, expected('vae_decode_nonsquare_out'), { ...DECODE, label: 'non-square' });
      report('decode non-square', ns, 'vae_decode_nonsquare_out');
    }),
  );
});

const OLD_NAMES: [RegExp, string][] = [
  [/\.to_q\./, '.query.'],
  [/\.to_k\./, '.key.'],
  [/\.to_v\./, '.value.'],
  [/\.to_out\.0\./, '.proj_attn.'],
];

function renamed(state: Map<string, Tensor>): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [k, v] of state) {
    let name = k;
    for (const [from, to] of OLD_NAMES) name = name.replace(from, to);
    out.set(name, v);
  }
  return out;
}

function decodesLikeFixture(model: AutoencoderKL, label: string): void {
  inferenceMode(() =>
    tidy(() => {
      const dist = model.encode(ref.tensor('vae_encode_input'));
      assertClose(dist.mean, expected('vae_latent_mean'), { ...ENCODE, label: `${label} mean` });
      const out = model.decode(ref.tensor('vae_decode_input'));
      assertClose(out, expected('vae_decode_out'), { ...DECODE, label: `${label} decode` });
    }),
  );
}

test('loads the old query/key/value/proj_attn attention names (SD 1.5 file)', () => {
  const folder = folderWith('old-names', renamed);
  const keys = SafetensorsFile.open(join(folder, weightFile)).keys();
  assert.ok(keys.includes('decoder.mid_block.attentions.0.proj_attn.weight'));
  assert.ok(!keys.some((k) => k.includes('to_q')));
  const model = AutoencoderKL.fromPretrained(folder);
  decodesLikeFixture(model, 'old names');
  model.dispose();
});

test('loads attention weights stored as [C, C, 1, 1] convolutions', () => {
  const folder = folderWith('conv-shaped', (state) => {
    const out = renamed(state);
    for (const [k, v] of out) {
      if (/attentions\.0\.(query|key|value|proj_attn)\.weight$/.test(k)) {
        out.set(k, v.view(v.shape[0]!, v.shape[1]!, 1, 1));
      }
    }
    return out;
  });
  const info = SafetensorsFile.open(join(folder, weightFile)).info(
    'encoder.mid_block.attentions.0.query.weight',
  );
  assert.deepEqual(info.shape, [32, 32, 1, 1]);
  const model = AutoencoderKL.fromPretrained(folder);
  decodesLikeFixture(model, 'conv-shaped');
  model.dispose();
});

test('a mis-shaped or missing weight is an error naming the key and the file', () => {
  const folder = folderWith('bad-shape', (state) => {
    state.set('decoder.conv_in.weight', state.get('decoder.conv_in.weight')!.slice(0, 0, 16));
    state.delete('encoder.conv_out.bias');
    return state;
  });
  assert.throws(
    () => AutoencoderKL.fromPretrained(folder),
    (err: unknown) =>
      err instanceof ModelLoadError &&
      /decoder\.conv_in\.weight: checkpoint \[16, 4, 3, 3\] vs model \[32, 4, 3, 3\]/.test(
        err.message,
      ) &&
      /encoder\.conv_out\.bias/.test(err.message) &&
      err.message.includes(weightFile),
  );
});

test('fp16 variant and dtype options', () => {
  const folder = join(tmp, 'fp16');
  mkdirSync(folder, { recursive: true });
  copyFileSync(join(vaeDir, 'config.json'), join(folder, 'config.json'));
  tidy(() => {
    const state = SafetensorsFile.open(join(vaeDir, weightFile)).loadAll();
    const half = new Map([...state].map(([k, v]) => [k, v.half()]));
    saveSafetensors(join(folder, 'diffusion_pytorch_model.fp16.safetensors'), half);
  });
  const model = AutoencoderKL.fromPretrained(folder, { variant: 'fp16', dtype: 'float16' });
  assert.equal(model.quantConv.weight.dtype, 'float16');
  tidy(() => {
    const w = SafetensorsFile.open(join(folder, 'diffusion_pytorch_model.fp16.safetensors')).tensor(
      'quant_conv.weight',
    );
    assert.deepEqual(model.quantConv.weight.toArray(), w.toArray());
  });
  model.dispose();
  // float64 computes the same function (the fixture is float32 within ~1e-6).
  const f64 = AutoencoderKL.fromPretrained(vaeDir, { dtype: 'float64' });
  inferenceMode(() =>
    tidy(() => {
      const out = f64.decode(ref.tensor('vae_decode_input').to('float64'));
      assert.equal(out.dtype, 'float64');
      assertClose(out, expected('vae_decode_out'), { ...DECODE, label: 'float64 decode' });
    }),
  );
  f64.dispose();
});

test('fromPretrained refuses a folder of another model class', () => {
  assert.throws(() => AutoencoderKL.fromPretrained(join(root, 'unet')), /_class_name/);
});
