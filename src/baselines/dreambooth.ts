// DreamBooth (Ruiz et al., CVPR 2023) on the shared trainer: the whole U-Net fine-tuned on
// "a sks <class>" with prior preservation on the base model's own "a <class>" images (prior.ts).
// By default the text encoder stays frozen (diffusers' train_dreambooth without
// --train_text_encoder), so the trainer's precomputed context serves. With the text encoder
// trained along, the prompt, the empty prompt of a dropped sample and the class prompt are
// encoded inside each loss, so the gradients reach it.
//
// Saves the U-Net as a diffusers unet folder — config.json (the base's, unchanged) and
// diffusion_pytorch_model.safetensors — that `p3s generate --adapter` or diffusers'
// UNet2DConditionModel.from_pretrained loads; a trained text encoder goes beside it as a
// transformers text_encoder folder (config.json, model.safetensors), as diffusers' pipeline
// folders keep it, and generation loads it with the U-Net.
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ITEM_SIZE } from '../engine/dtype.js';
import * as ops from '../engine/ops.generated.js';
import type { Tensor } from '../engine/tensor.js';
import { saveSafetensors } from '../io/safetensors.js';
import { Module } from '../nn/module.js';
import type { StableDiffusionPipeline } from '../pipelines/stable_diffusion.js';
import type { DDPMScheduler } from '../schedulers/scheduling_ddpm.js';
import type { NoisedBatch } from '../training/method.js';
import { BaselineMethod, type BaselineSettings } from './baseline_method.js';
import { classPrompt } from './prior.js';

export const DREAMBOOTH_WEIGHTS = 'diffusion_pytorch_model.safetensors';
/** transformers' weights file, in the text_encoder folder beside unet/. */
export const TEXT_ENCODER_WEIGHTS = 'model.safetensors';

/** What DreamBooth trains with its text encoder: both, under their pipeline names. */
class UNetAndTextEncoder extends Module {
  constructor(unet: Module, textEncoder: Module) {
    super();
    this.registerModule('unet', unet);
    this.registerModule('text_encoder', textEncoder);
  }
}

export interface DreamBoothFiles {
  /** The base model folder: its unet/ and text_encoder/ config.json are copied. */
  baseModel: string;
  metadata: Record<string, string>;
}

export class DreamBoothMethod extends BaselineMethod {
  readonly name = 'DreamBooth';
  readonly trainable: Module;

  constructor(
    private readonly pipeline: StableDiffusionPipeline,
    scheduler: DDPMScheduler,
    settings: BaselineSettings,
    private readonly files: DreamBoothFiles,
    /** The training prompt and class word, encoded in each loss when the text encoder trains. */
    private readonly text: { prompt: string; classWord: string; train: boolean },
  ) {
    super(pipeline.unet, scheduler, settings);
    this.unet.requiresGrad_(true).train();
    if (!text.train) {
      this.trainable = this.unet;
      return;
    }
    pipeline.textEncoder.requiresGrad_(true).train();
    this.trainable = new UNetAndTextEncoder(this.unet, pipeline.textEncoder);
  }

  /** The prompts encoded now: (n, L, D). */
  private encode(prompts: string[]): Tensor {
    return this.pipeline.textEncoder.forward(this.pipeline.tokenize(prompts)).lastHiddenState;
  }

  protected override context(batch: NoisedBatch): Tensor {
    if (!this.text.train) return batch.context;
    const both = this.encode([this.text.prompt, '']); // (2, L, D): prompt, dropped
    return ops.cat(
      batch.dropped.map((d) => (d ? both.slice(0, 1, 2) : both.slice(0, 0, 1))),
      0,
    );
  }

  protected override priorContext(): Tensor | undefined {
    return this.text.train ? this.encode([classPrompt(this.text.classWord)]) : undefined;
  }

  save(outDir: string, steps: number): string {
    const metadata = { format: 'pt', ...this.files.metadata, training_steps: String(steps) };
    const dir = join(outDir, 'unet');
    mkdirSync(dir, { recursive: true });
    copyFileSync(join(this.files.baseModel, 'unet', 'config.json'), join(dir, 'config.json'));
    saveSafetensors(join(dir, DREAMBOOTH_WEIGHTS), this.unet.stateDict(), metadata); // 'pt': what diffusers writes and checks
    if (this.text.train) {
      const te = textEncoderFolder(dir);
      mkdirSync(te, { recursive: true });
      const config = join(this.files.baseModel, 'text_encoder', 'config.json');
      copyFileSync(config, join(te, 'config.json'));
      const state = this.pipeline.textEncoder.stateDict();
      saveSafetensors(join(te, TEXT_ENCODER_WEIGHTS), state, metadata);
    }
    return dir;
  }

  artifactBytes(): number {
    return [...this.trainable.stateDict().values()].reduce(
      (n, t) => n + t.numel * ITEM_SIZE[t.dtype],
      0,
    );
  }
}

/** Where a DreamBooth unet folder's text encoder is, if it was trained: its sibling. */
export const textEncoderFolder = (unetFolder: string): string =>
  join(dirname(unetFolder), 'text_encoder');
