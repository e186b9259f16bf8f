// DreamBooth (Ruiz et al., CVPR 2023) on the shared trainer: the whole U-Net fine-tuned on
// "a sks <class>" with prior preservation on the base model's own "a <class>" images (prior.ts).
// The text encoder stays frozen (diffusers' train_dreambooth without --train_text_encoder), so
// the trainer's precomputed context serves. Saves the U-Net as a diffusers unet folder —
// config.json (the base's, unchanged) and diffusion_pytorch_model.safetensors — that
// `p3s generate --adapter` or diffusers' UNet2DConditionModel.from_pretrained loads.
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ITEM_SIZE } from '../engine/dtype.js';
import { saveSafetensors } from '../io/safetensors.js';
import type { UNet2DConditionModel } from '../models/unet/unet_2d_condition.js';
import type { DDPMScheduler } from '../schedulers/scheduling_ddpm.js';
import { BaselineMethod, type BaselineSettings } from './baseline_method.js';

export const DREAMBOOTH_WEIGHTS = 'diffusion_pytorch_model.safetensors';

export class DreamBoothMethod extends BaselineMethod {
  readonly name = 'DreamBooth';

  constructor(
    unet: UNet2DConditionModel,
    scheduler: DDPMScheduler,
    settings: BaselineSettings,
    /** The base model's unet/config.json, copied next to the weights. */
    private readonly unetConfig: string,
    private readonly metadata: Record<string, string>,
  ) {
    super(unet, scheduler, settings);
    unet.requiresGrad_(true).train();
  }

  get trainable(): UNet2DConditionModel {
    return this.unet;
  }

  save(outDir: string, steps: number): string {
    const dir = join(outDir, 'unet');
    mkdirSync(dir, { recursive: true });
    copyFileSync(this.unetConfig, join(dir, 'config.json'));
    saveSafetensors(join(dir, DREAMBOOTH_WEIGHTS), this.unet.stateDict(), {
      format: 'pt', // what diffusers writes and checks
      ...this.metadata,
      training_steps: String(steps),
    });
    return dir;
  }

  artifactBytes(): number {
    return [...this.unet.stateDict().values()].reduce(
      (n, t) => n + t.numel * ITEM_SIZE[t.dtype],
      0,
    );
  }
}
