// Loading models from the folders people already have: diffusers pipeline folders
// (model_index.json + one folder per component) and transformers model folders, with HF
// config.json files and safetensors weights under their usual names.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join, basename } from 'node:path';
import type { DType } from '../engine/dtype.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { Module, StateDictError, describeKeyMismatch } from '../nn/module.js';
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

/** A config value as the file writes it: JSON, except that 1e999 shows as Infinity, not null. */
function show(value: unknown): string {
  if (typeof value === 'number') return String(value);
  if (Array.isArray(value)) return `[${value.map(show).join(',')}]`;
  return JSON.stringify(value) ?? String(value);
}

/** Where a ConfigKeyError comes from, beyond the key and its value. */
export interface ConfigKeyContext {
  /** The file leaves the key out and the default does not fit the rest of it. */
  readonly missing?: boolean;
  /** The config file, once the loader knows it. */
  readonly file?: string;
  /** The key whose value decided what is allowed (down_block_types for block_out_channels). */
  readonly relatedTo?: string;
}

/**
 * A config.json value a model cannot be built from, named by key (and by file once the loader
 * knows it). A missing key is reported as missing, so the user is told what to add rather than
 * that they gave a default they never wrote.
 */
export class ConfigKeyError extends ModelLoadError {
  constructor(
    readonly key: string,
    readonly value: unknown,
    readonly allowed: string,
    readonly context: ConfigKeyContext = {},
  ) {
    const where = context.file ? ` in ${context.file}` : '';
    super(
      context.missing
        ? `Missing config key "${key}"${where}: expected ${allowed}`
        : `Unsupported value ${show(value)} for config key "${key}"${where}; allowed: ${allowed}`,
    );
    this.name = 'ConfigKeyError';
  }

  /** The same error naming the config file. */
  inFile(file: string): ConfigKeyError {
    return new ConfigKeyError(this.key, this.value, this.allowed, { ...this.context, file });
  }
}

/**
 * Runs the checks of a config whose absent keys were filled with defaults. When the refused key,
 * or the key that decided what it may be, is one the file (`raw`) leaves out, that key is
 * reported as missing.
 */
export function reportingMissing<T>(raw: Record<string, unknown>, check: () => T): T {
  try {
    return check();
  } catch (err) {
    if (!(err instanceof ConfigKeyError) || err.context.missing) throw err;
    const { key, value, allowed, context } = err;
    if (!(key in raw)) throw new ConfigKeyError(key, value, allowed, { ...context, missing: true });
    const related = context.relatedTo;
    if (related !== undefined && !(related in raw))
      throw new ConfigKeyError(related, undefined, `a value that fits "${key}" = ${show(value)}`, {
        ...context,
        missing: true,
      });
    throw err;
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
    const keys = describeKeyMismatch(missing, unexpected, mismatched);
    const wanted = module.constructor.name;
    // Not one tensor fits: the folder holds another kind of model (a U-Net given as CLIP).
    const declared = declaredClass(folder);
    if (loaded.size === 0 && mismatched.length === 0 && declared?.name !== wanted)
      throw new ModelLoadError(
        `${folder} does not hold ${wanted} weights: it looks like ${describeFolder(declared, path, file.keys())}, not a ${wanted}. ${keys}`,
      );
    throw new ModelLoadError(`${basename(path)} in ${folder} does not fit ${wanted}: ${keys}`);
  }
  return path;
}

/** What a folder's config.json says it holds: diffusers' _class_name, transformers' architectures. */
function declaredClass(folder: string): { name: string; field: string } | null {
  let config: Record<string, unknown>;
  try {
    config = readJson(join(folder, 'config.json'));
  } catch {
    return null; // no readable config: the weights alone describe the folder
  }
  const architectures = config.architectures;
  if (typeof config._class_name === 'string')
    return { name: config._class_name, field: '_class_name' };
  if (Array.isArray(architectures) && typeof architectures[0] === 'string')
    return { name: architectures[0], field: 'architectures' };
  if (typeof config.model_type === 'string') return { name: config.model_type, field: 'model_type' };
  return null;
}

/**
 * "a UNet2DConditionModel (config.json _class_name "UNet2DConditionModel";
 * diffusion_pytorch_model.safetensors: 686 tensors under conv_in, down_blocks, ...)".
 */
function describeFolder(
  declared: { name: string; field: string } | null,
  weights: string,
  keys: readonly string[],
): string {
  const tops = [...new Set(keys.map((k) => k.split('.')[0]!))];
  const shown = tops.slice(0, 5).join(', ') + (tops.length > 5 ? ', ...' : '');
  const tensors = `${basename(weights)}: ${keys.length} tensors under ${shown}`;
  return declared
    ? `a ${declared.name} (config.json ${declared.field} ${JSON.stringify(declared.name)}; ${tensors})`
    : `another model (${tensors})`;
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
  let model: M;
  try {
    model = withParameterDefaults({ dtype: options.dtype ?? 'float32', skipInit: true }, build);
  } catch (err) {
    // Building reads only the config: name its file.
    throw err instanceof ConfigKeyError ? err.inFile(join(folder, 'config.json')) : err;
  }
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
  if (allowed && !allowed.includes(value))
    throw new ConfigKeyError(key, value, allowed.map((a) => JSON.stringify(a)).join(', '));
  return value;
}
