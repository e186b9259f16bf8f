// Textual Inversion (Gal et al., ICLR 2023) on the shared trainer: one new token "<sks>" whose
// embedding — initialised from the class word's — is the only thing that trains; U-Net, VAE
// and text encoder stay frozen. The prompt ("a <sks> toy") is encoded inside each loss, so the
// gradient reaches the token through the text encoder. No prior preservation (the model's
// weights do not change, so there is no prior to drift). Saves learned_embeds.safetensors.
import { join } from 'node:path';
import { ITEM_SIZE } from '../engine/dtype.js';
import type { Tensor } from '../engine/tensor.js';
import type { StableDiffusionPipeline } from '../pipelines/stable_diffusion.js';
import type { DDPMScheduler } from '../schedulers/scheduling_ddpm.js';
import type { NoisedBatch } from '../training/method.js';
import { AddedToken, encodeWithToken, LEARNED_EMBEDS } from './added_token.js';
import { BaselineMethod, type BaselineSettings } from './baseline_method.js';

/** A method whose prompt holds a trainable token (Textual Inversion, Custom Diffusion). */
export abstract class TokenMethod extends BaselineMethod {
  private readonly uninstall: () => void;

  constructor(
    protected readonly pipeline: StableDiffusionPipeline,
    scheduler: DDPMScheduler,
    settings: BaselineSettings,
    readonly token: AddedToken,
    /** The training prompt, with the token: "a <sks> toy". */
    private readonly prompt: string,
    protected readonly metadata: Record<string, string>,
  ) {
    super(pipeline.unet, scheduler, settings);
    this.uninstall = token.install(pipeline);
    token.requiresGrad_(true);
  }

  protected override context(batch: NoisedBatch): Tensor {
    return encodeWithToken(this.pipeline, this.prompt, batch.context, batch.dropped);
  }

  /** Writes <outDir>/learned_embeds.safetensors; returns its path. */
  protected saveToken(outDir: string, steps: number): string {
    const path = join(outDir, LEARNED_EMBEDS);
    this.token.save(path, { ...this.metadata, training_steps: String(steps) });
    return path;
  }

  override dispose(): void {
    this.uninstall();
    this.token.dispose();
    super.dispose();
  }
}

export class TextualInversionMethod extends TokenMethod {
  readonly name = 'Textual Inversion';

  get trainable(): AddedToken {
    return this.token;
  }

  save(outDir: string, steps: number): string {
    return this.saveToken(outDir, steps);
  }

  artifactBytes(): number {
    return this.token.embedding.numel * ITEM_SIZE[this.token.embedding.dtype];
  }
}
