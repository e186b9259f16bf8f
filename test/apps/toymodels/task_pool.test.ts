// TaskPool: never more than its size at once, every task run in turn, and abort stops the rest.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TaskPool } from '../../../apps/toymodels/task_pool.js';

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

test('at most size tasks run at once, and all of them run, in order of submission', async () => {
  const pool = new TaskPool(2);
  let running = 0;
  let peak = 0;
  const started: number[] = [];
  const results = await Promise.all(
    [0, 1, 2, 3, 4].map((i) =>
      pool.run(async () => {
        started.push(i);
        peak = Math.max(peak, ++running);
        for (let k = 0; k < 3 + (i % 2); k++) await tick();
        running--;
        return i * 10;
      }),
    ),
  );
  assert.deepEqual(results, [0, 10, 20, 30, 40]);
  assert.equal(peak, 2);
  assert.deepEqual(started, [0, 1, 2, 3, 4]);
});

test('a failing task frees its slot; abort signals the running and refuses the waiting', async () => {
  const pool = new TaskPool(1);
  await assert.rejects(
    pool.run(() => Promise.reject(new Error('boom'))),
    /boom/,
  );
  assert.equal(await pool.run(() => Promise.resolve('next')), 'next');
  let sawAbort = false;
  const running = pool.run(
    (signal) =>
      new Promise((_, reject) =>
        signal.addEventListener('abort', () => {
          sawAbort = true;
          reject(new Error('stopped'));
        }),
      ),
  );
  let waitingStarted = false;
  const waiting = pool.run(async () => {
    waitingStarted = true;
  });
  await tick();
  pool.abort();
  await assert.rejects(running, /stopped/);
  await assert.rejects(waiting, { name: 'AbortError' });
  assert.ok(sawAbort);
  assert.equal(waitingStarted, false);
  assert.throws(() => new TaskPool(0), /positive pool size/);
});
