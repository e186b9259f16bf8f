// The Tensor class: a handle to one libtorch tensor plus the methods models are written with.
// Methods delegate to the generated operator wrappers (ops.generated.ts); anything missing
// can be called by name with `call('aten::x', overload, ...)`.
import { native, type TensorHandle } from './native.js';
import { track } from './scope.js';
import {
  dtypeName,
  isFloatingDType,
  typedArrayFromBuffer,
  type AnyTypedArray,
  type DType,
} from './dtype.js';
import * as ops from './ops.generated.js';

export type Scalar = number | boolean;
export type TensorOrScalar = Tensor | number;

function checkDim(dim: number, ndim: number): number {
  const d = dim < 0 ? dim + ndim : dim;
  if (!Number.isInteger(d) || d < 0 || d >= Math.max(ndim, 1)) {
    throw new RangeError(`Expected a dimension in [${-ndim}, ${ndim - 1}] but received ${dim}`);
  }
  return d;
}

export class Tensor {
  /** The native handle. Public for the engine's own modules; not for user code. */
  readonly handle: TensorHandle;
  private cachedShape: readonly number[] | undefined;

  constructor(handle: TensorHandle) {
    this.handle = handle;
    track(this);
  }

  // ---- metadata ----
  get shape(): readonly number[] {
    if (this.cachedShape === undefined) this.cachedShape = Object.freeze(native.shape(this.handle));
    return this.cachedShape;
  }
  get ndim(): number {
    return this.shape.length;
  }
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  size(dim: number): number {
    return this.shape[checkDim(dim, this.ndim)]!;
  }
  get dtype(): DType {
    return dtypeName(native.dtype(this.handle));
  }
  get device(): string {
    return native.device(this.handle);
  }
  get isDisposed(): boolean {
    return !native.isAlive(this.handle);
  }
  /** Frees the tensor's memory now (its storage, if no other tensor shares it). Idempotent. */
  dispose(): void {
    native.dispose(this.handle);
  }
  toString(): string {
    return this.isDisposed
      ? 'Tensor(disposed)'
      : `Tensor(shape=[${this.shape.join(', ')}], dtype=${this.dtype}, device=${this.device})`;
  }

  // ---- autograd ----
  get requiresGrad(): boolean {
    return native.requiresGrad(this.handle);
  }
  /** Marks the tensor as a leaf that accumulates gradients (or not). Returns this. */
  requiresGrad_(value = true): this {
    native.setRequiresGrad(this.handle, value);
    return this;
  }
  get isLeaf(): boolean {
    return native.isLeaf(this.handle);
  }
  /** Name of the autograd node that produced this tensor, e.g. "ConvolutionBackward0". */
  get gradFn(): string | null {
    return native.gradFnName(this.handle);
  }
  /** The accumulated gradient (a new handle on each read), or null. */
  get grad(): Tensor | null {
    const g = native.grad(this.handle);
    return g === null ? null : new Tensor(g);
  }
  set grad(g: Tensor | null) {
    native.setGrad(this.handle, g === null ? null : g.handle);
  }
  backward(
    gradient?: Tensor,
    options: { retainGraph?: boolean; createGraph?: boolean } = {},
  ): void {
    native.backward(
      this.handle,
      gradient?.handle ?? null,
      options.retainGraph ?? false,
      options.createGraph ?? false,
    );
  }
  detach(): Tensor {
    return ops.detach(this);
  }

  // ---- data ----
  /** The values as a typed array (a copy; float16/bfloat16 come back as raw Uint16 bits). */
  toTypedArray(): AnyTypedArray {
    return typedArrayFromBuffer(this.dtype, native.toBuffer(this.handle));
  }
  /** The values as a flat array of numbers (float16/bfloat16 converted through float32). */
  toArray(): number[] {
    const dtype = this.dtype;
    if (dtype === 'float16' || dtype === 'bfloat16') {
      const f = this.to('float32');
      try {
        return f.toArray();
      } finally {
        f.dispose();
      }
    }
    const data = this.toTypedArray();
    return data instanceof BigInt64Array
      ? Array.from(data, Number)
      : Array.from(data as ArrayLike<number>);
  }
  /** The value of a one-element tensor. */
  item(): number {
    if (this.numel !== 1) {
      throw new RangeError(
        `item() needs a tensor with one element but this has shape [${this.shape.join(', ')}]`,
      );
    }
    const v = ops.item(this);
    return typeof v === 'boolean' ? Number(v) : v;
  }
  /** Converts to a dtype or moves to a device ('cpu', 'cuda', 'cuda:1'). */
  to(target: DType | string): Tensor {
    if (isDType(target)) return ops.toDtype(this, target);
    return ops.toDevice(this, target, this.dtype);
  }
  float(): Tensor {
    return this.to('float32');
  }
  half(): Tensor {
    return this.to('float16');
  }
  clone(): Tensor {
    return ops.clone(this);
  }
  get isFloatingPoint(): boolean {
    return isFloatingDType(this.dtype);
  }

  // ---- arithmetic (broadcasting; numbers allowed on the right) ----
  add(other: TensorOrScalar, alpha: number = 1): Tensor {
    return other instanceof Tensor
      ? ops.add(this, other, alpha)
      : ops.addScalar(this, other, alpha);
  }
  sub(other: TensorOrScalar, alpha: number = 1): Tensor {
    return other instanceof Tensor
      ? ops.sub(this, other, alpha)
      : ops.subScalar(this, other, alpha);
  }
  mul(other: TensorOrScalar): Tensor {
    return other instanceof Tensor ? ops.mul(this, other) : ops.mulScalar(this, other);
  }
  div(other: TensorOrScalar): Tensor {
    return other instanceof Tensor ? ops.div(this, other) : ops.divScalar(this, other);
  }
  pow(exponent: TensorOrScalar): Tensor {
    return exponent instanceof Tensor ? ops.pow(this, exponent) : ops.powScalar(this, exponent);
  }
  neg(): Tensor {
    return ops.neg(this);
  }
  exp(): Tensor {
    return ops.exp(this);
  }
  log(): Tensor {
    return ops.log(this);
  }
  sqrt(): Tensor {
    return ops.sqrt(this);
  }
  rsqrt(): Tensor {
    return ops.rsqrt(this);
  }
  abs(): Tensor {
    return ops.abs(this);
  }
  square(): Tensor {
    return ops.mul(this, this);
  }
  tanh(): Tensor {
    return ops.tanh(this);
  }
  sigmoid(): Tensor {
    return ops.sigmoid(this);
  }
  relu(): Tensor {
    return ops.relu(this);
  }
  clamp(min: number | null, max: number | null = null): Tensor {
    return ops.clamp(this, min, max);
  }
  matmul(other: Tensor): Tensor {
    return ops.matmul(this, other);
  }

  // ---- comparisons ----
  eq(other: TensorOrScalar): Tensor {
    return other instanceof Tensor ? ops.eq(this, other) : ops.eqScalar(this, other);
  }
  gt(other: TensorOrScalar): Tensor {
    return other instanceof Tensor ? ops.gt(this, other) : ops.gtScalar(this, other);
  }
  lt(other: TensorOrScalar): Tensor {
    return other instanceof Tensor ? ops.lt(this, other) : ops.ltScalar(this, other);
  }
  ge(other: TensorOrScalar): Tensor {
    return other instanceof Tensor ? ops.ge(this, other) : ops.geScalar(this, other);
  }
  le(other: TensorOrScalar): Tensor {
    return other instanceof Tensor ? ops.le(this, other) : ops.leScalar(this, other);
  }

  // ---- reductions ----
  /** Sum over dims (all elements when omitted). */
  sum(dim?: number | number[], keepdim = false): Tensor {
    return dim === undefined ? ops.sumAll(this) : ops.sum(this, toList(dim), keepdim);
  }
  mean(dim?: number | number[], keepdim = false): Tensor {
    return dim === undefined ? ops.meanAll(this) : ops.mean(this, toList(dim), keepdim);
  }
  /** Variance with Bessel's correction by default (unbiased), as torch.var. */
  var(dim?: number | number[], options: { correction?: number; keepdim?: boolean } = {}): Tensor {
    return ops.variance(
      this,
      dim === undefined ? null : toList(dim),
      options.correction ?? 1,
      options.keepdim ?? false,
    );
  }
  amax(dim: number | number[], keepdim = false): Tensor {
    return ops.amax(this, toList(dim), keepdim);
  }
  max(): Tensor {
    return ops.maxAll(this);
  }
  min(): Tensor {
    return ops.minAll(this);
  }
  argmax(dim?: number, keepdim = false): Tensor {
    return ops.argmax(this, dim ?? null, keepdim);
  }
  softmax(dim: number): Tensor {
    return ops.softmax(this, dim);
  }

  // ---- shapes and views ----
  view(...shape: number[]): Tensor {
    return ops.view(this, shape);
  }
  reshape(...shape: number[]): Tensor {
    return ops.reshape(this, shape);
  }
  permute(...dims: number[]): Tensor {
    return ops.permute(this, dims);
  }
  transpose(dim0: number, dim1: number): Tensor {
    return ops.transpose(this, dim0, dim1);
  }
  contiguous(): Tensor {
    return ops.contiguous(this);
  }
  unsqueeze(dim: number): Tensor {
    return ops.unsqueeze(this, dim);
  }
  squeeze(dim?: number): Tensor {
    return dim === undefined ? ops.squeeze(this) : ops.squeezeDim(this, dim);
  }
  flatten(startDim = 0, endDim = -1): Tensor {
    return ops.flatten(this, startDim, endDim);
  }
  expand(...shape: number[]): Tensor {
    return ops.expand(this, shape);
  }
  repeat(...repeats: number[]): Tensor {
    return ops.repeat(this, repeats);
  }
  /** Elements start..end (exclusive) with a step along dim, as x[:, start:end:step]. */
  slice(dim: number, start?: number, end?: number, step = 1): Tensor {
    return ops.slice(this, dim, start ?? null, end ?? null, step);
  }
  /** The index-th entry along dim, removing that dim, as x[:, index]. */
  select(dim: number, index: number): Tensor {
    return ops.select(this, dim, index);
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    return ops.chunk(this, chunks, dim);
  }
  split(sizes: number | number[], dim = 0): Tensor[] {
    return typeof sizes === 'number'
      ? ops.split(this, sizes, dim)
      : ops.splitWithSizes(this, sizes, dim);
  }
}

function toList(dim: number | number[]): number[] {
  return typeof dim === 'number' ? [dim] : dim;
}

const DTYPES = new Set([
  'uint8',
  'int8',
  'int16',
  'int32',
  'int64',
  'float16',
  'float32',
  'float64',
  'bool',
  'bfloat16',
]);
function isDType(s: string): s is DType {
  return DTYPES.has(s);
}
