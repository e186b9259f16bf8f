// The adapter file: what P3S training produces and generation needs besides the base model.
//
// One safetensors file holding
//   - the trained weights, adapter.stateDict() under their own keys (subject_encoder.*, copy.*);
//   - the subject condition used at generation: `condition.latents` (N, C, h, w), the filled
//     references' VAE latents × scaling_factor (I' of Eq. 4), and `condition.clip_states`
//     (N, L, E), their CLIP vision last hidden states (c_s of Eq. 5);
//   - `__metadata__` (strings): the base model's folder name and fingerprint, identifier, class
//     word, prompt template, λ, weight curve, injection mode, training steps, p3s version, ...
// so that `p3s generate` needs only the base model folder and this file.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tensor } from '../../engine/tensor.js';
import { disposeAll, tidy } from '../../engine/scope.js';
import { noGrad } from '../../engine/autograd.js';
import { SafetensorsFile, saveSafetensors } from '../../io/safetensors.js';
import type { Module } from '../../nn/module.js';
import type { UNet2DConditionModel } from '../../models/unet/unet_2d_condition.js';
import { P3SAdapter, type P3SSettings, type SubjectCondition } from './p3s_unet.js';
import { parseWeightCurve } from './weight_schedule.js';
import { isInjectionMode, type InjectionMode } from './injection.js';

export const ADAPTER_FORMAT = 'p3s-adapter';
export const ADAPTER_FORMAT_VERSION = '1';
const LATENTS_KEY = 'condition.latents';
const CLIP_STATES_KEY = 'condition.clip_states';

export class AdapterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AdapterError';
  }
}

let cachedVersion: string | undefined;

/** p3s's version, from the package.json above this module ('unknown' when there is none). */
export function p3sVersion(): string {
  if (cachedVersion !== undefined) return cachedVersion;
  cachedVersion = 'unknown';
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const path = join(dir, 'package.json');
    if (existsSync(path)) {
      try {
        const pkg = JSON.parse(readFileSync(path, 'utf8')) as { name?: string; version?: string };
        if (pkg.name === 'p3s' && typeof pkg.version === 'string') cachedVersion = pkg.version;
      } catch {
        // an unreadable package.json leaves 'unknown'
      }
      break;
    }
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return cachedVersion;
}

function sortedJson(value: unknown): string {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (v !== null && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      return Object.fromEntries(
        Object.keys(o)
          .filter((k) => !k.startsWith('_'))
          .sort()
          .map((k) => [k, sort(o[k])]),
      );
    }
    return v;
  };
  return JSON.stringify(sort(value));
}

/**
 * A short fingerprint of a model: SHA-256 of its config (keys starting with "_", such as
 * _diffusers_version, left out) and of a few weight tensors — the first two and last two
 * state-dict keys in sorted order — rounded to float16 before hashing, so a model loaded from
 * its fp16 variant (rounded the same way) fingerprints like the float32 original. A fine-tuned
 * model changes these tensors and so gets another fingerprint; hashing every weight of SD 1.5
 * would take seconds for little gain. `include` leaves keys out: a tower loaded with a head the
 * fingerprinted model lacked (CLIP's visual_projection) fingerprints as that model.
 */
export function modelFingerprint(
  model: Module,
  config: unknown,
  include: (key: string) => boolean = () => true,
): string {
  const hash = createHash('sha256');
  hash.update(sortedJson(config));
  const state = model.stateDict();
  const keys = [...state.keys()].filter(include).sort();
  const chosen = [...new Set([...keys.slice(0, 2), ...keys.slice(-2)])];
  for (const key of chosen) {
    const t = state.get(key)!;
    hash.update(`${key}:${t.shape.join('x')}:`);
    const bytes = noGrad(() =>
      tidy(() => {
        const half = t.isFloatingPoint ? t.to('float16').contiguous() : t.contiguous();
        const a = half.toTypedArray();
        return Buffer.from(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
      }),
    );
    hash.update(bytes);
  }
  return hash.digest('hex').slice(0, 16);
}

/** The fingerprint of a base model's U-Net (what an adapter is bound to). */
export function baseModelFingerprint(unet: UNet2DConditionModel): string {
  return modelFingerprint(unet, unet.config);
}

/** What an adapter's __metadata__ records. */
export interface AdapterMetadata {
  format: string;
  formatVersion: string;
  p3sVersion: string;
  /** The base model folder's name (the last path component). */
  baseModel: string;
  baseFingerprint: string;
  clipModel: string;
  clipFingerprint: string;
  identifier: string;
  classWord: string;
  promptTemplate: string;
  lambda: number;
  weightCurve: string;
  injectionMode: InjectionMode;
  numTrainTimesteps: number;
  trainingSteps: number;
  resolution: number;
  /** File names of the references, in the order of condition.latents. */
  references: string[];
  /** Training settings worth knowing later (lr, γ, batch size, seed ...). */
  training: Record<string, unknown>;
}

export interface AdapterContents {
  metadata: AdapterMetadata;
  /** Trained weights by adapter.stateDict() key. */
  weights: Map<string, Tensor>;
  condition: SubjectCondition;
}

function toStringMetadata(m: AdapterMetadata): Record<string, string> {
  return {
    format: m.format,
    format_version: m.formatVersion,
    p3s_version: m.p3sVersion,
    base_model: m.baseModel,
    base_fingerprint: m.baseFingerprint,
    clip_model: m.clipModel,
    clip_fingerprint: m.clipFingerprint,
    identifier: m.identifier,
    class_word: m.classWord,
    prompt_template: m.promptTemplate,
    lambda: String(m.lambda),
    weight_curve: m.weightCurve,
    injection_mode: m.injectionMode,
    num_train_timesteps: String(m.numTrainTimesteps),
    training_steps: String(m.trainingSteps),
    resolution: String(m.resolution),
    references: JSON.stringify(m.references),
    training: JSON.stringify(m.training),
  };
}

function fromStringMetadata(path: string, raw: Readonly<Record<string, string>>): AdapterMetadata {
  const name = basename(path);
  if (raw.format !== ADAPTER_FORMAT) {
    throw new AdapterError(
      `${name} is not a p3s adapter (its __metadata__ has format ${JSON.stringify(raw.format ?? null)}, expected "${ADAPTER_FORMAT}")`,
    );
  }
  if (raw.format_version !== ADAPTER_FORMAT_VERSION) {
    throw new AdapterError(
      `${name} has adapter format version ${raw.format_version}; this p3s (${p3sVersion()}) reads version ${ADAPTER_FORMAT_VERSION}`,
    );
  }
  const need = (key: string): string => {
    const v = raw[key];
    if (v === undefined) throw new AdapterError(`${name}: __metadata__ lacks "${key}"`);
    return v;
  };
  const num = (key: string): number => {
    const v = Number(need(key));
    if (!Number.isFinite(v))
      throw new AdapterError(`${name}: __metadata__.${key} is not a number: ${raw[key]}`);
    return v;
  };
  const json = (key: string): unknown => {
    try {
      return JSON.parse(need(key));
    } catch {
      throw new AdapterError(`${name}: __metadata__.${key} is not valid JSON`);
    }
  };
  const mode = need('injection_mode');
  if (!isInjectionMode(mode)) {
    throw new AdapterError(`${name}: unknown injection_mode ${JSON.stringify(mode)}`);
  }
  const curve = need('weight_curve');
  parseWeightCurve(curve); // validates
  return {
    format: raw.format,
    formatVersion: raw.format_version,
    p3sVersion: need('p3s_version'),
    baseModel: need('base_model'),
    baseFingerprint: need('base_fingerprint'),
    clipModel: need('clip_model'),
    clipFingerprint: need('clip_fingerprint'),
    identifier: need('identifier'),
    classWord: need('class_word'),
    promptTemplate: need('prompt_template'),
    lambda: num('lambda'),
    weightCurve: curve,
    injectionMode: mode,
    numTrainTimesteps: num('num_train_timesteps'),
    trainingSteps: num('training_steps'),
    resolution: num('resolution'),
    references: json('references') as string[],
    training: json('training') as Record<string, unknown>,
  };
}

/** Writes an adapter file atomically (temporary file, fsync, rename). */
export function saveAdapter(
  path: string,
  adapter: P3SAdapter,
  condition: SubjectCondition,
  metadata: Omit<AdapterMetadata, 'format' | 'formatVersion' | 'p3sVersion'>,
): void {
  const tensors = new Map<string, Tensor>();
  const made: Tensor[] = [];
  for (const [key, t] of adapter.stateDict()) {
    if (key.startsWith('condition.')) throw new AdapterError(`Adapter key ${key} is reserved`);
    tensors.set(key, t);
  }
  const contiguous = (t: Tensor): Tensor => {
    const c = noGrad(() => t.detach().contiguous());
    made.push(c);
    return c;
  };
  tensors.set(LATENTS_KEY, contiguous(condition.latent));
  tensors.set(CLIP_STATES_KEY, contiguous(condition.clipStates));
  try {
    saveSafetensors(
      path,
      tensors,
      toStringMetadata({
        ...metadata,
        format: ADAPTER_FORMAT,
        formatVersion: ADAPTER_FORMAT_VERSION,
        p3sVersion: p3sVersion(),
      }),
    );
  } finally {
    disposeAll(made);
  }
}

/** Reads an adapter file's metadata only (no tensors). */
export function readAdapterMetadata(path: string): AdapterMetadata {
  if (!existsSync(path)) throw new AdapterError(`Adapter file not found: ${path}`);
  return fromStringMetadata(path, SafetensorsFile.open(path).metadata);
}

/** Reads an adapter file: metadata, weights and the subject condition. */
export function readAdapter(path: string): AdapterContents {
  if (!existsSync(path)) throw new AdapterError(`Adapter file not found: ${path}`);
  const file = SafetensorsFile.open(path);
  const metadata = fromStringMetadata(path, file.metadata);
  for (const key of [LATENTS_KEY, CLIP_STATES_KEY]) {
    if (!file.tensors.has(key))
      throw new AdapterError(`${basename(path)} lacks the subject condition tensor ${key}`);
  }
  const weights = file.loadAll((k) => !k.startsWith('condition.'));
  const condition = { latent: file.tensor(LATENTS_KEY), clipStates: file.tensor(CLIP_STATES_KEY) };
  return { metadata, weights, condition };
}

/** Throws unless the adapter was trained on this U-Net (same fingerprint). */
export function checkBaseModel(
  metadata: AdapterMetadata,
  unet: UNet2DConditionModel,
  baseFolder: string,
  adapterPath: string,
): string {
  const fingerprint = baseModelFingerprint(unet);
  if (fingerprint !== metadata.baseFingerprint) {
    throw new AdapterError(
      `${basename(adapterPath)} was trained on base model "${metadata.baseModel}" (fingerprint ${metadata.baseFingerprint}), ` +
        `but ${basename(resolve(baseFolder))} has fingerprint ${fingerprint}: a P3S adapter works only with the U-Net it was trained on`,
    );
  }
  return fingerprint;
}

/** Strict: a missing, unexpected or mis-shaped key is an AdapterError naming it. */
function loadWeightsInto(adapter: P3SAdapter, weights: Map<string, Tensor>, path: string): void {
  try {
    adapter.loadStateDict(weights);
  } catch (err) {
    throw new AdapterError(
      `${basename(path)} does not fit this base model: ${(err as Error).message}`,
    );
  }
}

/**
 * Another adapter's weights, not its subject condition, into `adapter` (p3s train
 * --init-adapter), after checking that it was trained on this base U-Net.
 */
export function loadAdapterWeights(
  adapter: P3SAdapter,
  path: string,
  unet: UNet2DConditionModel,
  baseFolder: string,
): void {
  const { metadata, weights, condition } = readAdapter(path);
  try {
    checkBaseModel(metadata, unet, baseFolder, path);
    loadWeightsInto(adapter, weights, path);
  } finally {
    disposeAll([...weights.values(), condition.latent, condition.clipStates]);
  }
}

export interface LoadedAdapter {
  adapter: P3SAdapter;
  condition: SubjectCondition;
  metadata: AdapterMetadata;
  /** The settings it was trained with (λ, curve, mode, T). */
  settings: P3SSettings;
}

/**
 * Loads an adapter for a base U-Net: checks the fingerprint, builds the P3SAdapter and loads
 * its weights strictly (a missing or mis-shaped key is an error naming it).
 */
export function loadAdapter(
  path: string,
  unet: UNet2DConditionModel,
  baseFolder: string,
): LoadedAdapter {
  const contents = readAdapter(path);
  const { metadata, weights, condition } = contents;
  let adapter: P3SAdapter | null = null;
  try {
    checkBaseModel(metadata, unet, baseFolder, path);
    const clipHiddenSize = condition.clipStates.shape[2]!;
    if (condition.latent.shape[1] !== unet.config.in_channels) {
      throw new AdapterError(
        `${basename(path)}: condition.latents has ${condition.latent.shape[1]} channels but the U-Net takes ${unet.config.in_channels}`,
      );
    }
    adapter = new P3SAdapter(unet, clipHiddenSize);
    loadWeightsInto(adapter, weights, path);
    adapter.freeze().eval();
    return {
      adapter,
      condition,
      metadata,
      settings: {
        lambda: metadata.lambda,
        weightCurve: parseWeightCurve(metadata.weightCurve),
        injectionMode: metadata.injectionMode,
        numTrainTimesteps: metadata.numTrainTimesteps,
      },
    };
  } catch (err) {
    adapter?.dispose();
    disposeAll([condition.latent, condition.clipStates]);
    throw err;
  } finally {
    disposeAll([...weights.values()]);
  }
}
