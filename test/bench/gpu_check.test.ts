// `npm run gpu:check` in its CPU mode: the same phases on the tiny test models, so the script a
// GPU machine runs is exercised here (parity on the fixtures, a P3S step, a 50-step generation).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { repoRoot } from '../helpers/paths.js';

// The compiled tree this test runs from (dist/ or another --outDir), two folders above test/bench.
const dist = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

test('gpu-check --device cpu reports parity, a training step and a generation', () => {
  const root = repoRoot();
  const r = spawnSync(
    process.execPath,
    [
      join(root, 'scripts', 'gpu-check.mjs'),
      '--device',
      'cpu',
      '--skip',
      'demo',
      '--dist',
      relative(root, dist),
    ],
    { cwd: root, encoding: 'utf8', env: { ...process.env, P3S_NUM_THREADS: '1' } },
  );
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout) as Record<string, Record<string, unknown>>;
  assert.equal(report.parity?.pass, true);
  assert.equal(report.train?.phase, 'train');
  assert.ok(Number(report.train?.seconds) > 0);
  assert.ok(Number(report.train?.peakRssMiB) > 0);
  assert.equal(report.generate?.steps, 50);
  assert.equal(report.generate?.imageSide, 64);
  assert.equal(report.demo, undefined);
});
