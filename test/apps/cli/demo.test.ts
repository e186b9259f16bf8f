// `p3s demo` from the command line: help, and a clear error for a folder without toy models.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '../../helpers/paths.js';

const main = join(repoRoot(), 'dist', 'apps', 'cli', 'main.js');
const p3s = (...args: string[]) =>
  spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', timeout: 60_000 });

test('p3s demo --help explains the demo and its options', () => {
  const r = p3s('demo', '--help');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /look-alike/);
  assert.match(r.stdout, /--no-baseline/);
  assert.match(r.stdout, /--sequential/);
  assert.match(r.stdout, /--injection <mode> +decoupled, joint or aligned \(default aligned/);
  assert.match(r.stdout, /--paper-settings +the paper's adapter instead/);
  assert.match(p3s('--help').stdout, /demo +the whole method/);
});

test('p3s demo on a folder without toy models says what is missing', () => {
  const r = p3s('demo', '--model', repoRoot(), '--out', join(repoRoot(), 'dist', 'no-demo'));
  assert.equal(r.status, 2);
  assert.match(r.stderr, /is not a toy model folder \(no model_index\.json\)/);
});

test('p3s demo refuses an unknown injection mode, weight curve or a negative latent bias before any work', () => {
  const out = join(repoRoot(), 'dist', 'no-demo');
  const mode = p3s('demo', '--out', out, '--injection', 'sideways');
  assert.equal(mode.status, 2);
  assert.match(mode.stderr, /Expected one of decoupled, joint, aligned for --injection/);
  const curve = p3s('demo', '--out', out, '--weight-curve', 'wobbly');
  assert.equal(curve.status, 2);
  assert.match(curve.stderr, /Unknown weight curve "wobbly"/);
  const crop = p3s('demo', '--out', out, '--crop-subject', '0.5');
  assert.equal(crop.status, 2);
  assert.match(crop.stderr, /at least 1 for --crop-subject/);
  const bias = p3s('demo', '--out', out, '--latent-bias=-1');
  assert.equal(bias.status, 2);
  assert.match(bias.stderr, /non-negative number for --latent-bias/);
});
