// Builds native/p3s_native.cc into build/p3s_native.node with one g++ call.
// No node-gyp: the addon needs only Node-API headers (from node-api-headers) and libtorch,
// which keeps the build the same on a laptop, in CI and on a bare GPU machine.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync, renameSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findLibtorch, cudaLibDirs, REMEDIES } from './find-libtorch.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const source = join(root, 'native', 'p3s_native.cc');
const outDir = join(root, 'build');
const out = join(outDir, 'p3s_native.node');

const lib = findLibtorch();
if (!lib) {
  console.error(REMEDIES);
  process.exit(1);
}
console.error(
  `p3s: building the native core against libtorch from ${lib.kind}: ${lib.root}${lib.cuda ? ' (CUDA)' : ' (CPU)'}`,
);

const napiInclude = join(dirname(require.resolve('node-api-headers/package.json')), 'include');
const addonInclude = dirname(require.resolve('node-addon-api/package.json'));
const cxxAbi = process.env.P3S_CXX11_ABI ?? '1';
const std = process.env.P3S_CXX_STD ?? 'c++17';
const libs = lib.cuda
  ? ['-ltorch', '-ltorch_cuda', '-ltorch_cpu', '-lc10_cuda', '-lc10']
  : ['-ltorch', '-ltorch_cpu', '-lc10'];
const rpaths = lib.rpath ? [lib.libDir, ...cudaLibDirs(lib)] : [];

const args = [
  `-std=${std}`,
  '-O2',
  '-fPIC',
  '-shared',
  '-fvisibility=hidden',
  `-D_GLIBCXX_USE_CXX11_ABI=${cxxAbi}`,
  '-DNAPI_VERSION=8',
  '-DNAPI_CPP_EXCEPTIONS',
  // A worker thread terminated in the middle of a native call cannot take an exception: without
  // this, node-addon-api throws again from its catch and std::terminate aborts the whole process.
  '-DNODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS',
  '-DNODE_ADDON_API_DISABLE_DEPRECATED',
  `-I${napiInclude}`,
  `-I${addonInclude}`,
  ...lib.includeDirs.map((d) => `-isystem${d}`),
  source,
  '-o',
  `${out}.tmp`,
  `-L${lib.libDir}`,
  '-Wl,--no-as-needed',
  ...libs,
  '-Wl,--as-needed',
  ...rpaths.map((d) => `-Wl,-rpath,${d}`),
];

mkdirSync(outDir, { recursive: true });
const cxx = process.env.CXX ?? 'g++';
const started = Date.now();
const result = spawnSync(cxx, args, { stdio: 'inherit' });
if (result.error || result.status !== 0) {
  console.error(
    `p3s: compiling the native core failed (${cxx} ${result.error?.message ?? `exit ${result.status}`}).`,
  );
  process.exit(1);
}
renameSync(`${out}.tmp`, out);
writeFileSync(
  join(outDir, 'libtorch.json'),
  JSON.stringify({ ...lib, builtAt: new Date().toISOString(), cxxAbi, std }, null, 2),
);
console.error(
  `p3s: built ${out} (${(statSync(out).size / 1024).toFixed(0)} KiB) in ${((Date.now() - started) / 1000).toFixed(1)} s`,
);
if (!existsSync(out)) process.exit(1);
