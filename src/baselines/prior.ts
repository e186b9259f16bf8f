// Prior preservation (DreamBooth, Ruiz et al. 2023, Eq. 2; also Custom Diffusion's
// regularisation images): images of the bare class ("a dog") that the base model draws before
// training, and a second denoising loss on them with the class prompt, so fine-tuning on a few
// photos of one dog does not turn every dog into that one.
//
// The class images are drawn once and kept in <out>/class-images as PNGs (a resume, or a new
// run into the same folder with the same class, reuses them; another prompt or size redraws
// them). Image k has seed `seed + k`, 50 DDIM steps, guidance 7.5 — the pipeline defaults
// diffusers' train_dreambooth draws its class images with.
//
// Draws per micro-batch, from the run's generator after the shared ones (fine_tuning.ts): the
// class image of each sample, its timestep, its noise.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randint, randn, tensor } from '../engine/creation.js';
import type { Generator } from '../engine/random.js';
import type { Tensor } from '../engine/tensor.js';
import * as ops from '../engine/ops.generated.js';
import { readImage, writePng, type RgbImage } from '../io/image.js';
import type { UNet2DConditionModel } from '../models/unet/unet_2d_condition.js';
import { encodeLatents, squareCrop } from '../p3s/references.js';
import { ldmLoss } from '../p3s/adapter/losses.js';
import { StableDiffusionPipeline } from '../pipelines/stable_diffusion.js';
import { schedulerFromConfig } from '../schedulers/index.js';
import type { DDPMScheduler } from '../schedulers/scheduling_ddpm.js';
import { readSchedulerConfig } from '../schedulers/scheduling_utils.js';

export interface ClassImageSettings {
  classWord: string;
  count: number;
  resolution: number;
  seed: number;
  /** The base model folder (its scheduler config gives the DDIM sampler). */
  baseModel: string;
  /** Where the PNGs are kept: <out>/class-images. */
  folder: string;
  log(message: string): void;
}

const CLASS_IMAGE_STEPS = 50;
const CLASS_IMAGE_GUIDANCE = 7.5;

/** The class prompt: the training prompt without the identifier. */
export const classPrompt = (classWord: string): string => `a ${classWord}`;

/** What the cached images were drawn with; another value redraws them. */
function drawnWith(s: ClassImageSettings): string {
  const { classWord, resolution, seed } = s;
  const prompt = classPrompt(classWord);
  return JSON.stringify({ prompt, resolution, seed, steps: CLASS_IMAGE_STEPS });
}

const imagePath = (folder: string, k: number): string =>
  join(folder, `${String(k).padStart(4, '0')}.png`);

/** The class images, drawn now where the folder does not already hold them. */
export async function classImages(
  pipeline: StableDiffusionPipeline,
  s: ClassImageSettings,
): Promise<RgbImage[]> {
  mkdirSync(s.folder, { recursive: true });
  const recordPath = join(s.folder, 'drawn-with.json');
  const cached = existsSync(recordPath) && readFileSync(recordPath, 'utf8') === drawnWith(s);
  writeFileSync(recordPath, drawnWith(s));
  const { tokenizer, textEncoder, unet, vae } = pipeline;
  const sampler = new StableDiffusionPipeline({
    tokenizer,
    textEncoder,
    unet,
    vae,
    scheduler: schedulerFromConfig(readSchedulerConfig(join(s.baseModel, 'scheduler')), {
      className: 'DDIMScheduler',
    }),
  });
  const images: RgbImage[] = [];
  let drawn = 0;
  for (let k = 0; k < s.count; k++) {
    const path = imagePath(s.folder, k);
    if (!cached || !existsSync(path)) {
      const { images: out, latents } = await sampler.generate({
        prompt: classPrompt(s.classWord),
        seed: s.seed + k,
        height: s.resolution,
        width: s.resolution,
        steps: CLASS_IMAGE_STEPS,
        guidanceScale: CLASS_IMAGE_GUIDANCE,
      });
      latents.dispose();
      await writePng(path, out[0]!);
      drawn++;
    }
    images.push(squareCrop(await readImage(path), s.resolution));
  }
  s.log(
    `Class images: ${s.count} of "${classPrompt(s.classWord)}" in ${s.folder} (${drawn} drawn now)`,
  );
  return images;
}

/** The class images' latents and the class prompt's context, and the loss on them. */
export class PriorPreservation {
  private constructor(
    /** (N, C, h, w): x_0 of each class image. */
    readonly latents: Tensor,
    /** (1, L, D): the class prompt's text context. */
    readonly context: Tensor,
    readonly weight: number,
  ) {}

  /** Draws (or reuses) the class images and encodes them; null when the weight is 0. */
  static async prepare(
    pipeline: StableDiffusionPipeline,
    s: ClassImageSettings & { weight: number },
  ): Promise<PriorPreservation | null> {
    if (s.weight === 0) return null;
    const latents = encodeLatents(await classImages(pipeline, s), pipeline.vae);
    const { promptEmbeds } = pipeline.encodePrompt([classPrompt(s.classWord)], null);
    return new PriorPreservation(latents, promptEmbeds, s.weight);
  }

  /**
   * The denoising loss of `b` drawn class images (the draws documented at the top), with the
   * class prompt's context as encoded before training, or `context` (1, L, D) when the text
   * encoder trains.
   */
  loss(
    unet: UNet2DConditionModel,
    scheduler: DDPMScheduler,
    b: number,
    draw: Generator,
    context: Tensor = this.context,
  ): Tensor {
    const n = this.latents.shape[0]!;
    const T = scheduler.config.num_train_timesteps;
    const picks = randint(0, n, [b], { generator: draw }).toArray() as number[];
    const timesteps = randint(0, T, [b], { generator: draw }).toArray() as number[];
    const x0 = ops.cat(
      picks.map((k) => this.latents.slice(0, k, k + 1)),
      0,
    ); // (B, C, h, w)
    const noise = randn(x0.shape, { generator: draw, dtype: x0.dtype });
    const xt = scheduler.addNoise(x0, noise, timesteps);
    const contexts = context.expand(b, ...context.shape.slice(1)); // (B, L, D)
    const t = tensor(timesteps, [b], { dtype: 'int64', device: xt.device }); // (B,)
    const prediction = unet.forward(xt, t, contexts);
    return ldmLoss(prediction, scheduler.trainingTarget(x0, noise, timesteps));
  }

  dispose(): void {
    this.latents.dispose();
    this.context.dispose();
  }
}
