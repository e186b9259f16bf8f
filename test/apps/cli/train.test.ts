// `p3s train` run as a user runs it (a child process, the CLI compiled next to this test), for
// what only a process shows: SIGTERM stops a run like Ctrl-C (a checkpoint, then exit 1), a
// kill -9 loses only the steps since the last checkpoint and leaves a lock the next run takes
// over, and a diverged run prints the command that continues it — which, followed, works.
// Signals are sent once the run has reported a step (never on a timer), so the tests do not
// depend on the machine's speed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listCheckpoints } from '../../../src/training/checkpoint.js';
import { readLossLog } from '../../../src/training/loss_log.js';
import { fixturePath } from '../../helpers/paths.js';
import { writeToySubject } from '../../helpers/toy_subject.js';

const CLI = fileURLToPath(new URL('../../../apps/cli/main.js', import.meta.url));
const ENV = { ...process.env, P3S_NUM_THREADS: '1' };
let root = '';
let refDir = '';

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'p3s-cli-train-'));
  ({ refDir } = await writeToySubject(root, 11, 3));
});
after(() => rmSync(root, { recursive: true, force: true }));

/** The flags of a tiny run into `out` (1000 steps: it never ends before the signal). */
const runFlags = (out: string, ...more: string[]): string[] => [
  'train',
  refDir,
  '--base',
  fixturePath('tiny-sd'),
  '--clip',
  fixturePath('tiny-clip-vision'),
  '--out',
  out,
  '--class',
  'toy',
  '--lr',
  '1e-3',
  '--no-eval',
  ...more,
];

function p3s(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    timeout: 120_000,
    env: ENV,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * Starts the CLI, sends `signal` once its stderr matches `ready`, and resolves when it has
 * exited, with its exit code, the signal that ended it, and its stderr.
 */
function signalWhen(
  args: string[],
  ready: RegExp,
  signal: NodeJS.Signals,
): Promise<{ code: number | null; endedBy: NodeJS.Signals | null; stderr: string; pid: number }> {
  const child = spawn(process.execPath, [CLI, ...args], { env: ENV });
  let stderr = '';
  let sent = false;
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
    if (!sent && ready.test(stderr)) {
      sent = true;
      child.kill(signal);
    }
  });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, endedBy) => resolve({ code, endedBy, stderr, pid: child.pid! }));
  });
}

const logged = (out: string): number[] =>
  readLossLog(join(out, 'train-log.jsonl')).map((l) => l.step);
const upTo = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1);

test('SIGTERM stops a run after its step with a checkpoint, and --resume finishes it', async () => {
  const out = join(root, 'term');
  const stopped = await signalWhen(
    runFlags(out, '--steps', '1000', '--checkpoint-every', '500'),
    /^train .* 1\/1000 /m,
    'SIGTERM',
  );
  assert.equal(stopped.code, 1, stopped.stderr);
  assert.match(stopped.stderr, /SIGTERM: stopping after this step, with a checkpoint/);
  const at = /Training stopped at step (\d+) of 1000; resume from (\S+)/.exec(stopped.stderr);
  assert.ok(at, stopped.stderr);
  const step = Number(at[1]);
  assert.ok(existsSync(at[2]!), at[2]);
  assert.equal(existsSync(join(out, 'run.lock')), false);
  assert.deepEqual(logged(out), upTo(step));

  const resumed = p3s(runFlags(out, '--steps', String(step + 2), '--resume'));
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stderr, new RegExp(`Resumed from .*checkpoint-0*${step}\\.safetensors`));
  assert.deepEqual(logged(out), upTo(step + 2));
});

test('after a kill -9, --resume takes over the lock and logs each step once', async () => {
  const out = join(root, 'kill');
  const killed = await signalWhen(
    runFlags(out, '--steps', '1000', '--checkpoint-every', '2'),
    /Checkpoint .*checkpoint-000002\.safetensors/,
    'SIGKILL',
  );
  assert.equal(killed.endedBy, 'SIGKILL');
  const lock = JSON.parse(readFileSync(join(out, 'run.lock'), 'utf8')) as { pid: number };
  assert.equal(lock.pid, killed.pid);
  const saved = listCheckpoints(join(out, 'checkpoints')).at(-1)!.step;
  const steps = saved + 3;
  const resumed = p3s(runFlags(out, '--steps', String(steps), '--resume'));
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(
    resumed.stderr,
    new RegExp(`Took over the lock .*run\\.lock of process ${killed.pid}, which no longer runs`),
  );
  assert.deepEqual(logged(out), upTo(steps));
  assert.equal(existsSync(join(out, 'run.lock')), false);
});

test('a diverged run prints the command that continues it, and following it works', () => {
  const out = join(root, 'diverged');
  let run = p3s(runFlags(out, '--lr', '16', '--steps', '4', '--checkpoint-every', '1'));
  const rates: number[] = [];
  // each divergence suggests a tenth of the learning rate; 16 needs a few of them
  while (run.status !== 0 && rates.length < 6) {
    assert.equal(run.status, 1, run.stderr);
    const command = /\nTo continue: p3s (train .*)\n/.exec(run.stderr)?.[1];
    assert.ok(command, run.stderr);
    assert.match(command, / --resume-from \S+checkpoint-\d+\.safetensors --branch --lr \S+$/);
    rates.push(Number(/--lr (\S+)$/.exec(command)![1]));
    assert.equal(existsSync(join(out, 'adapter.safetensors')), false);
    run = p3s(command.split(' ')); // the temporary paths hold no spaces or quotes
  }
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /Wrote .*adapter\.safetensors \(4 steps\)/);
  assert.deepEqual(
    rates,
    rates.map((_, i) => Number((16 / 10 ** (i + 1)).toPrecision(3))),
  );
  assert.ok(rates.length >= 1);
});
