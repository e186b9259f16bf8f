// `p3s generate --adapter <a baseline's output>`: the base model with the artifact put on it
// (artifact.ts), text-to-image with DDIM and guidance, the same prompts ({} → the method's
// token and the class word, prompts.ts), seeds, file names and contact sheet as P3S's
// generation. Image k of a prompt starts from the noise of seed k, as P3S's does, so the
// methods' images compare seed for seed.
import { basename, join, resolve } from 'node:path';
import { firstNonFinite } from '../engine/finite.js';
import type { RgbImage } from '../io/image.js';
import {
  generateP3S,
  holdInHalfPrecision,
  samplingParameters,
  type GenerateRunOptions,
} from '../p3s/generate.js';
import { samplingFailure } from '../p3s/generate_guards.js';
import {
  checkOutputSize,
  imageFileName,
  seedNoise,
  writeContactSheet,
  writeImage,
} from '../p3s/generate_output.js';
import { resolvePrompts } from '../p3s/generate_plan.js';
import {
  GENERATE_SETTINGS,
  type GenerateP3SConfig,
  type GenerateSettings,
} from '../p3s/generate_settings.js';
import { NonFiniteError, StableDiffusionPipeline } from '../pipelines/stable_diffusion.js';
import { resolveSettings } from '../settings/table.js';
import { checkWritable } from '../training/run_folder.js';
import { applyArtifact, ArtifactError, artifactSubject, baselineArtifact } from './artifact.js';

export interface GenerateBaselineResult {
  /** Each image with the PNG text chunks written with it. */
  images: {
    path: string;
    prompt: string;
    seed: number;
    image: RgbImage;
    parameters: Record<string, string>;
  }[];
  contactSheetPath: string | null;
  warnings: string[];
  method: string;
}

/** The PNG text chunks every image of this generation carries. */
function sharedParameters(
  s: GenerateSettings,
  method: string,
  size: readonly number[],
  subject: { token: string; classWord: string },
) {
  return {
    ...samplingParameters(s),
    // what `p3s eval` reads to score CLIP-T against the prompt with the class word
    identifier: subject.token,
    class_word: subject.classWord,
    height: String(size[0]),
    width: String(size[1]),
    base_model: basename(resolve(s.baseModel)),
    adapter: basename(s.adapter),
    method,
  };
}

/** One generation under way: the model with the artifact on it and the images written. */
interface Run {
  s: GenerateSettings;
  pipeline: StableDiffusionPipeline;
  seeds: number[];
  /** (height, width) in pixels. */
  size: [number, number];
  shared: Record<string, string>;
  images: GeneratedImage[];
}

type GeneratedImage = GenerateBaselineResult['images'][number];

/** --size, --height and --width, else the U-Net's sample_size × the VAE's factor. */
function outputSize(s: GenerateSettings, pipeline: StableDiffusionPipeline): [number, number] {
  const sample = pipeline.unet.config.sample_size;
  const side =
    s.size ?? (Array.isArray(sample) ? sample[0]! : (sample ?? 64)) * pipeline.vaeScaleFactor;
  const [height, width] = [s.height ?? side, s.width ?? side];
  checkOutputSize(height, width, pipeline.vaeScaleFactor);
  return [height, width];
}

/** Why a batch sampled to NaN or infinity: the first weights that hold such values, else the settings. */
function nonFiniteCause(run: Run): string {
  const { s, pipeline } = run;
  const parts = [
    [`the base model's U-Net with ${s.adapter} applied`, pipeline.unet],
    [`${join(s.baseModel, 'text_encoder')} (with any learned token)`, pipeline.textEncoder],
    [join(s.baseModel, 'vae'), pipeline.vae],
  ] as const;
  for (const [where, module] of parts) {
    const bad = firstNonFinite(module.stateDict());
    if (bad !== null) return `${bad} in ${where} holds NaN or infinite values`;
  }
  return `every weight is finite, so the settings overflow (guidance ${s.guidanceScale}): try the default`;
}

/** Every image of prompt p, batch by batch, written as PNGs with their parameters. */
async function generatePrompt(run: Run, p: number, prompt: string): Promise<void> {
  const { s, pipeline, size } = run;
  const f = pipeline.vaeScaleFactor;
  const per = s.batchSize ?? run.seeds.length;
  for (let start = 0; start < run.seeds.length; start += per) {
    const batch = run.seeds.slice(start, start + per);
    const noise = seedNoise(batch, [pipeline.unet.config.in_channels, size[0] / f, size[1] / f]);
    const out = await pipeline
      .generate({
        prompt,
        negativePrompt: s.negativePrompt,
        numImages: batch.length,
        latents: noise,
        steps: s.steps,
        guidanceScale: s.guidanceScale,
        eta: s.eta,
        height: size[0],
        width: size[1],
      })
      .catch((err: unknown) => {
        throw err instanceof NonFiniteError
          ? samplingFailure(prompt, batch, err, nonFiniteCause(run))
          : err;
      })
      .finally(() => noise.dispose());
    out.latents.dispose();
    for (const [j, image] of out.images.entries()) {
      const seed = batch[j]!;
      const path = join(s.outDir, imageFileName(p, prompt, seed));
      const parameters = { prompt, seed: String(seed), ...run.shared };
      await writeImage(path, image, parameters);
      run.images.push({ path, prompt, seed, image, parameters });
    }
  }
}

/** contact-sheet.png: every image, a row per prompt. */
function writeSheet(run: Run, prompts: readonly string[]): Promise<string> {
  const text = { prompts: prompts.join('\n'), seeds: run.seeds.join(','), ...run.shared };
  const images = run.images.map((i) => i.image);
  return writeContactSheet(run.s.outDir, images, run.seeds.length, text);
}

/** The settings that steer P3S's injection, which a baseline's generation has no use for. */
const P3S_ONLY = [
  'latentBias',
  'subjectGuidance',
  'subjectGuidanceScale',
  'reference',
  'clipModel',
  'lambda',
  'weightCurve',
  'injectionMode',
] as const;

/** A warning for each P3S-only setting given (it changes nothing here). */
function p3sOnlyWarnings(config: GenerateP3SConfig, method: string): string[] {
  return P3S_ONLY.filter((key) => config[key] !== undefined).map(
    (key) => `${key} steers P3S's injection; it does nothing with a ${method} artifact`,
  );
}

/** Generates every prompt × seed with a baseline's artifact; writes PNGs and a contact sheet. */
export async function generateBaseline(
  config: GenerateP3SConfig,
  options: GenerateRunOptions = {},
): Promise<GenerateBaselineResult> {
  const s = resolveSettings(GENERATE_SETTINGS, config);
  const artifact = baselineArtifact(s.adapter);
  if (artifact === null)
    throw new ArtifactError(`${s.adapter} is a P3S adapter: generate with generateP3S`);
  const subject = artifactSubject(artifact);
  const resolved = resolvePrompts(s, subject.token, subject.classWord);
  const { prompts } = resolved;
  const warnings = [...p3sOnlyWarnings(config, artifact.method), ...resolved.warnings];
  for (const w of warnings) options.onWarning?.(w);
  const seeds = s.seeds ?? Array.from({ length: s.numImages }, (_, k) => s.seed + k);
  checkWritable(s.outDir);
  const pipeline = StableDiffusionPipeline.fromPretrained(s.baseModel, { scheduler: 'ddim' });
  let remove = (): void => {};
  try {
    remove = applyArtifact(pipeline, artifact);
    if (s.precision === 'half') {
      pipeline.unet.freeze();
      holdInHalfPrecision(pipeline);
    }
    const size = outputSize(s, pipeline);
    const shared = sharedParameters(s, artifact.method, size, subject);
    const run: Run = { s, pipeline, seeds, size, shared, images: [] };
    for (const [p, prompt] of prompts.entries()) await generatePrompt(run, p, prompt);
    const contactSheetPath = s.contactSheet ? await writeSheet(run, prompts) : null;
    return { images: run.images, contactSheetPath, warnings, method: artifact.method };
  } finally {
    remove();
    pipeline.dispose();
  }
}

/**
 * Generation with whatever `config.adapter` is: a P3S adapter (generateP3S) or a baseline's
 * artifact (generateBaseline), told apart by content. Both report their images the same way.
 */
export function generateWithAdapter(
  config: GenerateP3SConfig,
  options: GenerateRunOptions = {},
): Promise<Pick<GenerateBaselineResult, 'images' | 'contactSheetPath'>> {
  return baselineArtifact(config.adapter) === null
    ? generateP3S(config, options)
    : generateBaseline(config, options);
}
