// The baselines on P3S's trainer (`p3s train --method ...`): which module each method is, the
// token its prompts name the subject with, and building one for a run.
import { basename, join, resolve } from 'node:path';
import type { StableDiffusionPipeline } from '../pipelines/stable_diffusion.js';
import type { DDPMScheduler } from '../schedulers/scheduling_ddpm.js';
import type { TrainingMethodName } from '../p3s/train_settings.js';
import { AddedToken, addedTokenFor, LEARNED_EMBEDS } from './added_token.js';
import type { BaselineMethod } from './baseline_method.js';
import { CUSTOM_DIFFUSION_WEIGHTS, CustomDiffusionMethod } from './custom_diffusion.js';
import { DREAMBOOTH_WEIGHTS, DreamBoothMethod, TEXT_ENCODER_WEIGHTS } from './dreambooth.js';
import { PriorPreservation } from './prior.js';
import { TextualInversionMethod } from './textual_inversion.js';

export { AddedToken, LEARNED_EMBEDS, addedTokenFor } from './added_token.js';
export { BaselineMethod } from './baseline_method.js';
export { CUSTOM_DIFFUSION_WEIGHTS, CustomDiffusionMethod } from './custom_diffusion.js';
export { DREAMBOOTH_WEIGHTS, DreamBoothMethod, TEXT_ENCODER_WEIGHTS } from './dreambooth.js';
export { TextualInversionMethod } from './textual_inversion.js';
export {
  applyArtifact,
  ArtifactError,
  baselineArtifact,
  type BaselineArtifact,
} from './artifact.js';
export { generateBaseline, generateWithAdapter, type GenerateBaselineResult } from './generate.js';

/** The files the baselines write into a run's folder (what a new run there would replace). */
export const BASELINE_OUTPUTS = [
  LEARNED_EMBEDS,
  CUSTOM_DIFFUSION_WEIGHTS,
  join('unet', DREAMBOOTH_WEIGHTS),
  join('unet', 'config.json'),
  join('text_encoder', TEXT_ENCODER_WEIGHTS),
  join('text_encoder', 'config.json'),
];

/** What prompts call the subject: the identifier itself, or the token a method adds for it. */
export function subjectToken(method: TrainingMethodName, identifier: string): string {
  return method === 'textual-inversion' || method === 'custom-diffusion'
    ? addedTokenFor(identifier)
    : identifier;
}

export interface BaselineRun {
  method: Exclude<TrainingMethodName, 'p3s'>;
  pipeline: StableDiffusionPipeline;
  scheduler: DDPMScheduler;
  /** The training prompt, with the subject's token: "a <sks> toy". */
  prompt: string;
  identifier: string;
  classWord: string;
  resolution: number;
  settings: {
    baseModel: string;
    outDir: string;
    seed: number;
    backgroundLossWeight: number;
    classImages: number;
    priorLossWeight: number;
    /** DreamBooth only: the text encoder trains too. */
    trainTextEncoder: boolean;
  };
  /** Identifies the base model (adapter_io.ts's baseModelFingerprint). */
  baseFingerprint: string;
  log(message: string): void;
}

/** What each artifact's metadata records, so generation can check it fits the base model. */
function artifactMetadata(run: BaselineRun): Record<string, string> {
  return {
    p3s_method: run.method,
    base_model: basename(resolve(run.settings.baseModel)),
    base_fingerprint: run.baseFingerprint,
    identifier: run.identifier,
    token: subjectToken(run.method, run.identifier),
    class_word: run.classWord,
    prompt: run.prompt,
  };
}

/** Builds a baseline for a run: its class images first (a frozen model draws them). */
export async function createBaseline(run: BaselineRun): Promise<BaselineMethod> {
  const { pipeline, scheduler, settings: s } = run;
  const prior =
    run.method === 'textual-inversion'
      ? null
      : await PriorPreservation.prepare(pipeline, {
          classWord: run.classWord,
          count: s.classImages,
          resolution: run.resolution,
          seed: s.seed,
          baseModel: s.baseModel,
          folder: join(s.outDir, 'class-images'),
          log: run.log,
          weight: s.priorLossWeight,
        });
  const settings = { backgroundLossWeight: s.backgroundLossWeight, prior };
  const metadata = artifactMetadata(run);
  if (run.method === 'dreambooth') {
    const files = { baseModel: s.baseModel, metadata };
    const text = { prompt: run.prompt, classWord: run.classWord, train: s.trainTextEncoder };
    return new DreamBoothMethod(pipeline, scheduler, settings, files, text);
  }
  const token = AddedToken.fromClassWord(pipeline, addedTokenFor(run.identifier), run.classWord);
  const args = [pipeline, scheduler, settings, token, run.prompt, metadata] as const;
  return run.method === 'textual-inversion'
    ? new TextualInversionMethod(...args)
    : new CustomDiffusionMethod(...args);
}
