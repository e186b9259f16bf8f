// What a baseline run wrote, recognised by its content (not its name) and put onto a base
// model for generation:
//   a folder with config.json and diffusion_pytorch_model.safetensors   DreamBooth's U-Net
//     (and a text_encoder folder beside it, when it exists: its trained text encoder)
//   a safetensors file of one tensor (1, D) or (D)                        Textual Inversion
//   a safetensors file of ...attn2.processor.to_{k,v}_custom_diffusion.weight  Custom Diffusion
//     (its token from the learned_embeds file beside it, as its metadata names)
// Files from diffusers' own scripts are recognised the same way.
import { existsSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { disposeAll } from '../engine/scope.js';
import { firstNonFinite } from '../engine/finite.js';
import type { Tensor } from '../engine/tensor.js';
import { loadSafetensors, SafetensorsFile } from '../io/safetensors.js';
import { ADAPTER_FORMAT } from '../p3s/adapter/adapter_io.js';
import { DEFAULT_IDENTIFIER } from '../p3s/prompts.js';
import type { StableDiffusionPipeline } from '../pipelines/stable_diffusion.js';
import { AddedToken, LEARNED_EMBEDS } from './added_token.js';
import { DREAMBOOTH_WEIGHTS, TEXT_ENCODER_WEIGHTS, textEncoderFolder } from './dreambooth.js';
import { UNet2DConditionModel } from '../models/unet/unet_2d_condition.js';
import type { Module } from '../nn/module.js';

export type BaselineArtifact =
  | {
      method: 'dreambooth';
      path: string;
      weights: string;
      /** The trained text encoder's weights beside the U-Net, or null. */
      textEncoderWeights: string | null;
      metadata: Record<string, string>;
    }
  | { method: 'textual-inversion'; path: string; metadata: Record<string, string> }
  | {
      method: 'custom-diffusion';
      path: string;
      tokenFile: string;
      metadata: Record<string, string>;
    };

export class ArtifactError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ArtifactError';
  }
}

const CUSTOM_DIFFUSION_KEY = /^(.*\.attn2)\.processor\.to_([kv])_custom_diffusion\.weight$/;

/** The artifact at `path`, or null for a P3S adapter; a clear error for anything else. */
export function baselineArtifact(path: string): BaselineArtifact | null {
  if (!existsSync(path)) throw new ArtifactError(`Adapter file not found: ${path}`);
  if (statSync(path).isDirectory()) return dreamBoothFolder(path);
  let file: SafetensorsFile;
  try {
    file = SafetensorsFile.open(path);
  } catch (err) {
    throw new ArtifactError(
      `${path} is not a safetensors file (${(err as Error).message}); ${KINDS}`,
    );
  }
  const metadata = { ...file.metadata };
  if (metadata.format === ADAPTER_FORMAT) return null;
  const keys = file.keys();
  if (keys.length > 0 && keys.every((k) => CUSTOM_DIFFUSION_KEY.test(k))) {
    // beside the weights whatever the metadata says: a file names no other folder
    const tokenFile = join(dirname(path), basename(metadata.token_file ?? LEARNED_EMBEDS));
    return { method: 'custom-diffusion', path, tokenFile, metadata };
  }
  if (keys.length === 1) {
    const shape = file.info(keys[0]!).shape;
    if (shape.length === 1 || (shape.length === 2 && shape[0] === 1))
      return { method: 'textual-inversion', path, metadata };
  }
  throw new ArtifactError(
    `${path} holds ${keys.length} tensors (${keys.slice(0, 3).join(', ')}${keys.length > 3 ? ', ...' : ''}) and no p3s adapter metadata; ${KINDS}`,
  );
}

const KINDS =
  'expected a p3s adapter, a Textual Inversion learned_embeds file, a DreamBooth unet folder (config.json and diffusion_pytorch_model.safetensors) or Custom Diffusion weights (pytorch_custom_diffusion_weights.safetensors)';

function dreamBoothFolder(path: string): BaselineArtifact {
  const weights = join(path, DREAMBOOTH_WEIGHTS);
  if (!existsSync(join(path, 'config.json')) || !existsSync(weights))
    throw new ArtifactError(
      `${path} is a folder without config.json and ${DREAMBOOTH_WEIGHTS}; ${KINDS}`,
    );
  const te = join(textEncoderFolder(path), TEXT_ENCODER_WEIGHTS);
  return {
    method: 'dreambooth',
    path,
    weights,
    textEncoderWeights: existsSync(te) ? te : null,
    metadata: { ...SafetensorsFile.open(weights).metadata },
  };
}

/**
 * Puts the artifact onto the pipeline's models: DreamBooth's weights into its U-Net, a token
 * into tokenizer and text encoder, Custom Diffusion's K/V projections and token. Returns what
 * undoes the token (the U-Net's weights are the pipeline's own).
 */
export function applyArtifact(pipeline: StableDiffusionPipeline, a: BaselineArtifact): () => void {
  if (a.method === 'dreambooth') {
    loadInto(pipeline.unet, a.weights, { strict: true }); // the whole U-Net
    if (a.textEncoderWeights)
      loadInto(pipeline.textEncoder, a.textEncoderWeights, { strict: true });
    return () => {};
  }
  if (a.method === 'custom-diffusion') {
    if (!existsSync(a.tokenFile))
      throw new ArtifactError(
        `Custom Diffusion weights ${a.path} need their token file ${a.tokenFile}`,
      );
    // the processor's copies of to_k and to_v replace the U-Net's own
    loadInto(pipeline.unet, a.path, {
      strict: false,
      rename: (key) => key.replace(CUSTOM_DIFFUSION_KEY, '$1.to_$2.weight'),
    });
  }
  const tokenPath = a.method === 'custom-diffusion' ? a.tokenFile : a.path;
  const token = AddedToken.load(tokenPath);
  try {
    refuseNonFinite(tokenPath, [[token.token, token.embedding]]);
  } catch (err) {
    token.dispose();
    throw err;
  }
  const remove = token.install(pipeline);
  return () => {
    remove();
    token.dispose();
  };
}

/** A file with NaN or infinite weights (a diverged run) makes no image: refused by name. */
function refuseNonFinite(path: string, tensors: Iterable<readonly [string, Tensor]>): void {
  const bad = firstNonFinite(tensors);
  if (bad !== null)
    throw new ArtifactError(
      `${bad} in ${path} holds NaN or infinite values: it comes from a training run that diverged; train it again with a lower --lr`,
    );
}

/**
 * Loads a file's tensors (renamed) into a model of the pipeline: every key must be one of its
 * own, with its shape; strict: and every one of its own must be there.
 */
function loadInto(
  model: Module,
  path: string,
  options: { strict: boolean; rename?: (key: string) => string },
): void {
  const { rename = (k: string) => k } = options;
  const state = new Map([...loadSafetensors(path)].map(([k, t]) => [rename(k), t]));
  const what = model instanceof UNet2DConditionModel ? 'U-Net' : 'text encoder';
  try {
    refuseNonFinite(path, state);
    const { unexpected } = model.loadStateDict(state, { strict: options.strict });
    if (unexpected.length > 0)
      throw new ArtifactError(
        `${path} does not fit this base model's ${what}: unexpected keys ${unexpected.slice(0, 3).join(', ')}`,
      );
  } catch (err) {
    if (err instanceof ArtifactError) throw err;
    throw new ArtifactError(
      `${path} does not fit this base model's ${what}: ${(err as Error).message}`,
    );
  } finally {
    disposeAll([...state.values()]);
  }
}

/** The word prompts' {} names the subject with, and its class (from p3s's metadata). */
export function artifactSubject(a: BaselineArtifact): { token: string; classWord: string } {
  const fromFile =
    a.method === 'textual-inversion' ? SafetensorsFile.open(a.path).keys()[0]! : undefined;
  return {
    token: a.metadata.token ?? fromFile ?? DEFAULT_IDENTIFIER,
    classWord: a.metadata.class_word ?? '',
  };
}
