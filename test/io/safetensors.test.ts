import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tensor, tidy, randn, Generator } from '../../src/index.js';
import { SafetensorsFile, loadSafetensors, saveSafetensors } from '../../src/io/safetensors.js';
import { fixturePath } from '../helpers/paths.js';

const dir = mkdtempSync(join(tmpdir(), 'p3s-st-'));

test('every dtype and the metadata round-trip', () => {
  tidy(() => {
    const g = new Generator(0);
    const tensors = {
      f32: randn([3, 4], { generator: g }),
      f16: randn([5], { generator: g }).to('float16'),
      bf16: randn([2, 2], { generator: g }).to('bfloat16'),
      f64: randn([2], { generator: g, dtype: 'float64' }),
      i64: tensor(new BigInt64Array([1n, -2n, 3n])),
      i32: tensor(new Int32Array([7, 8])),
      u8: tensor(new Uint8Array([0, 255])),
      b: tensor([1, 0], [2], { dtype: 'bool' }),
      empty: randn([0, 3], { generator: g }),
    };
    const path = join(dir, 'all.safetensors');
    saveSafetensors(path, tensors, { format: 'pt', note: 'p3s' });
    const file = SafetensorsFile.open(path);
    assert.deepEqual(file.metadata, { format: 'pt', note: 'p3s' });
    const loaded = loadSafetensors(path);
    for (const [name, t] of Object.entries(tensors)) {
      const u = loaded.get(name)!;
      assert.equal(u.dtype, t.dtype, name);
      assert.deepEqual([...u.shape], [...t.shape], name);
      assert.deepEqual(u.toArray(), t.toArray(), name);
    }
    assert.equal(
      readdirSync(dir).filter((f) => f.includes('.tmp-')).length,
      0,
      'no temporary file left',
    );
  });
});

test('reads the real diffusers fixture file (fp32 UNet) with its key names', () => {
  const file = SafetensorsFile.open(
    fixturePath('tiny-sd', 'unet', 'diffusion_pytorch_model.safetensors'),
  );
  assert.ok(file.keys().includes('conv_in.weight'));
  tidy(() => {
    const w = file.tensor('conv_in.weight');
    assert.equal(w.dtype, 'float32');
    assert.equal(w.ndim, 4);
  });
});

function corrupt(name: string, mutate: (bytes: Buffer) => Buffer): string {
  const path = join(dir, name);
  tidy(() => saveSafetensors(path, { w: randn([16, 16]) }));
  writeFileSync(path, mutate(readFileSync(path)));
  return path;
}

test('a truncated file is a clear error', () => {
  const path = corrupt('trunc.safetensors', (b) => b.subarray(0, b.length - 100));
  assert.throws(
    () => SafetensorsFile.open(path),
    /data_offsets end at 1024 but the data section has only 924 bytes \(truncated file\?\)/,
  );
});

test('a header length past the end of the file is a clear error', () => {
  const path = corrupt('hdr.safetensors', (b) => {
    const c = Buffer.from(b);
    c.writeBigUInt64LE(10_000_000n, 0);
    return c;
  });
  assert.throws(
    () => SafetensorsFile.open(path),
    /header length 10000000 runs past the end of the file/,
  );
});

test('offsets that disagree with the shape, bad JSON, tiny files: clear errors', () => {
  const path = join(dir, 'bad.safetensors');
  const write = (header: string, data = 0): void => {
    const h = Buffer.from(header);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    writeFileSync(path, Buffer.concat([len, h, Buffer.alloc(data)]));
  };
  write('{"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,8]}}', 16);
  assert.throws(() => SafetensorsFile.open(path), /hold 8 bytes but float32\[2, 2\] needs 16/);
  write('{"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}}', 8);
  assert.throws(() => SafetensorsFile.open(path), /unsupported dtype Q4/);
  write('{not json', 0);
  assert.throws(() => SafetensorsFile.open(path), /not valid JSON/);
  writeFileSync(path, Buffer.alloc(3));
  assert.throws(() => SafetensorsFile.open(path), /too short/);
  assert.throws(() => SafetensorsFile.open(join(dir, 'missing.safetensors')), /cannot open/);
  assert.ok(existsSync(path));
});

test('saveSafetensors refuses what its reader could not read back, and writes nothing', () => {
  tidy(() => {
    const path = join(dir, 'refused.safetensors');
    const refused = (
      tensors: Record<string, unknown>,
      message: RegExp,
      metadata: Record<string, unknown> = {},
    ): void => {
      assert.throws(
        () =>
          saveSafetensors(
            path,
            tensors as Record<string, ReturnType<typeof tensor>>,
            metadata as Record<string, string>,
          ),
        message,
      );
      assert.ok(!existsSync(path), 'a refused file was written');
      assert.equal(readdirSync(dir).filter((f) => f.startsWith('refused')).length, 0);
    };
    refused(
      { __metadata__: tensor([1]), w: tensor([2]) },
      /refused\.safetensors: not written: a tensor is named __metadata__, .*rename the tensor$/,
    );
    refused({ w: [1, 2] }, /not written: w is not a Tensor/);
    refused({ w: tensor([1]) }, /not written: metadata step is number, .*strings only/, {
      step: 3,
    });
    // the same tensors under another name and with string metadata round-trip
    saveSafetensors(path, { meta: tensor([1]) }, { step: '3' });
    const file = SafetensorsFile.open(path);
    assert.deepEqual(file.keys(), ['meta']);
    assert.deepEqual(file.metadata, { step: '3' });
  });
});
