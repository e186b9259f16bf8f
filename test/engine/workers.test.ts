// The native core in worker_threads: each Worker loads it into its own JavaScript environment,
// and neither a Worker that exits nor Workers running at once may disturb another environment.
// Each case runs in a child process, so that a native crash fails the test, not the runner.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

// The package as compiled beside this test.
const PACKAGE = new URL('../../src/index.js', import.meta.url).href;

/** Some arithmetic with seeded random tensors: the same numbers in every environment. */
const WORK = `async function work(p3s, seed) {
  const g = new p3s.Generator(seed);
  let total = 0;
  for (let i = 0; i < 40; i++) {
    const a = p3s.randn([32, 32], { generator: g });
    total += a.matmul(a).sum().item();
  }
  return total;
}`;

// Dynamic imports only: the code runs whether the Worker evaluates it as a script or a module.
const WORKER = `${WORK}
import('node:worker_threads').then(async ({ parentPort, workerData }) => {
  const p3s = await import(workerData.url);
  parentPort.postMessage(await work(p3s, workerData.seed));
});`;

function runChild(script: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, P3S_NUM_THREADS: '1' },
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const RUN_WORKER = `import { Worker } from 'node:worker_threads';
const url = ${JSON.stringify(PACKAGE)};
${WORK}
const runWorker = (seed) => new Promise((resolve, reject) => {
  const w = new Worker(${JSON.stringify(WORKER)}, { eval: true, workerData: { url, seed } });
  let result;
  w.on('message', (m) => (result = m));
  w.on('error', reject);
  w.on('exit', (code) => (code === 0 ? resolve(result) : reject(new Error('worker exit ' + code))));
});`;

test('a Worker that used the package and exited leaves the main thread working', () => {
  const r = runChild(`${RUN_WORKER}
const p3s = await import(url);
const before = await work(p3s, 1);
const inWorker = await runWorker(1);
globalThis.gc();
const after = await work(p3s, 1);
console.log(JSON.stringify({ before, inWorker, after }));`);
  assert.equal(r.status, 0, `child exited ${r.status}: ${r.stderr}`);
  const { before, inWorker, after } = JSON.parse(r.stdout) as Record<string, number>;
  assert.equal(inWorker, before);
  assert.equal(after, before);
});

test('several Workers use the package at once, each with its own results', () => {
  const r = runChild(`${RUN_WORKER}
const p3s = await import(url);
const seeds = [1, 2, 3, 4];
const expected = [];
for (const s of seeds) expected.push(await work(p3s, s));
const [inWorkers, onMain] = await Promise.all([
  Promise.all(seeds.map(runWorker)),
  work(p3s, 5),
]);
globalThis.gc();
console.log(JSON.stringify({ expected, inWorkers, onMain, again: await work(p3s, 5) }));`);
  assert.equal(r.status, 0, `child exited ${r.status}: ${r.stderr}`);
  const out = JSON.parse(r.stdout) as {
    expected: number[];
    inWorkers: number[];
    onMain: number;
    again: number;
  };
  assert.deepEqual(out.inWorkers, out.expected);
  assert.equal(out.onMain, out.again);
  assert.equal(new Set(out.expected).size, 4, 'different seeds give different numbers');
});

// A Worker doing native work without end, including calls that fail in the native core.
const BUSY_WORKER = `import('node:worker_threads').then(async ({ parentPort, workerData }) => {
  const p3s = await import(workerData.url);
  parentPort.postMessage('busy');
  for (;;) {
    const a = p3s.randn([64, 64]);
    try {
      a.matmul(p3s.randn([3, 3]));
    } catch {}
    a.matmul(a).dispose();
    a.dispose();
  }
});`;

test('a Worker terminated in the middle of native calls leaves the process running', () => {
  // Measured before NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS: the first few terminations aborted
  // the whole process (std::terminate after a Napi::Error), as the web app's mask worker did
  // when the server stopped while it worked.
  const r = runChild(`import { Worker } from 'node:worker_threads';
const url = ${JSON.stringify(PACKAGE)};
for (let i = 0; i < 20; i++) {
  const w = new Worker(${JSON.stringify(BUSY_WORKER)}, { eval: true, workerData: { url } });
  await new Promise((resolve) => w.once('message', resolve));
  await new Promise((resolve) => setTimeout(resolve, 2 + (i % 5) * 4));
  await w.terminate();
}
const p3s = await import(url);
console.log(Number.isFinite(p3s.randn([2, 2]).sum().item()) ? 'alive' : 'not finite');`);
  assert.equal(r.status, 0, `child exited ${r.status} (signal): ${r.stderr.slice(-300)}`);
  assert.match(r.stdout, /alive/);
});
