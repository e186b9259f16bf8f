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

/** The integers each integer dtype holds exactly (int64 from JS numbers: the safe integers). */
const INTEGER_RANGES: Partial<Record<DType, readonly [number, number]>> = {
  bool: [0, 1],
  uint8: [0, 255],
  int8: [-128, 127],
  int16: [-32768, 32767],
  int32: [-2147483648, 2147483647],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
};

/** Plain data must be numbers: a nested or text element would silently become NaN. */
function checkNumbers(data: ArrayLike<unknown>): void {
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (typeof v === 'number') continue;
    if (Array.isArray(v) || ArrayBuffer.isView(v))
      throw new TypeError(
        `Expected flat numbers for tensor data but element ${i} is an array; nested arrays are ` +
          'not read: pass the values flat with their shape, e.g. tensor([1, 2, 3, 4], [2, 2])',
      );
    throw new TypeError(
      `Expected numbers for tensor data but element ${i} is ${typeof v === 'string' ? JSON.stringify(v) : String(v)} (${typeof v})`,
    );
  }
}

/**
 * Values converted to an integer dtype must be integers it holds: libtorch would truncate 1.5
 * to 1 and wrap 300 to 44 in int8 without a word.
 */
function checkIntegers(data: ArrayLike<number | bigint>, dtype: DType): void {
  const range = INTEGER_RANGES[dtype];
  if (range === undefined) return;
  const [min, max] = range;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    const ok =
      typeof v === 'bigint'
        ? v >= BigInt(min) && v <= BigInt(max)
        : Number.isInteger(v) && v >= min && v <= max;
    if (ok) continue;
    const what = typeof v === 'number' && !Number.isInteger(v) ? 'not an integer' : 'out of range';
    const hint =
      dtype === 'int64' ? '; beyond ±2^53 pass a BigInt64Array' : '; round or clamp it first';
    throw new RangeError(
      `Expected integers in [${min}, ${max}] for dtype ${dtype} but element ${i} is ${v} (${what})${hint}`,
    );
  }
}

/**
 * A tensor from JS data (copied). Numbers default to float32; a typed array keeps its own dtype
 * (Float32Array -> float32, BigInt64Array -> int64, ...). float16/bfloat16 data are raw bits in a
 * Uint16Array, or numbers converted on the way in. Data is flat (the shape says how it folds);
 * values an integer dtype cannot hold exactly are refused, not truncated or wrapped.
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
  const t = ArrayBuffer.isView(data)
    ? fromTypedArray(data, dims, options.dtype)
    : fromNumbers(data, dims, options.dtype ?? 'float32');
  return place(t, options.device);
}

function converted(t: Tensor, dtype: DType): Tensor {
  if (t.dtype === dtype) return t;
  const out = t.to(dtype);
  t.dispose();
  return out;
}

function fromTypedArray(data: ArrayBufferView, dims: number[], dtype: DType | undefined): Tensor {
  const own = data instanceof Uint16Array ? (dtype ?? 'float16') : dtypeOfTypedArray(data);
  if (dtype !== undefined && dtype !== own)
    checkIntegers(data as unknown as ArrayLike<number | bigint>, dtype);
  const t = new Tensor(native.fromBuffer(data, dims, dtypeCode(own)));
  return dtype === undefined ? t : converted(t, dtype);
}

function fromNumbers(data: ArrayLike<number>, dims: number[], dtype: DType): Tensor {
  checkNumbers(data);
  const isInt = INTEGER_RANGES[dtype] !== undefined;
  if (isInt) checkIntegers(data, dtype);
  // integers go through float64 (exact up to 2^53), floats through float32
  const staging = isInt ? Float64Array.from(data) : Float32Array.from(data);
  const t = new Tensor(native.fromBuffer(staging, dims, dtypeCode(isInt ? 'float64' : 'float32')));
  return converted(t, dtype);
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
