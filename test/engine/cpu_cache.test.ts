import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { memory, ones, resetPeakInUse } from '../../src/index.js';

const MiB = 1 << 20;

/** A float32 tensor of `mib` MiB, filled, then freed. */
function allocateAndFree(mib: number): void {
  const t = ones([(mib * MiB) / 4]);
  t.dispose();
}

test('a freed large buffer serves the next request of its size instead of fresh memory', () => {
  if (memory().cpuCache.limitBytes === 0) return; // P3S_CPU_CACHE_MB=0 in this environment
  allocateAndFree(8);
  const before = memory().cpuCache;
  allocateAndFree(8);
  const after = memory().cpuCache;
  assert.equal(after.hits, before.hits + 1, 'the second buffer came from the cache');
  assert.equal(after.misses, before.misses);
  assert.ok(after.cachedBytes >= 8 * MiB, 'freed again, it waits in the cache');
});

test('small buffers are not cached, and a request much smaller than a cached block is a miss', () => {
  if (memory().cpuCache.limitBytes === 0) return;
  const before = memory().cpuCache;
  allocateAndFree(0.5);
  assert.deepEqual(memory().cpuCache, before);
  allocateAndFree(64);
  const cached = memory().cpuCache;
  allocateAndFree(40); // a 64 MiB block is more than 1/8 too big for it
  assert.equal(memory().cpuCache.misses, cached.misses + 1);
});

// The limit is read once, when the native core loads, so it is tested in a child process.
const CHILD = `
import { memory, ones } from ${JSON.stringify(new URL('../../src/index.js', import.meta.url).href)};
const held = [1, 2, 3].map(() => ones([(3 << 20) / 4]));
for (const t of held) t.dispose();
console.log(JSON.stringify(memory().cpuCache));
`;

test('the cache keeps no more freed bytes than P3S_CPU_CACHE_MB; 0 turns it off', () => {
  const run = (mb: string) => {
    const out = spawnSync(process.execPath, ['--input-type=module', '-e', CHILD], {
      env: { ...process.env, P3S_CPU_CACHE_MB: mb },
      cwd: fileURLToPath(new URL('.', import.meta.url)),
      encoding: 'utf8',
    });
    assert.equal(out.status, 0, out.stderr);
    return JSON.parse(out.stdout) as { cachedBytes: number; limitBytes: number; hits: number };
  };
  const limited = run('7');
  assert.equal(limited.limitBytes, 7 * MiB);
  assert.equal(limited.cachedBytes, 6 * MiB, 'two of the three 3 MiB buffers fit under 7 MiB');
  const off = run('0');
  assert.deepEqual([off.limitBytes, off.cachedBytes, off.hits], [0, 0, 0]);
});

test('the bytes tensors hold are counted, cached or not, and their peak restarts on request', () => {
  const start = memory().cpuCache.inUseBytes;
  resetPeakInUse();
  const a = ones([(8 * MiB) / 4]);
  const b = ones([(4 * MiB) / 4]);
  assert.equal(memory().cpuCache.inUseBytes, start + 12 * MiB);
  a.dispose();
  assert.equal(memory().cpuCache.inUseBytes, start + 4 * MiB, 'a freed buffer is not in use');
  assert.equal(memory().cpuCache.peakInUseBytes, start + 12 * MiB);
  b.dispose();
  resetPeakInUse();
  assert.equal(memory().cpuCache.peakInUseBytes, start);
  const c = ones([(8 * MiB) / 4]); // served from the cache where there is one: still in use
  assert.equal(memory().cpuCache.peakInUseBytes, start + 8 * MiB);
  c.dispose();
});
