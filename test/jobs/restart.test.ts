// Restart safety: a training job stopped by close(), or left running by a server that was
// killed, is queued again by the next open on the same data folder and resumes from the
// checkpoint in its folder: it ends with all its steps, attempts 2, and no temporary files.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { LocalJobQueue } from '../../src/jobs/index.js';
import { listCheckpoints } from '../../src/training/checkpoint.js';
import { writeToySubject } from '../helpers/toy_subject.js';
import { ended, nextEvent, recordOnDisk, temporaries, trainInput } from './helpers.js';

const STEPS = 12;
let root = '';
let refDir = '';

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'p3s-jobs-restart-'));
  ({ refDir } = await writeToySubject(root, 11, 3));
});

after(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

/**
 * Reopens the data folder and checks the job resumes from a checkpoint and ends with every step;
 * returns the step it resumed from.
 */
async function resumed(dataDir: string, id: string, warnings: string[] = []): Promise<number> {
  const queue = await LocalJobQueue.open({ dataDir, onWarning: (m) => warnings.push(m) });
  try {
    const job = queue.get(id);
    assert.ok(['queued', 'running'].includes(job.state), job.state);
    const done = await ended(queue, id);
    assert.equal(done.state, 'succeeded', JSON.stringify(done.error));
    assert.equal(done.attempts, 2);
    assert.equal((done.input.config as { resume?: boolean }).resume, true);
    const result = done.result as { steps: number; resumedFrom: number; losses: number[] };
    assert.equal(result.steps, STEPS);
    assert.ok(result.resumedFrom > 0 && result.resumedFrom < STEPS, `${result.resumedFrom}`);
    assert.equal(result.losses.length, STEPS - result.resumedFrom, 'only the missing steps ran');
    assert.equal(done.progress!.done, STEPS);
    assert.ok(existsSync(join(done.dir, 'adapter.safetensors')));
    assert.deepEqual(temporaries(dataDir), []);
    return result.resumedFrom;
  } finally {
    await queue.close();
  }
}

test('close() stops a training job with a checkpoint; the next open resumes it from there', async () => {
  const dataDir = join(root, 'closed');
  const first = await LocalJobQueue.open({ dataDir });
  const job = await first.submit(trainInput(refDir, { maxSteps: STEPS, checkpointEvery: 100 }));
  await nextEvent(
    first,
    (e) => e.type === 'progress' && e.job.progress!.done >= 2,
    'two training steps',
  );
  await first.close();
  const stored = recordOnDisk(dataDir, job.id);
  assert.equal(stored.state, 'queued');
  assert.equal(stored.attempts, 1);
  await assert.rejects(first.submit(trainInput(refDir)), /closed/);
  // SIGTERM made the run write a checkpoint at the step it stopped after
  const checkpoints = listCheckpoints(join(stored.dir, 'checkpoints'));
  assert.equal(checkpoints.length, 1);
  const at = checkpoints[0]!.step;
  assert.ok(at >= 2 && at < STEPS, `checkpoint at step ${at}`);
  assert.equal(await resumed(dataDir, job.id), at);
});

test('a killed server leaves its job running; the next open resumes it from its checkpoint', async () => {
  const dataDir = join(root, 'killed');
  const host = fileURLToPath(new URL('./queue_host.js', import.meta.url));
  const input = trainInput(refDir, { maxSteps: STEPS, checkpointEvery: 2 });
  const server = spawn(process.execPath, [host, dataDir, JSON.stringify(input), '3'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise((resolve) => server.once('exit', resolve));
  let id = '';
  for await (const line of createInterface({ input: server.stdout! })) {
    assert.doesNotMatch(line, /^finished/, 'the job ended before the server was killed');
    id = /^ready (\S+)$/.exec(line)?.[1] ?? '';
    if (id) break;
  }
  assert.ok(id, 'the server stopped before its job reported 3 steps');
  server.kill('SIGKILL');
  await exited;
  assert.equal(recordOnDisk(dataDir, id).state, 'running');
  // the job's process notices the server is gone and stops after its step with a checkpoint (at
  // 3 or later); open waits for it to let go of the folder
  const warnings: string[] = [];
  assert.ok((await resumed(dataDir, id, warnings)) >= 3);
  // the dead server's lock on the data folder was taken over, with a note
  const lock = join(dataDir, 'jobs', 'run.lock');
  assert.equal(warnings.length, 1, warnings.join('\n'));
  assert.equal(
    warnings[0]!.replace(/process \d+/, 'process N'),
    `Took over the lock ${lock} of process N, which no longer runs`,
  );
  const log = readFileSync(join(dataDir, 'jobs', id, 'job.log'), 'utf8');
  assert.match(log, /The job queue went away: stopping after this step, with a checkpoint/);
});
