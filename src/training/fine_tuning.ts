// Fine-tuning a diffusion model on a few reference photos of one subject: what every method
// (P3S, DreamBooth, Custom Diffusion, Textual Inversion) shares — the noised batches drawn from
// the references' latents, the micro-batch loop that accumulates a method's loss into one
// optimizer step, and a fixed evaluation loss — and what a method provides (method.ts).
//
// Draws per micro-batch, from the run's Generator and in this order: which copy of its
// reference each sample shows (when there are augmented copies), the timesteps t ~ U{0..T−1}
// (shifted when asked), the noise ε, the condition-dropout decisions; then whatever the method
// draws itself. The items come from DataOrder, a function of (seed, sample index), so a
// checkpoint's step and generator state restore the exact stream.
import { rand, randint, randn } from '../engine/creation.js';
import { noGrad } from '../engine/autograd.js';
import { Generator } from '../engine/random.js';
import { tidy } from '../engine/scope.js';
import type { Tensor } from '../engine/tensor.js';
import * as ops from '../engine/ops.generated.js';
import type { DDPMScheduler } from '../schedulers/scheduling_ddpm.js';
import { DataOrder } from './data_order.js';
import type { FineTuningMethod, NoisedBatch } from './method.js';
import { interceptLoss, type TrainingObserver } from './observer.js';
import type { StepLoss } from './loop.js';

/** The references as the denoiser sees them. */
export interface ReferenceLatents {
  /** (N, C, h, w): x_0 of each reference. */
  latents: Tensor;
  /** (N, 1, h, w): each latent cell's share of the subject mask, when the loss weighs it. */
  subjectMasks: Tensor | null;
  /** The same for each augmented copy of the references (mirrored, moved); may be empty. */
  variants: { latents: Tensor; subjectMasks: Tensor | null }[];
}

/** Copy v of a set of references: the references themselves for 0, else `variants[v − 1]`. */
export function referenceCopy<C>(refs: C & { variants: readonly C[] }, v: number): C {
  return v === 0 ? refs : refs.variants[v - 1]!;
}

/** The text contexts of the training prompt and of the empty prompt, (1, L, D) each. */
export interface PromptContexts {
  prompt: Tensor;
  empty: Tensor;
}

export interface BatchSettings {
  batchSize: number;
  gradientAccumulation: number;
  /** Probability of the empty prompt (for classifier-free guidance). */
  conditionDropout: number;
  /** Timesteps shifted towards noise by this factor (shiftTimestep); 1 or absent: uniform. */
  timestepShift?: number;
}

/**
 * Timestep t of T moved towards noise by the factor s, as SD3 shifts its timesteps: with
 * u = (t + ½)/T, u' = s·u / (1 + (s − 1)·u). s = 1 gives t back; s = 3 sends three quarters of
 * uniform draws to the noisier half.
 */
export function shiftTimestep(t: number, T: number, s: number): number {
  if (s === 1) return t;
  const u = (t + 0.5) / T;
  return Math.min(T - 1, Math.floor((T * s * u) / (1 + (s - 1) * u)));
}

/** What the micro-batch loop needs besides the method. */
export interface FineTuningData {
  references: ReferenceLatents;
  contexts: PromptContexts;
  scheduler: DDPMScheduler;
  settings: BatchSettings;
  order: DataOrder;
  generator: Generator;
}

/** One micro-batch of the given reference indices, drawn in the documented order. */
export function drawBatch(data: FineTuningData, items: readonly number[]): NoisedBatch {
  const { references: refs, scheduler, generator, settings } = data;
  const b = items.length;
  const T = scheduler.config.num_train_timesteps;
  // 1. the copy each sample shows: the references themselves or an augmented one, evenly,
  // counted down from the last copy, so that with one copy (--flip) u < ½ mirrors, as it did
  // before there were more copies
  const copies = refs.variants.length + 1;
  const variants =
    copies > 1
      ? (rand([b], { generator }).toArray() as number[]).map(
          (u) => copies - 1 - Math.min(copies - 1, Math.floor(u * copies)),
        )
      : new Array<number>(b).fill(0);
  // 2. timesteps t ~ U{0..T−1}, then shifted (the same draws whatever the shift)
  const shift = settings.timestepShift ?? 1;
  const timesteps = (randint(0, T, [b], { generator }).toArray() as number[]).map((t) =>
    shiftTimestep(t, T, shift),
  );
  // 3. x_0 and the noise ε
  const source = (j: number) => referenceCopy(refs, variants[j]!);
  const x0 = ops.cat(
    items.map((r, j) => source(j).latents.slice(0, r, r + 1)),
    0,
  ); // (B, C, h, w)
  const noise = randn(x0.shape, { generator, dtype: x0.dtype });
  // 4. condition dropout: the empty prompt, so guidance has an unconditional branch
  const dropped = (rand([b], { generator }).toArray() as number[]).map(
    (u) => u < settings.conditionDropout,
  );
  const subjectMasks = refs.subjectMasks
    ? ops.cat(
        items.map((r, j) => source(j).subjectMasks!.slice(0, r, r + 1)),
        0,
      )
    : null;
  return {
    items: [...items],
    variants,
    timesteps,
    x0,
    noise,
    xt: scheduler.addNoise(x0, noise, timesteps), // x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε
    target: scheduler.trainingTarget(x0, noise, timesteps), // ε, v or x_0
    context: ops.cat(
      dropped.map((d) => (d ? data.contexts.empty : data.contexts.prompt)),
      0,
    ), // (B, L, D)
    dropped,
    subjectMasks,
  };
}

/**
 * A fixed batch for the evaluation loss: reference r at the K timesteps ⌊(k + ½)·T/K⌋, noise
 * from `generator` (not the run's), the training prompt, no augmented copies. Its `items` is [r]: every
 * sample shows the same reference.
 */
export function evaluationBatch(
  data: Pick<FineTuningData, 'references' | 'contexts' | 'scheduler'>,
  r: number,
  k: number,
  generator: Generator,
): NoisedBatch {
  const { references: refs, scheduler } = data;
  const T = scheduler.config.num_train_timesteps;
  const timesteps = Array.from({ length: k }, (_, i) => Math.floor(((i + 0.5) * T) / k));
  const x0 = refs.latents.slice(0, r, r + 1).expand(k, ...refs.latents.shape.slice(1));
  const noise = randn(x0.shape, { generator, dtype: x0.dtype });
  return {
    items: [r],
    variants: new Array<number>(k).fill(0),
    timesteps,
    x0,
    noise,
    xt: scheduler.addNoise(x0, noise, timesteps),
    target: scheduler.trainingTarget(x0, noise, timesteps),
    context: data.contexts.prompt.expand(k, ...data.contexts.prompt.shape.slice(1)),
    dropped: new Array<boolean>(k).fill(false),
    subjectMasks: refs.subjectMasks
      ? refs.subjectMasks.slice(0, r, r + 1).expand(k, 1, -1, -1)
      : null,
  };
}

/**
 * One optimizer step's gradients: `gradientAccumulation` micro-batches of `batchSize` items,
 * each loss divided by their count and back-propagated. Stops at the first non-finite loss
 * without back-propagating it (the loop then stops the run).
 */
export function fineTuningStep(
  data: FineTuningData,
  method: FineTuningMethod,
  step: number,
  observers: readonly TrainingObserver[] = [],
): StepLoss {
  const { batchSize, gradientAccumulation: accumulate } = data.settings;
  const total: StepLoss = { loss: 0, parts: {}, epoch: 0 };
  for (let micro = 0; micro < accumulate; micro++) {
    const first = (step * accumulate + micro) * batchSize;
    const picks = Array.from({ length: batchSize }, (_, j) => data.order.at(first + j));
    total.epoch = picks[0]!.epoch;
    const values = tidy(() => {
      const out = method.loss(
        drawBatch(
          data,
          picks.map((p) => p.item),
        ),
        data.generator,
      );
      try {
        const loss = interceptLoss(observers, step + 1, out.loss);
        const parts = Object.fromEntries(
          Object.entries(out.parts).map(([k, v]) => [k, v ? v.item() : 0]),
        );
        const value = loss.item();
        // a non-finite loss is not back-propagated: the weights stay as the last good step left
        // them; nor is one that reaches no trainable weight (Textual Inversion's token when every
        // prompt of the micro-batch was dropped for the empty one)
        if (Number.isFinite(value) && loss.requiresGrad) loss.div(accumulate).backward();
        return { loss: value, parts };
      } finally {
        out.release();
      }
    });
    if (!Number.isFinite(values.loss)) return { ...values, epoch: total.epoch };
    total.loss += values.loss / accumulate;
    for (const [k, v] of Object.entries(values.parts))
      total.parts![k] = (total.parts![k] ?? 0) + v / accumulate;
  }
  return total;
}

/**
 * The method's loss on a fixed batch per reference (evaluationBatch, 5 timesteps), without
 * gradients and without touching the run's generator: comparable across steps and runs.
 */
export function evaluationLoss(
  data: Pick<FineTuningData, 'references' | 'contexts' | 'scheduler'>,
  method: FineTuningMethod,
  k = 5,
): number {
  return noGrad(() => {
    const n = data.references.latents.shape[0]!;
    const generator = new Generator(0x5eed);
    let total = 0;
    for (let r = 0; r < n; r++) {
      total += tidy(() => {
        const out = method.loss(evaluationBatch(data, r, k, generator), null);
        try {
          return out.loss.item();
        } finally {
          out.release();
        }
      });
    }
    return total / n;
  });
}
