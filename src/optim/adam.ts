// Adam and AdamW with PyTorch's update order (torch.optim, single-tensor path), so a training
// run compares step for step with PyTorch on the same libtorch.
import { Tensor } from '../engine/tensor.js';
import { noGrad } from '../engine/autograd.js';
import { zerosLike } from '../engine/ops.generated.js';
import * as ops from '../engine/ops.generated.js';
import { keep, tidy } from '../engine/scope.js';

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
}

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
  }

  /** Clears every parameter's gradient (set to none, as PyTorch 2's default). */
  zeroGrad(): void {
    for (const p of this.params) p.grad = null;
  }

  step(): void {
    const [beta1, beta2] = this.betas;
    noGrad(() => {
      for (const p of this.params) {
        tidy(() => {
          let grad = p.grad;
          if (grad === null) return;
          let s = this.state.get(p);
          if (s === undefined) {
            s = { step: 0, expAvg: zerosLike(p), expAvgSq: zerosLike(p) };
            this.state.set(p, s);
            keepState(s);
          }
          s.step += 1;
          const lr = this.lr * (this.lrScales.get(p) ?? 1);
          if (this.weightDecay !== 0) {
            if (this.decoupled) ops.mulScalar_(p, 1 - lr * this.weightDecay);
            else grad = grad.add(p, this.weightDecay);
          }
          ops.mulScalar_(s.expAvg, beta1);
          ops.add_(s.expAvg, grad, 1 - beta1);
          ops.mulScalar_(s.expAvgSq, beta2);
          ops.addcmul_(s.expAvgSq, grad, grad, 1 - beta2);
          const bias1 = 1 - beta1 ** s.step;
          const bias2 = 1 - beta2 ** s.step;
          const stepSize = lr / bias1;
          const denom = ops.addScalar_(
            ops.divScalar(ops.sqrt(s.expAvgSq), Math.sqrt(bias2)),
            this.eps,
          );
          ops.addcdiv_(p, s.expAvg, denom, -stepSize);
        });
      }
    });
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
    return { steps, tensors };
  }

  loadStateDict(saved: { steps: number[]; tensors: Map<string, Tensor> }): void {
    if (saved.steps.length !== this.params.length) {
      throw new Error(
        `Optimizer state is for ${saved.steps.length} parameters but this optimizer has ${this.params.length}`,
      );
    }
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
      const s = {
        step,
        expAvg: noGrad(() => expAvg.to(p.dtype).clone()),
        expAvgSq: noGrad(() => expAvgSq.to(p.dtype).clone()),
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
