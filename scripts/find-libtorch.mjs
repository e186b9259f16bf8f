// Locates a libtorch to build the native core against, in the order tch-rs uses:
// 1. LIBTORCH (the official libtorch archive layout: include/, lib/)
// 2. a Python installation's torch package (its own include/ and lib/)
// 3. the system's (Debian/Ubuntu `libtorch-dev`)
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

function layout(kind, root, includeRoot, libDir) {
  if (!existsSync(join(includeRoot, 'ATen', 'ATen.h'))) return null;
  if (!existsSync(join(libDir, 'libtorch.so')) && !existsSync(join(libDir, 'libtorch_cpu.so')))
    return null;
  const cuda = existsSync(join(libDir, 'libtorch_cuda.so'));
  return {
    kind,
    root,
    // /usr/include is the compiler's own system folder: naming it again with -isystem reorders
    // the search and breaks libstdc++'s #include_next <stdlib.h> (g++ 12)
    includeDirs: [includeRoot, join(includeRoot, 'torch', 'csrc', 'api', 'include')].filter(
      (dir) => dir !== '/usr/include',
    ),
    libDir,
    cuda,
    rpath: kind !== 'system',
  };
}

function fromPython() {
  const pythons = [process.env.PYTHON, 'python3', 'python', '/usr/bin/python3'].filter(Boolean);
  for (const py of pythons) {
    try {
      const dir = execFileSync(
        py,
        ['-c', 'import torch, os; print(os.path.dirname(torch.__file__))'],
        { stdio: ['ignore', 'pipe', 'ignore'], timeout: 60_000 },
      )
        .toString()
        .trim();
      const found = layout(`python (${py})`, dir, join(dir, 'include'), join(dir, 'lib'));
      if (found) return found;
    } catch {
      // this interpreter has no torch; try the next
    }
  }
  return null;
}

function fromSystem() {
  const libDirs = [
    '/usr/lib/x86_64-linux-gnu',
    '/usr/lib/aarch64-linux-gnu',
    '/usr/lib',
    '/usr/lib64',
  ];
  for (const libDir of libDirs) {
    const found = layout('system', '/usr', '/usr/include', libDir);
    if (found) return found;
  }
  return null;
}

export function findLibtorch() {
  if (process.env.LIBTORCH) {
    const root = process.env.LIBTORCH;
    const found = layout('LIBTORCH', root, join(root, 'include'), join(root, 'lib'));
    if (!found) {
      throw new Error(
        `LIBTORCH=${root} does not look like a libtorch folder: expected ${root}/include/ATen/ATen.h and ${root}/lib/libtorch.so`,
      );
    }
    return found;
  }
  return fromPython() ?? fromSystem();
}

export function cudaLibDirs(lib) {
  // pip's CUDA wheels keep their libraries in site-packages/nvidia/*/lib
  const nvidia = join(lib.root, '..', 'nvidia');
  if (!existsSync(nvidia)) return [];
  return readdirSync(nvidia)
    .map((d) => join(nvidia, d, 'lib'))
    .filter((d) => existsSync(d));
}

export const REMEDIES = `p3s needs libtorch (the C++ library of PyTorch) to build its native core. Any one of:
  - Debian/Ubuntu:  sudo apt-get install -y libtorch-dev
  - a libtorch archive from pytorch.org, unpacked:  LIBTORCH=/path/to/libtorch npm install
  - a Python with PyTorch installed:  PYTHON=/path/to/python npm install
Then run \`npm install\` (or \`npm run build:native\`) again.`;

if (import.meta.url === `file://${process.argv[1]}`) {
  const lib = findLibtorch();
  if (!lib) {
    console.error(REMEDIES);
    process.exit(1);
  }
  console.log(JSON.stringify(lib, null, 2));
}
