// `npm run gpu:check`: one pass over what a GPU machine should confirm, printed as one JSON
// object — the native core built against its CUDA PyTorch, the reference models' parity on the
// GPU, an SD 1.5-size P3S training step (time, peak GPU memory), a 50-step DDIM 512 px
// generation and the toy demo. Each measured phase runs in its own process
// (dist/bench/gpu_check.js); the GPU's memory is read from outside with nvidia-smi, so it is
// what the card had allocated for that process (the caching allocator's reserve included).
//
//   node scripts/gpu-check.mjs [--device cuda|cpu] [--skip build,parity,train,generate,demo]
//                              [--dist <compiled folder, default dist>]
//
// `--device cpu` runs the same phases on the tiny test models (seconds; skips the build):
// the test of this script. The TypeScript must be compiled first (npx tsc -p tsconfig.json).
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { setInterval, clearInterval } from 'node:timers';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? (process.argv[at + 1] ?? fallback) : fallback;
}

const device = option('device', 'cuda');
const dist = resolve(root, option('dist', 'dist'));
const skip = new Set(option('skip', '').split(',').filter(Boolean));
if (device === 'cpu') skip.add('build'); // the CPU core is already built (npm install)

/** Runs node with args, returns [exit code, stdout, peak GPU MiB of that process or null]. */
function runNode(args) {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    let peak = null;
    const poll =
      device === 'cpu'
        ? null
        : setInterval(() => {
            const used = gpuMemoryMiB(child.pid);
            if (used !== null) peak = Math.max(peak ?? 0, used);
          }, 200);
    child.on('error', fail);
    child.on('close', (code) => {
      if (poll) clearInterval(poll);
      done([code, out, peak]);
    });
  });
}

/** The GPU memory nvidia-smi reports for one process, in MiB (null: none or no nvidia-smi). */
function gpuMemoryMiB(pid) {
  const r = spawnSync(
    'nvidia-smi',
    ['--query-compute-apps=pid,used_memory', '--format=csv,noheader,nounits'],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) return null;
  const line = r.stdout.split('\n').find((l) => l.split(',')[0]?.trim() === String(pid));
  return line ? Number(line.split(',')[1]) : null;
}

/** One phase of dist/bench/gpu_check.js: its JSON result plus the GPU peak measured here. */
async function phase(name) {
  const [code, out, peak] = await runNode([
    join(dist, 'bench', 'gpu_check.js'),
    name,
    '--device',
    device,
  ]);
  if (code !== 0) return { phase: name, error: `exit ${code}` };
  const result = JSON.parse(out.trim().split('\n').pop() ?? '{}');
  return peak === null ? result : { ...result, peakGpuMiB: peak };
}

/** `p3s demo` on the shipped toy models into a temporary folder: its wall time. */
async function demo() {
  const out = mkdtempSync(join(tmpdir(), 'p3s-gpu-check-demo-'));
  try {
    const t0 = performance.now();
    const [code, , peak] = await runNode([
      join(dist, 'apps', 'cli', 'main.js'),
      'demo',
      '--out',
      out,
    ]);
    const seconds = (performance.now() - t0) / 1000;
    const gpu = peak === null ? {} : { peakGpuMiB: peak };
    // The demo runs the CLI as shipped: on the toy models, on the device the CLI picks.
    return { phase: 'demo', seconds, ...(code === 0 ? {} : { error: `exit ${code}` }), ...gpu };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

const report = { device, startedAt: new Date().toISOString() };
if (!skip.has('build')) {
  // Finds the CUDA PyTorch through PYTHON / LIBTORCH like `npm install` (README: How libtorch is found).
  const b = spawnSync(process.execPath, [join(root, 'scripts', 'build-native.mjs')], {
    stdio: 'inherit',
  });
  if (b.status !== 0) {
    console.log(JSON.stringify({ ...report, error: 'building the native core failed' }));
    process.exit(1);
  }
}
for (const name of ['parity', 'train', 'generate']) {
  if (!skip.has(name)) report[name] = await phase(name);
}
if (!skip.has('demo')) report.demo = await demo();
console.log(JSON.stringify(report, null, 2));
const failed = Object.values(report).some(
  (r) => typeof r === 'object' && (r.error || r.pass === false),
);
process.exit(failed ? 1 : 0);
