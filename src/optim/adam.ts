// Adam and AdamW with PyTorch's update order (torch.optim, single-tensor path), so a training
// run compares step for step with PyTorch on the same libtorch.
import { Tensor } from '../engine/tensor.js';
import { noGrad } from '../engine/autograd.js';
import { zerosLike } from '../engine/ops.generated.js';
import * as ops from '../engine/ops.generated.js';
import { keep, tidy } from '../engine/scope.js';
import { Generator } from '../engine/random.js';
import { stochasticBFloat16 } from './stochastic_rounding.js';

export interface AdamOptions {
  lr?: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  /**
   * Per-parameter factors on the learning rate (default 1): one optimizer, one schedule, and a
   * part of the model that learns slower (PyTorch's parameter groups, for the case they serve most).
   */
  lrScales?: ReadonlyMap<Tensor, number>;
  /**
   * What the two moments are stored in: float32 (PyTorch's), or bfloat16 — half the optimizer's
   * memory; each step computes in float32 and stores back with stochastic rounding, drawn from
   * a generator seeded with `roundingSeed` (default 0) whose state the checkpoints carry.
   */
  momentDtype?: 'float32' | 'bfloat16';
  roundingSeed?: number;
}

/** Elements per slice of a 16-bit-moment update (float32 temporaries of 16 MB each). */
const ROUNDED_SLICE = 2 ** 22;

/** Key of the rounding generator's state in stateDict's tensors. */
const ROUNDING_STATE = 'rounding_generator';

interface ParamState {
  step: number;
  expAvg: Tensor;
  expAvgSq: Tensor;
}

function checkRate(name: string, v: number, max = Infinity): void {
  if (!Number.isFinite(v) || v < 0 || v >= max) {
    throw new RangeError(`Expected ${name} in [0, ${max}) but received ${v}`);
  }
}

export class Adam {
  lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  private readonly lrScales: ReadonlyMap<Tensor, number>;
  protected readonly state = new Map<Tensor, ParamState>();
  /** Draws the stochastic rounding of 16-bit moments; null when they are float32. */
  private readonly rounding: Generator | null;

  constructor(
    readonly params: Tensor[],
    options: AdamOptions = {},
    /** Decoupled weight decay (AdamW) instead of L2 added to the gradient (Adam). */
    protected readonly decoupled = false,
  ) {
    this.lr = options.lr ?? 1e-3;
    this.betas = options.betas ?? [0.9, 0.999];
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? (decoupled ? 1e-2 : 0);
    checkRate('lr', this.lr);
    checkRate('beta1', this.betas[0], 1);
    checkRate('beta2', this.betas[1], 1);
    checkRate('eps', this.eps);
    checkRate('weightDecay', this.weightDecay);
    this.lrScales = options.lrScales ?? new Map();
    for (const scale of this.lrScales.values()) checkRate('lrScales', scale);
    if (params.length === 0) throw new Error('Optimizer got an empty parameter list');
    const dtype = options.momentDtype ?? 'float32';
    if (dtype !== 'float32' && dtype !== 'bfloat16')
      throw new RangeError(`Expected float32 or bfloat16 for momentDtype but received ${dtype}`);
    this.rounding = dtype === 'bfloat16' ? new Generator(options.roundingSeed ?? 0) : null;
  }

  /** Clears every parameter's gradient (set to none, as PyTorch 2's default). */
  zeroGrad(): void {
    for (const p of this.params) p.grad = null;
  }

  step(): void {
    noGrad(() => {
      for (const p of this.params) {
        tidy(() => {
          const grad = p.grad;
          if (grad === null) return;
          let s = this.state.get(p);
          if (s === undefined) {
            const zeros = () => zerosLike(p, this.rounding ? 'bfloat16' : p.dtype);
            s = { step: 0, expAvg: zeros(), expAvgSq: zeros() };
            this.state.set(p, s);
            keepState(s);
          }
          s.step += 1;
          const lr = this.lr * (this.lrScales.get(p) ?? 1);
          if (this.rounding === null) return this.update(p, grad, s.step, lr, s.expAvg, s.expAvgSq);
          this.updateRounded(p, grad, s, lr, this.rounding);
        });
      }
    });
  }

  /**
   * The update with 16-bit moments, a slice of the parameter at a time: each slice's moments are
   * widened to float32, updated and rounded back, so the float32 temporaries stay one slice's size
   * however large the parameter.
   */
  private updateRounded(
    p: Tensor,
    grad: Tensor,
    s: ParamState,
    lr: number,
    rounding: Generator,
  ): void {
    // views, so the in-place updates land in the parameter and its moments (a copy would not)
    const [params, m16, v16] = [p, s.expAvg, s.expAvgSq].map((t) => ops.view(t, [-1])) as [
      Tensor,
      Tensor,
      Tensor,
    ];
    const grads = grad.reshape(-1);
    const n = params.shape[0]!;
    for (let start = 0; start < n; start += ROUNDED_SLICE) {
      const slice = (t: Tensor) => ops.narrow(t, 0, start, Math.min(ROUNDED_SLICE, n - start));
      tidy(() => {
        const m = slice(m16).to('float32');
        const v = slice(v16).to('float32');
        this.update(slice(params), slice(grads), s.step, lr, m, v);
        ops.copy_(slice(m16), stochasticBFloat16(m, rounding));
        ops.copy_(slice(v16), stochasticBFloat16(v, rounding));
      });
    }
  }

  /** One Adam update of p, its moments m and v updated in place (float32 tensors). */
  private update(
    p: Tensor,
    gradient: Tensor,
    step: number,
    lr: number,
    m: Tensor,
    v: Tensor,
  ): void {
    const [beta1, beta2] = this.betas;
    let grad = gradient;
    if (this.weightDecay !== 0) {
      if (this.decoupled) ops.mulScalar_(p, 1 - lr * this.weightDecay);
      else grad = grad.add(p, this.weightDecay);
    }
    ops.mulScalar_(m, beta1);
    ops.add_(m, grad, 1 - beta1);
    ops.mulScalar_(v, beta2);
    ops.addcmul_(v, grad, grad, 1 - beta2);
    const bias1 = 1 - beta1 ** step;
    const bias2 = 1 - beta2 ** step;
    const stepSize = lr / bias1;
    const denom = ops.addScalar_(ops.divScalar(ops.sqrt(v), Math.sqrt(bias2)), this.eps);
    ops.addcdiv_(p, m, denom, -stepSize);
  }

  /** Frees the moment tensors (the optimizer can still step; moments restart from zero). */
  dispose(): void {
    for (const s of this.state.values()) {
      s.expAvg.dispose();
      s.expAvgSq.dispose();
    }
    this.state.clear();
  }

  /** Moment tensors and step counts, keyed by parameter index, for checkpoints. */
  stateDict(): { steps: number[]; tensors: Map<string, Tensor> } {
    const steps: number[] = [];
    const tensors = new Map<string, Tensor>();
    this.params.forEach((p, i) => {
      const s = this.state.get(p);
      steps.push(s?.step ?? 0);
      if (s) {
        tensors.set(`${i}.exp_avg`, s.expAvg);
        tensors.set(`${i}.exp_avg_sq`, s.expAvgSq);
      }
    });
    if (this.rounding) tensors.set(ROUNDING_STATE, this.rounding.getState());
    return { steps, tensors };
  }

  loadStateDict(saved: { steps: number[]; tensors: Map<string, Tensor> }): void {
    if (saved.steps.length !== this.params.length) {
      throw new Error(
        `Optimizer state is for ${saved.steps.length} parameters but this optimizer has ${this.params.length}`,
      );
    }
    const rounding = saved.tensors.get(ROUNDING_STATE);
    if (this.rounding && rounding) this.rounding.setState(rounding);
    this.params.forEach((p, i) => {
      const step = saved.steps[i]!;
      if (step === 0) return;
      const expAvg = saved.tensors.get(`${i}.exp_avg`);
      const expAvgSq = saved.tensors.get(`${i}.exp_avg_sq`);
      if (!expAvg || !expAvgSq)
        throw new Error(`Optimizer state lacks the moments of parameter ${i}`);
      if (expAvg.shape.join() !== p.shape.join()) {
        throw new Error(
          `Optimizer state for parameter ${i} has shape [${expAvg.shape}] but the parameter has [${p.shape}]`,
        );
      }
      const dtype = this.rounding ? 'bfloat16' : p.dtype;
      const s = {
        step,
        expAvg: noGrad(() => expAvg.to(dtype).clone()),
        expAvgSq: noGrad(() => expAvgSq.to(dtype).clone()),
      };
      keepState(s);
      this.state.get(p)?.expAvg.dispose();
      this.state.get(p)?.expAvgSq.dispose();
      this.state.set(p, s);
    });
  }
}

export class AdamW extends Adam {
  constructor(params: Tensor[], options: AdamOptions = {}) {
    super(params, options, true);
  }
}

function keepState(s: ParamState): void {
  keep(s.expAvg);
  keep(s.expAvgSq);
}
