// Loads the compiled native core (build/p3s_native.node) and declares its surface.
// Everything here is untyped at the boundary; the TypeScript engine wraps it.
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Opaque handle to one at::Tensor reference, owned by the native core. */
export interface TensorHandle {
  readonly __tensorHandle: unique symbol;
}
/** Opaque handle to an at::Generator. */
export interface GeneratorHandle {
  readonly __generatorHandle: unique symbol;
}

export interface ArgumentInfo {
  name: string;
  type: string;
  kwargOnly: boolean;
  mutable: boolean;
  n?: number;
  default?: string;
}
export interface SchemaInfo {
  name: string;
  overload: string;
  arguments: ArgumentInfo[];
  returns: ArgumentInfo[];
  text: string;
}

/** The native core's cache of freed large CPU buffers (P3S_CPU_CACHE_MB; docs/engine.md). */
export interface CpuCacheStats {
  /** Freed bytes waiting for reuse. */
  cachedBytes: number;
  /** The most it keeps (0: the cache is off). */
  limitBytes: number;
  /** Large requests served from the cache, and those that needed fresh memory. */
  hits: number;
  misses: number;
  /**
   * Bytes of the buffers of 1 MiB or more that tensors hold now, and the most since
   * resetPeakInUse(): a GPU allocator's "allocated" (the cache's freed bytes not counted).
   */
  inUseBytes: number;
  peakInUseBytes: number;
}

export interface NativeBinding {
  findOp(name: string, overload: string): number;
  callOp(op: number, args: unknown[]): unknown;
  opSchema(op: number): SchemaInfo;
  allOpNames(): [string, string][];
  fromBuffer(data: ArrayBufferView | ArrayBuffer, shape: number[], dtype: number): TensorHandle;
  fromFile(path: string, offset: number, shape: number[], dtype: number): TensorHandle;
  toBuffer(t: TensorHandle): ArrayBuffer;
  shape(t: TensorHandle): number[];
  dtype(t: TensorHandle): number;
  device(t: TensorHandle): string;
  dispose(t: TensorHandle): void;
  isAlive(t: TensorHandle): boolean;
  liveTensors(): number;
  cpuCache(): CpuCacheStats;
  resetPeakInUse(): void;
  requiresGrad(t: TensorHandle): boolean;
  setRequiresGrad(t: TensorHandle, value: boolean): void;
  isLeaf(t: TensorHandle): boolean;
  gradFnName(t: TensorHandle): string | null;
  grad(t: TensorHandle): TensorHandle | null;
  setGrad(t: TensorHandle, g: TensorHandle | null): void;
  backward(
    t: TensorHandle,
    grad: TensorHandle | null,
    retainGraph: boolean,
    createGraph: boolean,
  ): void;
  withGradMode<T>(mode: 'enabled' | 'disabled' | 'inference', fn: () => T): T;
  gradEnabled(): boolean;
  cudaAvailable(): boolean;
  cudaDeviceCount(): number;
  cudaSynchronize(index?: number): void;
  manualSeed(seed: number): void;
  newGenerator(seed: number, device: string): GeneratorHandle;
  generatorState(g: GeneratorHandle, state?: TensorHandle): TensorHandle | undefined;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  libtorchVersion(): string;
  /** softmax(q kᵀ·scale + mask) v by blocks of `chunkRows` query rows (native ChunkedAttention). */
  chunkedAttention(
    q: TensorHandle,
    k: TensorHandle,
    v: TensorHandle,
    mask: TensorHandle | null,
    scale: number,
    chunkRows: number,
  ): TensorHandle;
}

function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('p3s: cannot find the package root');
    dir = parent;
  }
  return dir;
}

function load(): NativeBinding {
  const root = packageRoot();
  const path = process.env.P3S_NATIVE ?? join(root, 'build', 'p3s_native.node');
  if (!existsSync(path)) {
    throw new Error(
      `p3s: the native core is not built (${path} is missing). Run \`npm run build:native\`; ` +
        'it needs libtorch (Debian/Ubuntu: apt-get install -y libtorch-dev, or LIBTORCH=/path/to/libtorch).',
    );
  }
  const require = createRequire(import.meta.url);
  return require(path) as NativeBinding;
}

export const native: NativeBinding = load();

// ATen picks its own default thread count; use every core we are given unless told otherwise.
const threads = Number(process.env.P3S_NUM_THREADS ?? 0) || availableParallelism();
native.setNumThreads(threads);
