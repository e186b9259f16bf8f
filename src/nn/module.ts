// Module: named parameters, buffers and children, with state-dict paths equal to the
// checkpoint keys of the reference implementations ("down_blocks.0.resnets.1.conv1.weight").
import { Tensor } from '../engine/tensor.js';
import { noGrad } from '../engine/autograd.js';
import type { DType } from '../engine/dtype.js';
import { copy_ } from '../engine/ops.generated.js';

export interface LoadResult {
  missing: string[];
  unexpected: string[];
}

export class StateDictError extends Error {
  constructor(
    message: string,
    readonly missing: string[],
    readonly unexpected: string[],
    readonly mismatched: string[],
  ) {
    super(message);
    this.name = 'StateDictError';
  }
}

/** Keys a mismatch names; the rest are counted (a wrong folder misses hundreds). */
const KEYS_NAMED = 5;

function someKeys(what: string, keys: readonly string[], separator: string): string {
  const more = keys.length - KEYS_NAMED;
  return `${what}: ${keys.slice(0, KEYS_NAMED).join(separator)}${more > 0 ? ` and ${more} more` : ''}`;
}

/** "missing keys: a, b, c, d, e and 191 more | unexpected keys: ... | mis-shaped keys: ..." */
export function describeKeyMismatch(
  missing: readonly string[],
  unexpected: readonly string[],
  mismatched: readonly string[],
): string {
  const parts: string[] = [];
  if (missing.length) parts.push(someKeys('missing keys', missing, ', '));
  if (unexpected.length) parts.push(someKeys('unexpected keys', unexpected, ', '));
  if (mismatched.length) parts.push(someKeys('mis-shaped keys', mismatched, '; '));
  return parts.join(' | ');
}

export abstract class Module {
  training = true;
  private readonly params = new Map<string, Tensor | null>();
  private readonly buffers = new Map<string, { tensor: Tensor | null; persistent: boolean }>();
  private readonly children = new Map<string, Module>();

  protected registerParameter(name: string, value: Tensor | null): Tensor | null {
    if (value !== null && value.isFloatingPoint) value.requiresGrad_(true);
    this.params.set(name, value);
    return value;
  }

  protected registerBuffer(name: string, value: Tensor | null, persistent = true): void {
    this.buffers.set(name, { tensor: value, persistent });
  }

  protected registerModule<M extends Module>(name: string, module: M): M {
    this.children.set(name, module);
    return module;
  }

  /** A registered parameter by name; throws if absent (a bug in the model, not user input). */
  protected param(name: string): Tensor {
    const p = this.params.get(name);
    if (p == null) throw new Error(`${this.constructor.name} has no parameter ${name}`);
    return p;
  }

  protected optionalParam(name: string): Tensor | null {
    return this.params.get(name) ?? null;
  }

  protected buffer(name: string): Tensor {
    const b = this.buffers.get(name)?.tensor;
    if (b == null) throw new Error(`${this.constructor.name} has no buffer ${name}`);
    return b;
  }

  child<M extends Module = Module>(name: string): M {
    const m = this.children.get(name);
    if (m === undefined) throw new Error(`${this.constructor.name} has no submodule ${name}`);
    return m as M;
  }

  *namedModules(prefix = ''): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [name, m] of this.children)
      yield* m.namedModules(prefix ? `${prefix}.${name}` : name);
  }

  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [path, m] of this.namedModules(prefix)) {
      for (const [name, p] of m.params)
        if (p !== null) out.push([path ? `${path}.${name}` : name, p]);
    }
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, p]) => p);
  }

  /** Parameters that will receive gradients. */
  trainableParameters(): Tensor[] {
    return this.parameters().filter((p) => p.requiresGrad);
  }

  namedBuffers(prefix = '', persistentOnly = false): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [path, m] of this.namedModules(prefix)) {
      for (const [name, b] of m.buffers) {
        if (b.tensor !== null && (!persistentOnly || b.persistent))
          out.push([path ? `${path}.${name}` : name, b.tensor]);
      }
    }
    return out;
  }

  numParameters(): number {
    return this.parameters().reduce((n, p) => n + p.numel, 0);
  }

  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Turns gradient tracking of every parameter on or off (off = frozen). */
  requiresGrad_(value = true): this {
    for (const p of this.parameters()) if (p.isFloatingPoint) p.requiresGrad_(value);
    return this;
  }

  freeze(): this {
    return this.requiresGrad_(false);
  }

  /** Parameters and persistent buffers by checkpoint key (the tensors themselves, not copies). */
  stateDict(): Map<string, Tensor> {
    return new Map([...this.namedParameters(), ...this.namedBuffers('', true)]);
  }

  /**
   * Copies values into this module's parameters and buffers (converting dtype as needed).
   * Strict by default: any missing, unexpected or mis-shaped key is an error naming every one.
   */
  loadStateDict(
    state: Map<string, Tensor> | Record<string, Tensor>,
    options: { strict?: boolean } = {},
  ): LoadResult {
    const strict = options.strict ?? true;
    const source = state instanceof Map ? state : new Map(Object.entries(state));
    const own = this.stateDict();
    const missing = [...own.keys()].filter((k) => !source.has(k));
    const unexpected = [...source.keys()].filter((k) => !own.has(k));
    const mismatched: string[] = [];
    for (const [key, target] of own) {
      const value = source.get(key);
      if (value === undefined) continue;
      if (value.shape.join(',') !== target.shape.join(',')) {
        mismatched.push(
          `${key}: checkpoint [${value.shape.join(', ')}] vs model [${target.shape.join(', ')}]`,
        );
      }
    }
    if (mismatched.length > 0 || (strict && (missing.length > 0 || unexpected.length > 0))) {
      throw new StateDictError(
        `Error loading state dict into ${this.constructor.name}: ${describeKeyMismatch(missing, unexpected, mismatched)}`,
        missing,
        unexpected,
        mismatched,
      );
    }
    noGrad(() => {
      for (const [key, target] of own) {
        const value = source.get(key);
        if (value !== undefined) copy_(target, value);
      }
    });
    return { missing, unexpected };
  }

  /** Converts every floating-point parameter and buffer to a dtype, or moves all to a device. */
  to(target: DType | string): this {
    for (const [, m] of this.namedModules()) {
      for (const [name, p] of m.params) {
        if (p === null || (!p.isFloatingPoint && isDTypeName(target))) continue;
        const converted = noGrad(() => p.to(target));
        if (p.requiresGrad) converted.requiresGrad_(true);
        m.params.set(name, converted);
        p.dispose();
      }
      for (const [name, b] of m.buffers) {
        if (b.tensor === null || (!b.tensor.isFloatingPoint && isDTypeName(target))) continue;
        const old = b.tensor;
        m.buffers.set(name, { tensor: noGrad(() => old.to(target)), persistent: b.persistent });
        old.dispose();
      }
    }
    return this;
  }

  /** Frees every parameter and buffer now. */
  dispose(): void {
    for (const [, t] of this.stateDict()) t.dispose();
    for (const [, t] of this.namedBuffers()) t.dispose();
  }
}

function isDTypeName(s: string): boolean {
  return /^(u?int\d+|float\d+|bfloat16|bool)$/.test(s);
}

/** Holds submodules under the keys "0", "1", ... as torch.nn.ModuleList. */
export class ModuleList<M extends Module = Module> extends Module {
  private readonly items: M[];
  constructor(items: M[] = []) {
    super();
    this.items = [];
    for (const m of items) this.push(m);
  }
  push(m: M): void {
    this.registerModule(String(this.items.length), m);
    this.items.push(m);
  }
  at(i: number): M {
    const m = this.items[i < 0 ? i + this.items.length : i];
    if (m === undefined)
      throw new RangeError(`ModuleList index ${i} out of range (length ${this.items.length})`);
    return m;
  }
  get length(): number {
    return this.items.length;
  }
  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }
}
