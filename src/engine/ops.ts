// Calling ATen operators by schema name through the boxed dispatcher.
//
// The generated wrappers (ops.generated.ts) call `callOp` with a lazily resolved operator id.
// JS values are converted here: Tensor -> native handle, DType -> ScalarType code; results
// come back as Tensors (or arrays of them), numbers and booleans.
import { native, type TensorHandle, type SchemaInfo } from './native.js';
import { Tensor } from './tensor.js';
import { Generator } from './random.js';

const cache = new Map<string, number>();

/** Resolves an operator once; throws `Unknown operator aten::x` if libtorch lacks it. */
export function findOp(name: string, overload = ''): number {
  const key = `${name}.${overload}`;
  let id = cache.get(key);
  if (id === undefined) {
    id = native.findOp(name, overload);
    cache.set(key, id);
  }
  return id;
}

/** Whether this libtorch has the operator (e.g. scaled_dot_product_attention needs torch 2). */
export function hasOp(name: string, overload = ''): boolean {
  try {
    findOp(name, overload);
    return true;
  } catch {
    return false;
  }
}

export function opSchema(name: string, overload = ''): SchemaInfo {
  return native.opSchema(findOp(name, overload));
}

function toNative(v: unknown): unknown {
  if (v instanceof Tensor) return v.handle;
  if (v instanceof Generator) return v.handle;
  if (Array.isArray(v)) return v.map(toNative);
  return v;
}

function fromNative(v: unknown): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(fromNative);
  return new Tensor(v as TensorHandle);
}

/** Calls an operator by id with arguments in schema order (undefined takes the default). */
export function callOp(op: number, args: unknown[]): unknown {
  // Capture the caller's stack first, so an ATen error points at the user's code.
  try {
    return fromNative(native.callOp(op, args.map(toNative)));
  } catch (err) {
    throw rethrow(err, callOp);
  }
}

/** Calls an in-place operator and returns `self`, dropping the duplicate handle ATen returns. */
export function callInplace(op: number, self: Tensor, args: unknown[]): Tensor {
  try {
    const out = native.callOp(op, args.map(toNative));
    if (out !== null && typeof out === 'object' && !Array.isArray(out)) {
      native.dispose(out as TensorHandle);
    }
    return self;
  } catch (err) {
    throw rethrow(err, callInplace);
  }
}

/** Calls `aten::<name>.<overload>` by name: for operators without a generated wrapper. */
export function call(name: string, overload: string, ...args: unknown[]): unknown {
  return callOp(findOp(name, overload), args);
}

// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type
function rethrow(err: unknown, above: Function): Error {
  if (!(err instanceof Error)) return new Error(String(err));
  const e = new Error(err.message);
  Error.captureStackTrace(e, above);
  return e;
}
