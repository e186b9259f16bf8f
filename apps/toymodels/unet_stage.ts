// Stage 4 of the toy models: the text-conditioned U-Net, trained as Stable Diffusion's was
// (Rombach et al. 2022) on the frozen VAE's latents and the text tower's last hidden state (the
// tower frozen, or learning along): ε-prediction MSE at t ~ U{0..999} under SD 1.5's
// scaled-linear schedule, with 10 % of captions dropped to "" so classifier-free guidance has an
// unconditional branch to subtract.
import { rand, randint, randn, tensor } from '../../src/engine/creation.js';
import { noGrad } from '../../src/engine/autograd.js';
import { Generator, manualSeed } from '../../src/engine/random.js';
import { mseLoss } from '../../src/nn/functional.js';
import { minSnrWeights } from '../../src/training/loss_weighting.js';
import { Module } from '../../src/nn/module.js';
import type { CLIPTextModelWithProjection } from '../../src/models/clip/clip_text_model.js';
import { UNet2DConditionModel } from '../../src/models/unet/unet_2d_condition.js';
import type { AutoencoderKL } from '../../src/models/vae/autoencoder_kl.js';
import { AdamW } from '../../src/optim/adam.js';
import { DDPMScheduler } from '../../src/schedulers/scheduling_ddpm.js';
import type { CLIPTokenizer } from '../../src/tokenizers/clip_tokenizer.js';
import { TOY_NOISE_SCHEDULES, TOY_UNET_CONFIG, type ToyNoiseSchedule } from './configs.js';
import {
  DEFAULT_SCENE_MIX,
  scenesToTensor,
  skewedScenes,
  tokenIds,
  trainingCaption,
  type SceneMix,
  type UnsaidAttributes,
} from './data.js';
import { trainStage, type StageResult, type StageSettings } from './stage.js';

export interface UNetStageOptions extends StageSettings, SceneMix, UnsaidAttributes {
  /** Share of captions replaced by "" (condition dropout). */
  captionDropout: number;
  /**
   * The text encoder learns with the U-Net (the denoising loss's gradients flow into it, as
   * from-scratch text-to-image models train theirs), starting from the CLIP stage's tower.
   */
  trainTextEncoder: boolean;
  /** The trained text encoder's learning rate as a fraction of the U-Net's. */
  textEncoderLrScale: number;
  /** γ of the min-SNR-γ loss weighting; 0: every timestep weighs the same. */
  minSnrGamma: number;
  /** The noise schedule and prediction type (configs.ts), written to the model's scheduler/. */
  noiseSchedule: ToyNoiseSchedule;
}

/**
 * The shipped U-Net's recipe (version 3, U-Net A in docs/toy.md): the text encoder learns along at
 * the U-Net's rate, on scenes with objects at fixed places (10 % with two), and a fifth of the
 * objects' colours go unsaid so that a prompt naming only the class has a drawing of its own.
 */
export const UNET_STAGE_DEFAULTS = {
  steps: 3600,
  batchSize: 32,
  lr: 1e-3,
  captionDropout: 0.1,
  colourDropout: 0.2,
  patternDropout: 0,
  trainTextEncoder: true,
  textEncoderLrScale: 1,
  minSnrGamma: 0,
  noiseSchedule: 'sd15' as ToyNoiseSchedule,
  layout: 'slots' as SceneMix['layout'],
  twoObjectShare: 0.1,
};

/** The U-Net and, when it learns with it, the text encoder: one checkpoint for both. */
export class ToyTextToImage extends Module {
  constructor(
    readonly unet: UNet2DConditionModel,
    readonly textEncoder: CLIPTextModelWithProjection,
  ) {
    super();
    this.registerModule('unet', unet);
    this.registerModule('text_encoder', textEncoder);
  }
}
const UNET_FIRST_SCENE = 30_000_000;

export interface UNetStageInputs {
  vae: AutoencoderKL;
  /** Frozen, or trained along (options.trainTextEncoder): then the run's copy is updated. */
  textEncoder: CLIPTextModelWithProjection;
  tokenizer: CLIPTokenizer;
  /** The U-Net's config (default TOY_UNET_CONFIG): other sizes are experiments. */
  config?: Readonly<Record<string, unknown>>;
  /** A U-Net folder to start from instead of a fresh U-Net (fine-tuning experiments). */
  initFrom?: string;
}

export async function trainToyUNet(
  options: UNetStageOptions,
  inputs: UNetStageInputs,
): Promise<{ unet: UNet2DConditionModel; result: StageResult }> {
  const { vae, textEncoder, tokenizer } = inputs;
  vae.eval().freeze();
  if (options.trainTextEncoder) textEncoder.train();
  else textEncoder.eval().freeze();
  manualSeed(options.seed);
  const config = inputs.config ?? TOY_UNET_CONFIG;
  const unet = inputs.initFrom
    ? UNet2DConditionModel.fromPretrained(inputs.initFrom, { dtype: 'float32' })
    : new UNet2DConditionModel(config);
  // The text encoder's parameters follow the U-Net's, so a frozen run's optimizer is unchanged.
  const trained = new ToyTextToImage(unet, textEncoder);
  const params = options.trainTextEncoder ? trained.parameters() : unet.parameters();
  // A pretrained tower fine-tuned at the from-scratch U-Net's rate forgets what CLIP taught it.
  const lrScales = new Map(textEncoder.parameters().map((p) => [p, options.textEncoderLrScale]));
  const optimizer = new AdamW(params, { lr: options.lr, weightDecay: 0.01, lrScales });
  const generator = new Generator(options.seed);
  const scheduler = DDPMScheduler.fromConfig(TOY_NOISE_SCHEDULES[options.noiseSchedule]);
  const T = scheduler.config.num_train_timesteps;
  const scaling = vae.config.scaling_factor;
  const b = options.batchSize;
  const { result } = await trainStage({
    name: 'unet',
    settings: options,
    identity: {
      config,
      scaling,
      ...(inputs.initFrom ? { initFrom: inputs.initFrom } : {}),
      ...(options.trainTextEncoder
        ? { trainTextEncoder: true, textEncoderLrScale: options.textEncoderLrScale }
        : {}),
    },
    // checkpoints from before min-SNR weighting existed ran unweighted
    olderDefaults: {
      minSnrGamma: 0,
      noiseSchedule: 'sd15',
      colourDropout: 0,
      patternDropout: 0,
      ...DEFAULT_SCENE_MIX,
    },
    warmup: 200,
    model: options.trainTextEncoder ? trained : unet,
    optimizer,
    generator,
    loss(step) {
      const batch = skewedScenes('train', UNET_FIRST_SCENE + step * b, b, options);
      // Draw order: posterior sample, dropout, timesteps, noise.
      const x0 = noGrad(() => vae.encode(scenesToTensor(batch)).sample(generator).mul(scaling));
      const drop = rand([b], { generator }).toArray() as number[];
      const captions = batch.map((s, i) =>
        drop[i]! < options.captionDropout
          ? ''
          : trainingCaption(s, UNET_FIRST_SCENE + step * b + i, options),
      );
      const encode = () => textEncoder.forward(tokenIds(tokenizer, captions)).lastHiddenState;
      const context = options.trainTextEncoder ? encode() : noGrad(encode);
      const t = randint(0, T, [b], { generator });
      const noise = randn(x0.shape, { generator });
      const noisy = scheduler.addNoise(x0, noise, t);
      const predicted = unet.forward(noisy, t, context);
      const target = scheduler.trainingTarget(x0, noise, t); // ε, v or x_0
      if (options.minSnrGamma === 0) return mseLoss(predicted, target);
      const timesteps = t.toArray() as number[];
      const weights = minSnrWeights(scheduler.alphasCumprod, timesteps, options.minSnrGamma);
      return mseLoss(predicted, target, 'none').mean([1, 2, 3]).mul(tensor(weights)).mean();
    },
  });
  return { unet: unet.eval(), result };
}
