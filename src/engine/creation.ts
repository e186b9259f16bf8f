// Creating tensors: from JS data, filled, ranges, and seeded random draws.
import { native } from './native.js';
import { Tensor } from './tensor.js';
import { dtypeCode, dtypeOfTypedArray, type DType } from './dtype.js';
import type { Generator } from './random.js';
import * as ops from './ops.generated.js';

export interface CreateOptions {
  dtype?: DType;
  device?: string;
}

function checkShape(shape: readonly number[]): number[] {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) {
      throw new RangeError(
        `Expected a shape of non-negative integers but received [${shape.join(', ')}]`,
      );
    }
  }
  return [...shape];
}

function place(t: Tensor, device: string | undefined): Tensor {
  if (device === undefined || device === 'cpu') return t;
  const moved = t.to(device);
  t.dispose();
  return moved;
}

/**
 * A tensor from JS data (copied). Numbers default to float32; a typed array keeps its own dtype
 * (Float32Array -> float32, BigInt64Array -> int64, ...). float16/bfloat16 data are raw bits in a
 * Uint16Array, or numbers converted on the way in.
 */
export function tensor(
  data: ArrayLike<number> | ArrayBufferView | number,
  shape?: readonly number[],
  options: CreateOptions = {},
): Tensor {
  if (typeof data === 'number') data = [data];
  const length = (data as ArrayLike<number>).length;
  const dims = checkShape(shape ?? [length]);
  const numel = dims.reduce((a, b) => a * b, 1);
  if (numel !== length) {
    throw new RangeError(`Data has ${length} values but shape [${dims.join(', ')}] needs ${numel}`);
  }
  const dtype = options.dtype;
  let t: Tensor;
  if (ArrayBuffer.isView(data)) {
    const own = data instanceof Uint16Array ? (dtype ?? 'float16') : dtypeOfTypedArray(data);
    t = new Tensor(native.fromBuffer(data, dims, dtypeCode(own)));
    if (dtype !== undefined && dtype !== own) {
      const converted = t.to(dtype);
      t.dispose();
      t = converted;
    }
  } else {
    const target = dtype ?? 'float32';
    const isInt =
      target === 'int64' ||
      target === 'int32' ||
      target === 'int16' ||
      target === 'int8' ||
      target === 'uint8' ||
      target === 'bool';
    const staging = isInt ? Float64Array.from(data) : Float32Array.from(data);
    if (isInt) {
      for (const v of staging) {
        if (!Number.isInteger(v))
          throw new TypeError(`Expected integers for dtype ${target} but received ${v}`);
      }
    }
    t = new Tensor(native.fromBuffer(staging, dims, dtypeCode(isInt ? 'float64' : 'float32')));
    if (target !== (isInt ? 'float64' : 'float32')) {
      const converted = t.to(target);
      t.dispose();
      t = converted;
    }
  }
  return place(t, options.device);
}

/** A tensor read straight from a file region into tensor memory (no JS buffer in between). */
export function fromFile(
  path: string,
  byteOffset: number,
  shape: readonly number[],
  dtype: DType,
): Tensor {
  return new Tensor(native.fromFile(path, byteOffset, checkShape(shape), dtypeCode(dtype)));
}

export function zeros(shape: readonly number[], options: CreateOptions = {}): Tensor {
  return ops.zeros(checkShape(shape), options.dtype ?? 'float32', null, options.device ?? null);
}

export function ones(shape: readonly number[], options: CreateOptions = {}): Tensor {
  return ops.ones(checkShape(shape), options.dtype ?? 'float32', null, options.device ?? null);
}

export function full(shape: readonly number[], value: number, options: CreateOptions = {}): Tensor {
  return ops.full(
    checkShape(shape),
    value,
    options.dtype ?? 'float32',
    null,
    options.device ?? null,
  );
}

export function empty(shape: readonly number[], options: CreateOptions = {}): Tensor {
  return ops.empty(checkShape(shape), options.dtype ?? 'float32', null, options.device ?? null);
}

/** start, start+step, ... below end (int64 unless a dtype is given). */
export function arange(start: number, end?: number, step = 1, options: CreateOptions = {}): Tensor {
  if (end === undefined) [start, end] = [0, start];
  return ops.arange(start, end, step, options.dtype ?? null, null, options.device ?? null);
}

export interface RandomOptions extends CreateOptions {
  generator?: Generator;
}

/** Standard normal draws; pass a Generator for a reproducible stream. */
export function randn(shape: readonly number[], options: RandomOptions = {}): Tensor {
  return ops.randn(
    checkShape(shape),
    options.generator ?? null,
    options.dtype ?? 'float32',
    null,
    options.device ?? null,
  );
}

/** Uniform draws in [0, 1). */
export function rand(shape: readonly number[], options: RandomOptions = {}): Tensor {
  return ops.rand(
    checkShape(shape),
    options.generator ?? null,
    options.dtype ?? 'float32',
    null,
    options.device ?? null,
  );
}

/** Uniform integers in [low, high). */
export function randint(
  low: number,
  high: number,
  shape: readonly number[],
  options: RandomOptions = {},
): Tensor {
  return ops.randint(
    low,
    high,
    checkShape(shape),
    options.generator ?? null,
    options.dtype ?? 'int64',
    null,
    options.device ?? null,
  );
}

/** A random permutation of 0..n-1. */
export function randperm(n: number, options: RandomOptions = {}): Tensor {
  return ops.randperm(
    n,
    options.generator ?? null,
    options.dtype ?? 'int64',
    null,
    options.device ?? null,
  );
}
