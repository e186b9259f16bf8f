// What the baselines (DreamBooth, Textual Inversion, Custom Diffusion) share as fine-tuning
// methods (training/method.ts): the plain U-Net's denoising loss on the trainer's batches —
// weighted by the subject masks when --background-loss-weight is below 1 (0: kohya's masked
// loss) — plus, with prior preservation, the weighted loss on the class images:
//   L = L_instance + w_prior · L_prior
// They differ in what trains, which text context the U-Net sees and what they save.
//
// The evaluation batch (draw null) measures L_instance only: the prior's draws would move the
// run's generator, and the instance loss is what fine-tuning lowers.
import { tensor } from '../engine/creation.js';
import type { Generator } from '../engine/random.js';
import type { Tensor } from '../engine/tensor.js';
import type { Module } from '../nn/module.js';
import type { UNet2DConditionModel } from '../models/unet/unet_2d_condition.js';
import { subjectWeightedLoss } from '../p3s/adapter/losses.js';
import type { DDPMScheduler } from '../schedulers/scheduling_ddpm.js';
import type { FineTuningMethod, MethodLoss, NoisedBatch } from '../training/method.js';
import type { PriorPreservation } from './prior.js';

export interface BaselineSettings {
  /** Weight of the error outside the subject mask (1: the plain loss). */
  backgroundLossWeight: number;
  /** The class images' loss, or null without prior preservation. */
  prior: PriorPreservation | null;
}

export abstract class BaselineMethod implements FineTuningMethod {
  abstract readonly name: string;
  abstract readonly trainable: Module;

  constructor(
    protected readonly unet: UNet2DConditionModel,
    protected readonly scheduler: DDPMScheduler,
    protected readonly settings: BaselineSettings,
  ) {}

  /** The text context (B, L, D) the U-Net sees for the batch: the trainer's by default. */
  protected context(batch: NoisedBatch): Tensor {
    return batch.context;
  }

  /** The class prompt's context (1, L, D) for the prior's loss; undefined: the precomputed one. */
  protected priorContext(): Tensor | undefined {
    return undefined;
  }

  loss(batch: NoisedBatch, draw: Generator | null): MethodLoss {
    const b = batch.timesteps.length;
    const t = tensor(batch.timesteps, [b], { dtype: 'int64', device: batch.xt.device }); // (B,)
    const prediction = this.unet.forward(batch.xt, t, this.context(batch));
    const ldm = subjectWeightedLoss(
      prediction,
      batch.target,
      batch.subjectMasks,
      this.settings.backgroundLossWeight,
    );
    const { prior: p } = this.settings;
    const prior =
      draw !== null && p !== null
        ? p.loss(this.unet, this.scheduler, batch.timesteps.length, draw, this.priorContext())
        : null;
    return {
      loss: prior === null ? ldm : ldm.add(prior.mul(p!.weight)),
      // no prior part without prior preservation, so progress does not show a 0 for it
      parts: p === null ? { ldm } : { ldm, prior },
      release: () => {},
    };
  }

  abstract save(outDir: string, steps: number): string;
  abstract artifactBytes(): number;

  /** Frees the class images; the U-Net and text encoder are the pipeline's to free. */
  dispose(): void {
    this.settings.prior?.dispose();
  }
}
