// Does the U-Net keep an object's outline it is given, and can the text bend it? Held-out
// single-object scenes are encoded, noised to a timestep and denoised from there (SDEdit, Meng et
// al. 2022) under their own caption — is the shape still read? — and under the caption with
// another shape — is the prompted shape drawn? Text-to-image says only that the shape is missing;
// this says at which noise level the U-Net loses it (docs/toy.md).
import { noGrad } from '../../src/engine/autograd.js';
import { randn } from '../../src/engine/creation.js';
import * as ops from '../../src/engine/ops.generated.js';
import { Generator } from '../../src/engine/random.js';
import { disposeAll } from '../../src/engine/scope.js';
import type { Tensor } from '../../src/engine/tensor.js';
import {
  denoise,
  type SamplingScheduler,
  type StableDiffusionPipeline,
} from '../../src/pipelines/stable_diffusion.js';
import { alteredCaption } from '../../src/toyworld/altered_captions.js';
import { SHAPES, type Shape } from '../../src/toyworld/attributes.js';
import type { Scene } from '../../src/toyworld/scene.js';
import { scenes, scenesToTensor } from './data.js';
import { probeImages, sceneLabels, type AttributeProbe } from './probe.js';
import { attributeAccuracy, CAPTION_START, type AttributeAccuracy } from './quality.js';

/** The scheduler's inference timesteps at or below `from` only: denoising starts part-way. */
function startingAt(scheduler: SamplingScheduler, from: number): SamplingScheduler {
  let timesteps: readonly number[] = [];
  return {
    get initNoiseSigma() {
      return scheduler.initNoiseSigma;
    },
    get timesteps() {
      return timesteps;
    },
    setTimesteps(n) {
      scheduler.setTimesteps(n);
      timesteps = scheduler.timesteps.filter((t) => t <= from);
    },
    scaleModelInput: (sample, t) => scheduler.scaleModelInput(sample, t),
    step: (output, t, sample, options) => scheduler.step(output, t, sample, options),
    reset: () => scheduler.reset?.(),
  };
}

export interface OutlineOptions {
  /** Held-out single-object scenes (default 64), from the tuning captions' range. */
  count?: number;
  steps?: number;
  guidanceScale?: number;
  seed?: number;
}

export interface OutlineRetention {
  /** The first inference timestep run (the largest at or below the one asked for). */
  timestep: number;
  /** The probe under the scene's own caption: shape kept, and the rest. */
  own: AttributeAccuracy;
  /** Under the caption with another shape: how often that shape is drawn. */
  swapped: AttributeAccuracy;
}

const isShape = (w: string): boolean => (SHAPES as readonly string[]).includes(w);

/** The caption with another shape, and the labels that caption asks for. */
function shapeSwapped(scene: Scene) {
  const caption = alteredCaption(scene, 1); // variant 1 changes the shape
  const shape = scene.objects[0]!.shape;
  const asked = caption.split(' ').find((w): w is Shape => w !== shape && isShape(w));
  return { caption, labels: { ...sceneLabels(scene), shape: asked ?? shape } };
}

/** Each scene's latent noised to `timestep` (one fixed draw) and denoised under `captions`. */
async function denoiseFrom(
  pipeline: StableDiffusionPipeline,
  x0: Tensor,
  captions: string[],
  timestep: number,
  o: Required<OutlineOptions>,
) {
  const scheduler = startingAt(pipeline.scheduler, timestep);
  scheduler.setTimesteps(o.steps);
  const first = scheduler.timesteps[0];
  if (first === undefined)
    throw new RangeError(
      `Expected a timestep of at least ${Math.min(...pipeline.scheduler.timesteps)} (the sampler's last of ${o.steps}) but received ${timestep}`,
    );
  const { promptEmbeds, negativePromptEmbeds } = pipeline.encodePrompt(captions);
  const context = ops.cat([negativePromptEmbeds!, promptEmbeds], 0);
  const noise = randn(x0.shape, { generator: new Generator(o.seed) });
  const noisy = noGrad(() => pipeline.scheduler.addNoise(x0, noise, first));
  try {
    const final = await denoise({
      scheduler,
      latents: noisy,
      steps: o.steps,
      guidanceScale: o.guidanceScale,
      predict: pipeline.unetPredictor(context),
    });
    try {
      return { first, images: pipeline.decodeToImages(final) };
    } finally {
      final.dispose();
    }
  } finally {
    disposeAll([promptEmbeds, negativePromptEmbeds!, context, noise, noisy]);
  }
}

/** Outline retention at each starting timestep (see the top of this file). */
export async function outlineRetention(
  pipeline: StableDiffusionPipeline,
  probe: AttributeProbe,
  timesteps: readonly number[],
  options: OutlineOptions = {},
): Promise<OutlineRetention[]> {
  const o = { count: 64, steps: 25, guidanceScale: 5, seed: 0, ...options };
  // the tuning captions' scenes, never the ones the model card reports
  const held = scenes('heldout', CAPTION_START.tuning, o.count, { objectCount: 1 });
  const own = held.map((s) => ({ caption: s.caption, labels: sceneLabels(s) }));
  const swapped = held.map(shapeSwapped);
  const scaling = pipeline.vae.config.scaling_factor;
  const x0 = noGrad(() => {
    const x = scenesToTensor(held);
    try {
      return pipeline.vae.encode(x).mean.mul(scaling);
    } finally {
      x.dispose();
    }
  });
  const read = async (t: number, set: typeof own) => {
    const { first, images } = await denoiseFrom(
      pipeline,
      x0,
      set.map((c) => c.caption),
      t,
      o,
    );
    const accuracy = attributeAccuracy(
      probeImages(probe, images),
      set.map((c) => c.labels),
    );
    return { first, accuracy };
  };
  try {
    const out: OutlineRetention[] = [];
    for (const t of timesteps) {
      const mine = await read(t, own);
      const other = await read(t, swapped);
      out.push({ timestep: mine.first, own: mine.accuracy, swapped: other.accuracy });
    }
    return out;
  } finally {
    x0.dispose();
  }
}
