// Loader error paths on folders written by the tiny-model generator: each error names the file,
// the folder or the key a user must fix.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  copyFileSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  truncateSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tidy } from '../../src/index.js';
import { SafetensorsError, SafetensorsFile } from '../../src/io/safetensors.js';
import { ConfigKeyError, ModelLoadError } from '../../src/models/loading.js';
import { CLIPTextModel } from '../../src/models/clip/index.js';
import { UNet2DConditionModel } from '../../src/models/unet/index.js';
import { AutoencoderKL } from '../../src/models/vae/index.js';
import {
  writeTinyClipVision,
  writeTinyTextEncoder,
  writeTinyUNet,
  writeTinyVae,
} from '../../apps/testing/tiny_models.js';
import { CLIPVisionModelWithProjection } from '../../src/models/clip/index.js';

const tmp = mkdtempSync(join(tmpdir(), 'p3s-loading-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const WEIGHTS = 'diffusion_pytorch_model.safetensors';
// A small U-Net in SD's layout (two blocks) keeps these tests fast.
const SMALL_UNET = {
  block_out_channels: [8, 16],
  down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'],
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'],
  norm_num_groups: 4,
  attention_head_dim: 2,
  cross_attention_dim: 8,
  layers_per_block: 1,
};
const SMALL_VAE = {
  block_out_channels: [8, 8],
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'],
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'],
  norm_num_groups: 4,
  layers_per_block: 1,
};

const unetDir = (name: string, seed = 0, config: Record<string, unknown> = SMALL_UNET) => {
  const dir = join(tmp, name);
  writeTinyUNet(dir, { seed, config });
  return dir;
};

function editConfig(dir: string, edit: (c: Record<string, unknown>) => void): void {
  const path = join(dir, 'config.json');
  const config = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  edit(config);
  writeFileSync(path, JSON.stringify(config, null, 2));
}

/** conv_in.weight of a U-Net as numbers. */
const convIn = (m: UNet2DConditionModel) =>
  m.stateDict().get('conv_in.weight')!.toArray().slice(0, 20);
const fileConvIn = (path: string) =>
  tidy(() => SafetensorsFile.open(path).tensor('conv_in.weight').float().toArray().slice(0, 20));

test('the written folders load back', () => {
  const unet = UNet2DConditionModel.fromPretrained(unetDir('ok'));
  assert.deepEqual(convIn(unet), fileConvIn(join(tmp, 'ok', WEIGHTS)));
  unet.dispose();
  writeTinyVae(join(tmp, 'vae'), { seed: 0, config: SMALL_VAE });
  AutoencoderKL.fromPretrained(join(tmp, 'vae')).dispose();
  writeTinyTextEncoder(join(tmp, 'te'), { seed: 0, config: { vocab_size: 100 } });
  CLIPTextModel.fromPretrained(join(tmp, 'te')).dispose();
});

test('a missing weights file names the folder and the file names looked for', () => {
  const dir = unetDir('no-weights');
  rmSync(join(dir, WEIGHTS));
  assert.throws(
    () => UNet2DConditionModel.fromPretrained(dir),
    (e: Error) =>
      e instanceof ModelLoadError &&
      e.message.includes(dir) &&
      e.message.includes(WEIGHTS) &&
      /found config\.json/.test(e.message),
  );
});

test('a .bin (pickle) file only: the error says how to convert it', () => {
  const dir = unetDir('bin-only');
  renameSync(join(dir, WEIGHTS), join(dir, 'diffusion_pytorch_model.bin'));
  assert.throws(
    () => UNet2DConditionModel.fromPretrained(dir),
    (e: Error) =>
      e instanceof ModelLoadError &&
      e.message.includes('diffusion_pytorch_model.bin') &&
      /pickle/.test(e.message) &&
      /save_file\(torch\.load\("diffusion_pytorch_model\.bin"/.test(e.message) &&
      /diffusion_pytorch_model\.safetensors/.test(e.message),
  );
  const te = join(tmp, 'te-bin');
  writeTinyTextEncoder(te, { seed: 0, config: { vocab_size: 100 } });
  renameSync(join(te, 'model.safetensors'), join(te, 'pytorch_model.bin'));
  assert.throws(() => CLIPTextModel.fromPretrained(te), /pytorch_model\.bin is a PyTorch pickle/);
});

test('the fp16 variant is preferred when asked for, the default file otherwise', () => {
  const dir = unetDir('variant', 1);
  // the same config, other weights (seed 2) in float16 under the variant's name
  writeTinyUNet(join(tmp, 'variant-src'), {
    seed: 2,
    config: SMALL_UNET,
    dtype: 'float16',
    variant: 'fp16',
  });
  const fp16 = join(dir, 'diffusion_pytorch_model.fp16.safetensors');
  copyFileSync(join(tmp, 'variant-src', 'diffusion_pytorch_model.fp16.safetensors'), fp16);
  assert.equal(SafetensorsFile.open(fp16).info('conv_in.weight').dtype, 'float16');

  const half = UNet2DConditionModel.fromPretrained(dir, { variant: 'fp16' });
  assert.deepEqual(convIn(half), fileConvIn(fp16));
  assert.equal(half.stateDict().get('conv_in.weight')!.dtype, 'float32');
  half.dispose();
  const full = UNet2DConditionModel.fromPretrained(dir);
  assert.deepEqual(convIn(full), fileConvIn(join(dir, WEIGHTS)));
  assert.notDeepEqual(convIn(full), fileConvIn(fp16));
  full.dispose();
  // fp16 weights loaded into a float16 model stay bit-exact
  const f16 = UNet2DConditionModel.fromPretrained(dir, { variant: 'fp16', dtype: 'float16' });
  assert.equal(f16.stateDict().get('conv_in.weight')!.dtype, 'float16');
  assert.deepEqual(convIn(f16), fileConvIn(fp16));
  f16.dispose();
  // asked for a variant the folder lacks: the default file
  rmSync(fp16);
  const fallback = UNet2DConditionModel.fromPretrained(dir, { variant: 'fp16' });
  assert.deepEqual(convIn(fallback), fileConvIn(join(dir, WEIGHTS)));
  fallback.dispose();
});

test('a truncated safetensors file: the error names the file and says truncated', () => {
  const dir = unetDir('truncated');
  const path = join(dir, WEIGHTS);
  truncateSync(path, Math.floor(statSync(path).size / 2));
  assert.throws(
    () => UNet2DConditionModel.fromPretrained(dir),
    (e: Error) =>
      e instanceof SafetensorsError && e.message.startsWith(WEIGHTS) && /truncated/.test(e.message),
  );
  // cut inside the header too
  truncateSync(path, 100);
  assert.throws(
    () => UNet2DConditionModel.fromPretrained(dir),
    /truncated or not a safetensors file/,
  );
});

test('an unsupported config value: the error names the key and what is allowed', () => {
  const cases: [string, (dir: string) => void, RegExp][] = [
    ['act_fn', (d) => UNet2DConditionModel.fromPretrained(d), /"act_fn".*allowed: "silu"/],
    ['attention_type', (d) => UNet2DConditionModel.fromPretrained(d), /"attention_type"/],
  ];
  for (const [key, load, message] of cases) {
    const dir = unetDir(`bad-${key}`);
    editConfig(dir, (c) => (c[key] = key === 'act_fn' ? 'gelu' : 'gated'));
    assert.throws(() => load(dir), message);
  }
  const vae = join(tmp, 'bad-vae');
  writeTinyVae(vae, { seed: 0, config: SMALL_VAE });
  editConfig(vae, (c) => (c.up_block_types = ['UpDecoderBlock2D', 'AttnUpDecoderBlock2D']));
  assert.throws(() => AutoencoderKL.fromPretrained(vae), /config key "up_block_types"/);
  const te = join(tmp, 'bad-te');
  writeTinyTextEncoder(te, { seed: 0, config: { vocab_size: 100 } });
  editConfig(te, (c) => (c.hidden_act = 'relu'));
  assert.throws(() => CLIPTextModel.fromPretrained(te), /config key "hidden_act".*"quick_gelu"/);
  const vision = join(tmp, 'bad-vision');
  writeTinyClipVision(vision, { seed: 0 });
  editConfig(vision, (c) => (c.model_type = 'siglip_vision_model'));
  assert.throws(
    () => CLIPVisionModelWithProjection.fromPretrained(vision),
    /"siglip_vision_model" for config key "model_type"/,
  );
});

test('a config key the file leaves out is reported as missing, with the file', () => {
  const unet = unetDir('no-block-out-channels');
  editConfig(unet, (c) => delete c.block_out_channels);
  assert.throws(
    () => UNet2DConditionModel.fromPretrained(unet),
    (e: unknown) =>
      e instanceof ConfigKeyError &&
      e.message ===
        `Missing config key "block_out_channels" in ${join(unet, 'config.json')}: ` +
          'expected a list of 2 positive integers',
  );
  // the key that decides the others' length, left out: it is the one named
  const noTypes = unetDir('no-down-block-types');
  editConfig(noTypes, (c) => delete c.down_block_types);
  assert.throws(
    () => UNet2DConditionModel.fromPretrained(noTypes),
    /^ConfigKeyError: Missing config key "down_block_types" in .*config\.json: expected a value that fits "up_block_types"/,
  );
  const vae = join(tmp, 'vae-no-block-out-channels');
  writeTinyVae(vae, { seed: 0, config: SMALL_VAE });
  editConfig(vae, (c) => delete c.block_out_channels);
  assert.throws(
    () => AutoencoderKL.fromPretrained(vae),
    (e: unknown) =>
      e instanceof ConfigKeyError &&
      e.message.startsWith(
        `Missing config key "block_out_channels" in ${join(vae, 'config.json')}: expected a value that fits "down_block_types"`,
      ),
  );
  // a value the file gives is still reported as given, now with the file
  const given = unetDir('three-block-out-channels');
  editConfig(given, (c) => (c.block_out_channels = [8, 16, 16]));
  assert.throws(
    () => UNet2DConditionModel.fromPretrained(given),
    (e: unknown) =>
      e instanceof ConfigKeyError &&
      e.message ===
        `Unsupported value [8,16,16] for config key "block_out_channels" in ${join(given, 'config.json')}; ` +
          'allowed: a list of 2 positive integers',
  );
});

test('a folder of another model: the error says what it looks like and names a few keys', () => {
  const unet = unetDir('given-as-clip');
  let message = '';
  try {
    CLIPVisionModelWithProjection.fromPretrained(unet);
  } catch (err) {
    message = (err as Error).message;
  }
  assert.match(
    message,
    new RegExp(
      `^${unet.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} does not hold CLIPVisionModelWithProjection weights: ` +
        'it looks like a UNet2DConditionModel \\(config\\.json _class_name "UNet2DConditionModel"; ' +
        `${WEIGHTS}: \\d+ tensors under conv_in, conv_norm_out, conv_out, down_blocks, mid_block, \\.\\.\\.\\), ` +
        'not a CLIPVisionModelWithProjection\\. missing keys: vision_model\\.[^|]* and \\d+ more \\| ' +
        'unexpected keys: conv_in\\.bias, [^|]* and \\d+ more$',
    ),
  );
  // a few keys by name, not hundreds
  assert.ok(message.length < 1200, `${message.length} characters`);
  assert.equal(message.match(/vision_model\./g)?.length, 5);
});

test("another config's weights: the error names the file and the mis-shaped keys", () => {
  const dir = unetDir('mismatch');
  const other = unetDir('mismatch-src', 0, { ...SMALL_UNET, block_out_channels: [8, 24] });
  copyFileSync(join(other, WEIGHTS), join(dir, WEIGHTS));
  assert.throws(
    () => UNet2DConditionModel.fromPretrained(dir),
    (e: Error) =>
      e instanceof ModelLoadError &&
      e.message.includes(WEIGHTS) &&
      e.message.includes(dir) &&
      /mis-shaped keys: .*down_blocks\.1\.resnets\.0\.conv1\.weight: checkpoint \[24, 8, 3, 3\] vs model \[16, 8, 3, 3\]/.test(
        e.message,
      ),
  );
  // a checkpoint with other blocks: missing and unexpected keys by name
  const deeper = unetDir('mismatch-deeper', 0, { ...SMALL_UNET, layers_per_block: 2 });
  copyFileSync(join(deeper, WEIGHTS), join(dir, WEIGHTS));
  assert.throws(
    () => UNet2DConditionModel.fromPretrained(dir),
    /unexpected keys: (down_blocks\.0\.[\w.]+, ){4}down_blocks\.0\.[\w.]+ and \d+ more/,
  );
  // the text encoder of another width
  const te = join(tmp, 'te-mismatch');
  writeTinyTextEncoder(te, { seed: 0, config: { vocab_size: 100 } });
  writeTinyTextEncoder(join(tmp, 'te-wide'), {
    seed: 0,
    config: { vocab_size: 100, hidden_size: 64 },
  });
  copyFileSync(join(tmp, 'te-wide', 'model.safetensors'), join(te, 'model.safetensors'));
  assert.throws(
    () => CLIPTextModel.fromPretrained(te),
    (e: Error) =>
      e instanceof ModelLoadError &&
      e.message.includes('model.safetensors') &&
      /text_model\.embeddings\.token_embedding\.weight: checkpoint \[100, 64\] vs model \[100, 32\]/.test(
        e.message,
      ),
  );
});
