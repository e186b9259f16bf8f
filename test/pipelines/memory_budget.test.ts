// The memory estimate of a sampling request (from the model configs, before anything is
// allocated) and the memory available to it (system, cgroup v1/v2 limits).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  allocatorAllowance,
  estimateSamplingMemory,
  formatBytes,
  largestFittingSide,
  sizeMultiple,
  type SamplingMemoryRequest,
  type UNetShape,
  type VaeShape,
} from '../../src/pipelines/memory_budget.js';
import { availableMemory, readCgroupMemory } from '../../src/io/available_memory.js';
import { fixturePath, repoRoot } from '../helpers/paths.js';

const dir = mkdtempSync(join(tmpdir(), 'p3s-memory-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function configs(base: string): { unet: UNetShape; vae: VaeShape } {
  const read = (part: string): Record<string, unknown> =>
    JSON.parse(readFileSync(join(base, part, 'config.json'), 'utf8')) as Record<string, unknown>;
  return {
    unet: read('unet') as unknown as UNetShape,
    vae: { mid_block_add_attention: true, ...read('vae') } as unknown as VaeShape,
  };
}

const TINY = configs(fixturePath('tiny-sd'));
const TOY = configs(join(repoRoot(), 'models', 'toy'));

function request(side: number, over: Partial<SamplingMemoryRequest> = {}): SamplingMemoryRequest {
  return { ...TINY, height: side, width: side, batch: 2, guided: true, copy: true, ...over };
}

test('the estimate grows with size, batch, guidance and the copy; attention makes it quadratic in pixels', () => {
  for (const models of [TINY, TOY]) {
    let last = 0;
    for (let side = 64; side <= 1024; side += 64) {
      const { live, peak } = estimateSamplingMemory(request(side, models));
      assert.ok(live > last, `${side}px: ${live} after ${last}`);
      assert.ok(peak > live);
      last = live;
    }
  }
  const at = (over: Partial<SamplingMemoryRequest>) => estimateSamplingMemory(request(512, over));
  assert.ok(at({ batch: 4 }).unet > at({ batch: 2 }).unet);
  assert.equal(at({ guided: true }).unet, 2 * at({ guided: false }).unet);
  assert.ok(at({ copy: true }).unet > at({ copy: false }).unet);
  assert.ok(at({ keyFactor: 2 }).unet > at({}).unet);
  assert.ok(at({ keptImages: 10 }).live > at({}).live);
  // at large sizes the self-attention maps dominate: twice the side, ~16 times the memory
  const unet = (side: number) => estimateSamplingMemory(request(side)).unet;
  const ratio = unet(2048) / unet(1024);
  assert.ok(ratio > 12 && ratio <= 16, `U-Net 2048 / 1024 px = ${ratio}`);
  const vae = estimateSamplingMemory(request(4096)).vaeDecode;
  const vaeRatio = vae / estimateSamplingMemory(request(2048)).vaeDecode;
  assert.ok(vaeRatio > 12 && vaeRatio <= 16, `VAE 4096 / 2048 px = ${vaeRatio}`);
});

test("the issue's sizes: 100000 px is far beyond any machine; the sizes the tests use are small", () => {
  assert.ok(estimateSamplingMemory(request(100000)).peak > 1e18); // over an exabyte
  for (const side of [64, 128]) {
    const { live, peak } = estimateSamplingMemory(request(side));
    assert.ok(live < 100e6 && peak < 2e9, `${side}px needs ${formatBytes(peak)}`);
  }
  // the toy models at 1024 px: the U-Net's 65 536-token attention, over a terabyte at batch 4
  assert.ok(estimateSamplingMemory({ ...request(1024, TOY), batch: 4 }).unet > 1e12);
});

test("the allocators' allowance: the cache's share (at most its limit), a quarter of the live peak, a base", () => {
  assert.equal(allocatorAllowance(0), 256e6);
  assert.equal(allocatorAllowance(4e9, 2 ** 31), 2 ** 31 + 1e9 + 256e6);
  assert.equal(allocatorAllowance(1e6, 2 ** 31), 4e6 + 0.25e6 + 256e6);
  const e = estimateSamplingMemory(request(256, { cacheLimitBytes: 2 ** 31 }));
  assert.equal(e.peak, e.live + allocatorAllowance(e.live, 2 ** 31));
});

test('the estimate covers the resident memory measured on the tiny models, and stays near it', () => {
  // P3S sampling, batch 2 with guidance, 20 steps, CPU cache limit 2 GiB: the process grew by
  // these many bytes above the loaded models (docs/p3s.md, "Generation")
  const grown: [number, number][] = [
    [64, 126e6],
    [128, 373e6],
    [256, 1.49e9],
    [384, 2.54e9],
  ];
  for (const [side, bytes] of grown) {
    const { peak } = estimateSamplingMemory(request(side, { cacheLimitBytes: 2 ** 31 }));
    assert.ok(peak >= bytes, `${side}px: estimate ${formatBytes(peak)} < ${formatBytes(bytes)}`);
    assert.ok(
      peak <= 3 * bytes,
      `${side}px: estimate ${formatBytes(peak)} ≫ ${formatBytes(bytes)}`,
    );
  }
});

test('largestFittingSide: the largest multiple whose estimate fits, 0 when none does', () => {
  const square = (side: number) => side * side;
  assert.equal(largestFittingSide(square, 100 * 100, 8, 1000), 96);
  assert.equal(largestFittingSide(square, 104 * 104, 8, 1000), 104);
  assert.equal(largestFittingSide(square, 49, 8, 1000), 0);
  assert.equal(largestFittingSide(square, 1e12, 8, 64), 64); // never above the size asked for
  assert.equal(sizeMultiple(TINY.unet, TINY.vae), 64); // f = 8, three halvings
  assert.equal(sizeMultiple(TOY.unet, TOY.vae), 16); // f = 4, two halvings
});

test('formatBytes reads as free -h --si does', () => {
  assert.equal(formatBytes(512), '512 bytes');
  assert.equal(formatBytes(1536e3), '1.5 MB');
  assert.equal(formatBytes(137438953472), '137 GB');
});

function cgroup(name: string, files: Record<string, string>): string {
  const root = join(dir, name);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

test("available memory: the system's, or the headroom under a cgroup v2 or v1 limit when smaller", () => {
  const free = 8e9;
  const v2 = cgroup('v2', {
    'memory.max': '4000000000\n',
    'memory.current': '3000000000\n',
    'memory.stat': 'anon 2000000000\ninactive_file 500000000\nactive_file 10\n',
  });
  assert.deepEqual(readCgroupMemory(v2), { limit: 4e9, usage: 3e9, reclaimable: 5e8 });
  const capped = availableMemory(v2, free);
  assert.equal(capped.bytes, 4e9 - (3e9 - 5e8));
  assert.match(capped.source, /cgroup's memory limit/);
  assert.equal(capped.limit, 4e9);
  // no limit, or a limit above what the system has: the system's available memory
  const unlimited = cgroup('v2-max', { 'memory.max': 'max\n', 'memory.current': '1\n' });
  assert.deepEqual(availableMemory(unlimited, free), {
    bytes: free,
    source: "the system's available memory",
  });
  assert.equal(availableMemory(v2, 1e9).bytes, 1e9);
  const v1 = cgroup('v1', {
    'memory/memory.limit_in_bytes': '2000000000\n',
    'memory/memory.usage_in_bytes': '1500000000\n',
    'memory/memory.stat': 'cache 9\ntotal_inactive_file 100000000\n',
  });
  assert.equal(availableMemory(v1, free).bytes, 2e9 - 1.4e9);
  const v1None = cgroup('v1-none', {
    'memory/memory.limit_in_bytes': '9223372036854771712\n',
    'memory/memory.usage_in_bytes': '1\n',
  });
  assert.equal(availableMemory(v1None, free).bytes, free);
  assert.equal(readCgroupMemory(join(dir, 'no-cgroup')), null);
  // this machine: some memory, from a named source
  const here = availableMemory();
  assert.ok(here.bytes > 0 && here.source.length > 0);
});
