// Stage 1 of the toy models: the VAE, trained from scratch on toy-world scenes. Loss: L1
// reconstruction of a posterior sample plus a small KL term towards N(0, I) (the LDM recipe
// without its perceptual and adversarial terms, which flat-coloured 64-px scenes do not need).
import { noGrad } from '../../src/engine/autograd.js';
import { Generator, manualSeed } from '../../src/engine/random.js';
import { tensor } from '../../src/engine/creation.js';
import { tidy } from '../../src/engine/scope.js';
import type { Tensor } from '../../src/engine/tensor.js';
import { AutoencoderKL } from '../../src/models/vae/autoencoder_kl.js';
import { AdamW } from '../../src/optim/adam.js';
import type { Scene } from '../../src/toyworld/scene.js';
import { TOY_VAE_CONFIG } from './configs.js';
import { scenes, scenesToTensor } from './data.js';
import { trainStage, type StageResult, type StageSettings } from './stage.js';

export interface VaeStageOptions extends StageSettings {
  klWeight: number;
}

export const VAE_STAGE_DEFAULTS = { steps: 800, batchSize: 16, lr: 1e-3, klWeight: 1e-4 };

/** What both VAE stages train with: the stage's settings and the VAE's config name the run. */
async function runVaeStage(
  name: string,
  settings: StageSettings,
  vae: AutoencoderKL,
  optimizer: AdamW,
  loss: (step: number, generator: Generator) => Tensor,
  olderDefaults?: Record<string, unknown>,
): Promise<{ vae: AutoencoderKL; result: StageResult }> {
  const generator = new Generator(settings.seed);
  const { model, result } = await trainStage({
    name,
    settings,
    identity: { config: TOY_VAE_CONFIG },
    olderDefaults,
    warmup: 50,
    model: vae,
    optimizer,
    generator,
    loss: (step) => loss(step, generator),
  });
  return { vae: model, result };
}

/** Trains the VAE; returns the model (caller disposes) and the stage's numbers. */
export async function trainToyVae(
  options: VaeStageOptions,
): Promise<{ vae: AutoencoderKL; result: StageResult }> {
  manualSeed(options.seed);
  const vae = new AutoencoderKL(TOY_VAE_CONFIG);
  const optimizer = new AdamW(vae.parameters(), { lr: options.lr, weightDecay: 0 });
  const { batchSize: b, klWeight } = options;
  return runVaeStage('vae', options, vae, optimizer, (step, generator) => {
    const x = scenesToTensor(scenes('train', step * b, b));
    const posterior = vae.encode(x);
    const recon = vae.decode(posterior.sample(generator));
    const rec = recon.sub(x).abs().mean();
    // KL(q ‖ N(0, I)) per latent element.
    const kl = posterior.mean
      .square()
      .add(posterior.var)
      .sub(1)
      .sub(posterior.logvar)
      .mean()
      .mul(0.5);
    return rec.add(kl.mul(klWeight));
  });
}

/**
 * 1 / std of the scaled-by-one latents over held-out scenes: the config's scaling_factor, so the
 * U-Net sees unit-variance latents as SD 1.5's 0.18215 gives it.
 */
export function latentScalingFactor(vae: AutoencoderKL, count = 256): number {
  return noGrad(() =>
    tidy(() => {
      const x = scenesToTensor(scenes('heldout', 0, count));
      const std = vae.encode(x).mean.flatten().var().sqrt().item();
      return 1 / std;
    }),
  );
}

export interface DecoderStageOptions extends StageSettings {
  /**
   * Extra weight of the error on object pixels (0: plain L1 over the image). It sharpens round
   * trips of real scenes, not generated images, whose latents the decoder never sees
   * (docs/toy.md has the measurements).
   */
  objectWeight: number;
}

export const DECODER_STAGE_DEFAULTS = { steps: 1500, batchSize: 16, lr: 5e-4, objectWeight: 0 };
const DECODER_FIRST_SCENE = 50_000_000;

/**
 * Stage 1b: more training for the decoder alone (the recipe of Stability's fine-tuned SD VAEs).
 * The encoder — and with it the latent space, the scaling factor and every model trained on the
 * latents — stays exactly as it is, so this stage can run after the U-Net and only sharpens what
 * the whole pipeline draws. Loss: L1 reconstruction of posterior samples, optionally weighted
 * towards the objects (they cover a small part of a scene, yet their colour and pattern are what
 * a subject is).
 */
export async function trainToyVaeDecoder(
  options: DecoderStageOptions,
  vae: AutoencoderKL,
): Promise<{ vae: AutoencoderKL; result: StageResult }> {
  manualSeed(options.seed);
  vae.encoder.freeze();
  vae.quantConv.freeze();
  const trainable = [...vae.decoder.parameters(), ...vae.postQuantConv.parameters()];
  const optimizer = new AdamW(trainable, { lr: options.lr, weightDecay: 0 });
  const b = options.batchSize;
  const { objectWeight } = options;
  const loss = (step: number, generator: Generator) => {
    const batch = scenes('train', DECODER_FIRST_SCENE + step * b, b);
    const x = scenesToTensor(batch);
    const z = noGrad(() => vae.encode(x).sample(generator));
    const decoded = vae.decode(z);
    // Weight 0 is the plain L1, computed without weights (the weighted form rounds differently).
    if (objectWeight === 0) return decoded.sub(x).abs().mean();
    return weightedL1(decoded, x, objectPixelWeights(batch, objectWeight));
  };
  // Checkpoints from before the option existed resume as weight 0, the loss they were trained with.
  return runVaeStage('decoder', options, vae, optimizer, loss, { objectWeight: 0 });
}

/** Σ w·|x̂ − x| / (C·Σ w) with per-pixel weights (B, 1, H, W): equal weights give the mean L1. */
export function weightedL1(reconstruction: Tensor, target: Tensor, weights: Tensor): Tensor {
  const channels = target.shape[1]!;
  return reconstruction.sub(target).abs().mul(weights).sum().div(weights.sum().mul(channels));
}

/** Per-pixel loss weights (B, 1, H, W): 1 on the background, 1 + objectWeight on any object. */
export function objectPixelWeights(batch: readonly Scene[], objectWeight: number): Tensor {
  const { size } = batch[0]!;
  const plane = size * size;
  const out = new Float32Array(batch.length * plane);
  batch.forEach((scene, b) => {
    for (let i = 0; i < plane; i++) out[b * plane + i] = scene.instances[i] ? 1 + objectWeight : 1;
  });
  return tensor(out, [batch.length, 1, size, size]);
}
