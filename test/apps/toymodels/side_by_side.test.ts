// train:toy's side-by-side schedule: which stages wait for which, and a run of stand-in stage
// processes that records when each started and ended.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runSideBySide } from '../../../apps/toymodels/side_by_side.js';
import { DEFAULT_TOY_STAGES, stageDependencies } from '../../../apps/toymodels/train_toy.js';

test('a stage waits for the earlier stages that write what it reads or writes', () => {
  const deps = Object.fromEntries(stageDependencies(DEFAULT_TOY_STAGES));
  assert.deepEqual(deps, {
    vae: [],
    decoder: ['vae'],
    clip: [],
    probe: [],
    unet: ['vae', 'decoder', 'clip'],
    eval: ['vae', 'decoder', 'clip', 'probe', 'unet'],
  });
  // Only among the stages asked for: the U-Net alone waits for nothing.
  assert.deepEqual(Object.fromEntries(stageDependencies(['unet', 'probe'])), {
    probe: [],
    unet: [],
  });
});

// A stage process: logs "start <stage> <threads>", waits, logs "end <stage>"; FAIL_STAGE exits 3.
const STAND_IN = `
const { appendFileSync } = require('node:fs');
const args = process.argv.slice(2);
const stage = args[args.indexOf('--stages') + 1];
const log = args[0];
appendFileSync(log, 'start ' + stage + ' ' + process.env.P3S_NUM_THREADS + ' ' + args.slice(1, -2).join(' ') + '\\n');
console.log('working on ' + stage);
setTimeout(() => {
  if (process.env.FAIL_STAGE === stage) process.exit(3);
  appendFileSync(log, 'end ' + stage + '\\n');
}, 150);
`;

function setup(): { dir: string; script: string; log: string } {
  const dir = mkdtempSync(join(tmpdir(), 'p3s-side-by-side-'));
  const script = join(dir, 'stage.cjs');
  writeFileSync(script, STAND_IN);
  return { dir, script, log: join(dir, 'log.txt') };
}

test('stages run two at a time in dependency order, one thread each, the last alone on all', async () => {
  const { dir, script, log } = setup();
  try {
    const lines: string[] = [];
    await runSideBySide({
      script,
      args: [log, '--seed', '3'],
      dependencies: stageDependencies(DEFAULT_TOY_STAGES),
      workers: 2,
      threadsAlone: 2,
      log: (line) => lines.push(line),
    });
    const events = readFileSync(log, 'utf8').trim().split('\n');
    const at = (e: string) => events.findIndex((x) => x.startsWith(e));
    for (const [stage, before] of stageDependencies(DEFAULT_TOY_STAGES)) {
      for (const d of before) assert.ok(at(`end ${d}`) < at(`start ${stage}`), `${d} → ${stage}`);
    }
    let running = 0;
    for (const e of events) {
      running += e.startsWith('start') ? 1 : -1;
      assert.ok(running <= 2, events.join('; '));
    }
    assert.ok(
      events.some((e) => e === 'start vae 1 --seed 3'),
      events.join('; '),
    );
    assert.ok(events.includes('start eval 2 --seed 3'), events.join('; '));
    assert.ok(lines.includes('[probe] working on probe'), lines.join('; '));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a failing stage stops the run with its name, and what depends on it never starts', async () => {
  const { dir, script, log } = setup();
  process.env.FAIL_STAGE = 'clip';
  try {
    await assert.rejects(
      runSideBySide({
        script,
        args: [log],
        dependencies: stageDependencies(DEFAULT_TOY_STAGES),
        workers: 2,
        threadsAlone: 2,
        log: () => {},
      }),
      /The clip stage failed \(exit code 3\); run the same command again to resume/,
    );
    await new Promise((r) => setTimeout(r, 300)); // let a stopped sibling's exit land
    const events = readFileSync(log, 'utf8');
    assert.doesNotMatch(events, /start unet|start eval/);
  } finally {
    delete process.env.FAIL_STAGE;
    rmSync(dir, { recursive: true, force: true });
  }
});
