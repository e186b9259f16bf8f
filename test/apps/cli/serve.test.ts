// `p3s serve` as a person runs it: --help from the settings table, a host off this machine
// refused without a token (a usage error), and a server that starts on the toy models, prints
// its URL, answers, and stops cleanly on SIGTERM with its data kept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SERVE_SETTINGS } from '../../../apps/cli/serve.js';

const CLI = fileURLToPath(new URL('../../../apps/cli/main.js', import.meta.url));

test('p3s serve --help lists every flag of its settings table', () => {
  const r = spawnSync(process.execPath, [CLI, 'serve', '--help'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  for (const s of SERVE_SETTINGS) assert.match(r.stdout, new RegExp(`--${s.flag}\\b`));
});

test('listening off this machine without a token is a usage error', () => {
  const r = spawnSync(process.execPath, [CLI, 'serve', '--host', '0.0.0.0', '--port', '0'], {
    encoding: 'utf8',
    env: { ...process.env, P3S_TOKEN: '' },
  });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /Refusing to listen on 0\.0\.0\.0 without a token/);
});

test('p3s serve prints its URL, serves the API and the toy subject, and stops on SIGTERM', async () => {
  const data = mkdtempSync(join(tmpdir(), 'p3s-serve-cli-'));
  const child = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--data', data], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no URL printed: ${out}`)), 60_000);
      child.stdout.on('data', () => {
        const m = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      });
    });
    const health = (await (await fetch(`${url}api/health`)).json()) as { ok: boolean };
    assert.equal(health.ok, true);
    const subjects = (await (await fetch(`${url}api/subjects`)).json()) as { name: string }[];
    assert.equal(subjects.length, 1, 'the toy subject is ready');
    const page = await fetch(url);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<html/i);
    child.kill('SIGTERM');
    assert.equal(await exited, 0, out);
    assert.ok(
      existsSync(join(data, 'subjects')) && readdirSync(join(data, 'subjects')).length === 1,
    );
  } finally {
    child.kill('SIGKILL');
    rmSync(data, { recursive: true, force: true });
  }
});
