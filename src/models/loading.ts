// Loading models from the folders people already have: diffusers pipeline folders
// (model_index.json + one folder per component) and transformers model folders, with HF
// config.json files and safetensors weights under their usual names.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, basename } from 'node:path';
import type { DType } from '../engine/dtype.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { Module, StateDictError } from '../nn/module.js';
import { withParameterDefaults } from '../nn/init.js';

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
 * Loads a component folder's safetensors into a module (converted to the module's dtype), one
 * tensor at a time: each is read from the file, copied into its parameter and freed, so loading
 * needs memory for the model plus one tensor. Errors name the file and every missing,
 * unexpected or mis-shaped key.
 */
export function loadWeights(
  module: Module,
  folder: string,
  options: LoadWeightsOptions = {},
): string {
  const path = findWeightFile(folder, options.variant);
  const file = SafetensorsFile.open(path);
  const own = new Set(module.stateDict().keys());
  const loaded = new Set<string>();
  const unexpected: string[] = [];
  const mismatched: string[] = [];
  for (const key of file.keys()) {
    if (options.ignore?.some((re) => re.test(key))) continue;
    let name = key;
    for (const [from, to] of options.renames ?? []) name = name.replace(from, to);
    const value = file.tensor(key);
    try {
      // The module's own loadStateDict applies its checkpoint quirks (dropped buffers, reshapes).
      const r = module.loadStateDict(new Map([[name, value]]), { strict: false });
      if (r.unexpected.includes(name)) unexpected.push(name);
      else loaded.add(name);
    } catch (err) {
      if (!(err instanceof StateDictError)) throw err;
      mismatched.push(...err.mismatched);
      unexpected.push(...err.unexpected);
    } finally {
      value.dispose();
    }
  }
  const missing = [...own].filter((k) => !loaded.has(k));
  const strict = options.strict ?? true;
  if (mismatched.length > 0 || (strict && (missing.length > 0 || unexpected.length > 0))) {
    const parts: string[] = [];
    if (missing.length) parts.push(`missing keys: ${missing.join(', ')}`);
    if (unexpected.length) parts.push(`unexpected keys: ${unexpected.join(', ')}`);
    if (mismatched.length) parts.push(`mis-shaped keys: ${mismatched.join('; ')}`);
    throw new ModelLoadError(
      `${basename(path)} in ${folder} does not fit ${module.constructor.name}: ${parts.join(' | ')}`,
    );
  }
  return path;
}

export interface PretrainedOptions {
  variant?: string;
  dtype?: DType;
  device?: string;
}

/**
 * Builds a model whose weights all come from a checkpoint: parameters are created directly in
 * the requested dtype and not initialised, the weights are streamed in, and the model is freed
 * again if loading fails. Returns the model in eval mode on the requested device.
 */
export function loadPretrained<M extends Module>(
  build: () => M,
  folder: string,
  options: PretrainedOptions,
  weights: Omit<LoadWeightsOptions, 'variant'> = {},
): M {
  const model = withParameterDefaults({ dtype: options.dtype ?? 'float32', skipInit: true }, build);
  try {
    loadWeights(model, folder, { ...weights, variant: options.variant });
  } catch (err) {
    model.dispose();
    throw err;
  }
  model.eval();
  if (options.device !== undefined && options.device !== 'cpu') model.to(options.device);
  return model;
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
