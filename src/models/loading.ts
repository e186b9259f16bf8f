// Loading models from the folders people already have: diffusers pipeline folders
// (model_index.json + one folder per component) and transformers model folders, with HF
// config.json files and safetensors weights under their usual names.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, basename } from 'node:path';
import { Tensor } from '../engine/tensor.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { Module, StateDictError } from '../nn/module.js';
import { disposeAll } from '../engine/scope.js';

/** Weight files tried in order ("variant" inserts e.g. ".fp16" before the extension). */
const WEIGHT_NAMES = ['diffusion_pytorch_model', 'model'];
const PICKLE_NAMES = ['diffusion_pytorch_model.bin', 'pytorch_model.bin', 'model.ckpt', 'model.pt'];

export class ModelLoadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelLoadError';
  }
}

/** Reads a JSON config file (config.json, scheduler_config.json, model_index.json ...). */
export function readJson(path: string): Record<string, unknown> {
  if (!existsSync(path)) throw new ModelLoadError(`Missing ${path}`);
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ModelLoadError(`${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ModelLoadError(`${path} does not hold a JSON object`);
  }
  return value as Record<string, unknown>;
}

/** The component's config: `config.json`, or `scheduler_config.json` / `preprocessor_config.json`. */
export function readConfig(folder: string, name = 'config.json'): Record<string, unknown> {
  if (!existsSync(folder)) throw new ModelLoadError(`Model folder ${folder} does not exist`);
  return readJson(join(folder, name));
}

/** The safetensors weight file of a component folder, honouring a variant such as "fp16". */
export function findWeightFile(folder: string, variant?: string): string {
  if (!existsSync(folder)) throw new ModelLoadError(`Model folder ${folder} does not exist`);
  const suffix = variant ? `.${variant}.safetensors` : '.safetensors';
  for (const name of WEIGHT_NAMES) {
    const path = join(folder, name + suffix);
    if (existsSync(path)) return path;
  }
  if (variant) {
    // Fall back to the default file: a folder without the variant still loads (in its dtype).
    for (const name of WEIGHT_NAMES) {
      const path = join(folder, `${name}.safetensors`);
      if (existsSync(path)) return path;
    }
  }
  const pickle = PICKLE_NAMES.find((n) => existsSync(join(folder, n)));
  if (pickle) {
    throw new ModelLoadError(
      `${join(folder, pickle)} is a PyTorch pickle; p3s reads only safetensors (pickles can run code). ` +
        'Convert it once with Python: `from safetensors.torch import save_file; import torch; ' +
        `save_file(torch.load("${pickle}", map_location="cpu"), "${pickle.replace(/\.(bin|ckpt|pt)$/, '.safetensors')}")\` ` +
        '(for a pipeline: `DiffusionPipeline.from_pretrained(folder).save_pretrained(folder, safe_serialization=True)`).',
    );
  }
  const files = readdirSync(folder).join(', ') || '(empty)';
  throw new ModelLoadError(
    `No weights in ${folder}: expected ${WEIGHT_NAMES.map((n) => n + suffix).join(' or ')}; found ${files}`,
  );
}

/** A checkpoint key rename: keys matching `from` are rewritten to `to` (String.replace syntax). */
export type KeyRename = [from: RegExp, to: string];

export interface LoadWeightsOptions {
  variant?: string;
  renames?: KeyRename[];
  /** Keys in the file that the model does not have and should be skipped silently. */
  ignore?: RegExp[];
  strict?: boolean;
}

/**
 * Loads a component folder's safetensors into a module (converted to the module's dtype).
 * Errors name the file and every missing, unexpected or mis-shaped key.
 */
export function loadWeights(
  module: Module,
  folder: string,
  options: LoadWeightsOptions = {},
): string {
  const path = findWeightFile(folder, options.variant);
  const file = SafetensorsFile.open(path);
  const state = new Map<string, Tensor>();
  try {
    for (const key of file.keys()) {
      if (options.ignore?.some((re) => re.test(key))) continue;
      let name = key;
      for (const [from, to] of options.renames ?? []) name = name.replace(from, to);
      state.set(name, file.tensor(key));
    }
    try {
      module.loadStateDict(state, { strict: options.strict ?? true });
    } catch (err) {
      if (err instanceof StateDictError) {
        throw new ModelLoadError(
          `${basename(path)} in ${folder} does not fit ${module.constructor.name}: ${err.message.replace(/^Error loading state dict into \w+: /, '')}`,
        );
      }
      throw err;
    }
  } finally {
    disposeAll([...state.values()]);
  }
  return path;
}

/** model_index.json of a diffusers pipeline folder: component name -> [library, class]. */
export function readModelIndex(folder: string): Record<string, [string, string]> {
  const index = readJson(join(folder, 'model_index.json'));
  const out: Record<string, [string, string]> = {};
  for (const [key, value] of Object.entries(index)) {
    if (key.startsWith('_')) continue;
    if (Array.isArray(value) && value.length === 2 && typeof value[1] === 'string')
      out[key] = value as [string, string];
  }
  return out;
}

/** Reads a config value and checks it against allowed values, naming the key on failure. */
export function configValue<T>(
  config: Record<string, unknown>,
  key: string,
  fallback: T,
  allowed?: readonly T[],
): T {
  const value = (key in config && config[key] !== null ? config[key] : fallback) as T;
  if (allowed && !allowed.includes(value)) {
    throw new ModelLoadError(
      `Unsupported value ${JSON.stringify(value)} for config key "${key}"; allowed: ${allowed.map((a) => JSON.stringify(a)).join(', ')}`,
    );
  }
  return value;
}
