// Writing model folders as diffusers' and transformers' save_pretrained do, so that what p3s
// saves loads in Python unchanged: config.json sorted and indented as Python's json writes it,
// safetensors weights under the usual names with the "pt" format tag, a pipeline's
// model_index.json, the CLIP tokenizer and image-processor files, and the version stamps
// (diffusers 0.27.2, transformers 4.26.0) that the loaders check.
//
// Numbers are written by JavaScript's JSON (1e-05 reads back as 0.00001, 1.0 as 1): the values
// are the same, the text not always Python's.
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { arange } from '../engine/creation.js';
import type { DType } from '../engine/dtype.js';
import { disposeAll, tidy } from '../engine/scope.js';
import type { Tensor } from '../engine/tensor.js';
import { saveSafetensors } from '../io/safetensors.js';
import type { Module } from '../nn/module.js';

export const DIFFUSERS_VERSION = '0.27.2';
export const TRANSFORMERS_VERSION = '4.26.0';

/** Python's json.dumps(obj, indent=2, sort_keys=True) + "\n", as save_pretrained writes. */
export function writeJson(path: string, value: unknown): void {
  writeFileSync(path, `${JSON.stringify(sortKeys(value), null, 2)}\n`);
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v === null || typeof v !== 'object') return v;
  const o = v as Record<string, unknown>;
  return Object.fromEntries(
    Object.keys(o)
      .sort()
      .map((k) => [k, sortKeys(o[k])]),
  );
}

/** A diffusers config.json object: the class name and library version stamped on `config`. */
export function diffusersConfig(
  className: string,
  config: Readonly<Record<string, unknown>>,
): Record<string, unknown> {
  return { _class_name: className, _diffusers_version: DIFFUSERS_VERSION, ...config };
}

/** A transformers config.json object: the weights' dtype and the library version stamped on. */
export function transformersConfig(
  config: Readonly<Record<string, unknown>>,
  dtype: DType,
): Record<string, unknown> {
  return { ...config, torch_dtype: dtype, transformers_version: TRANSFORMERS_VERSION };
}

/**
 * `folder/name[.variant].safetensors`: diffusers' weights are named diffusion_pytorch_model,
 * transformers' model; a variant such as "fp16" goes before the extension.
 */
export function weightFilePath(folder: string, name: string, variant?: string): string {
  return join(folder, variant ? `${name}.${variant}.safetensors` : `${name}.safetensors`);
}

export interface SaveWeightsOptions {
  /** The dtype floating-point tensors are stored in; by default each keeps its own. */
  dtype?: DType;
  /**
   * Replaces each state-dict tensor before it is stored; called in sorted key order, so that a
   * map drawing random numbers draws them in a fixed order.
   */
  map?: (key: string, value: Tensor) => Tensor;
}

/**
 * The module's state dict, in sorted key order, plus `extra` tensors (such as buffers the
 * module does not hold; they are disposed here), written as a safetensors file tagged
 * format "pt" as torch's save_file writes it.
 */
export function saveWeights(
  module: Module,
  path: string,
  options: SaveWeightsOptions = {},
  extra: [string, Tensor][] = [],
): void {
  const { dtype, map } = options;
  const state = module.stateDict();
  const out = new Map<string, Tensor>();
  try {
    for (const key of [...state.keys()].sort()) {
      const t = tidy(() => {
        const value = state.get(key)!.detach();
        const v = map ? map(key, value) : value;
        const convert = v.isFloatingPoint && dtype !== undefined && v.dtype !== dtype;
        return convert ? v.to(dtype) : v.clone();
      });
      out.set(key, t);
    }
    for (const [key, t] of extra) out.set(key, t);
    saveSafetensors(path, out, { format: 'pt' });
  } finally {
    disposeAll([...out.values()]);
  }
}

/** transformers' int64 `embeddings.position_ids` buffer (1, n), which 4.26 still saved. */
export function positionIds(key: string, n: number): [string, Tensor] {
  const ids = arange(0, n, 1, { dtype: 'int64' });
  const row = ids.view(1, n);
  ids.dispose();
  return [key, row];
}

/** CLIPImageProcessor's preprocessor_config.json for a square input size (CLIP-L: 224). */
export function clipPreprocessorConfig(size: number): Record<string, unknown> {
  return {
    crop_size: { height: size, width: size },
    do_center_crop: true,
    do_convert_rgb: true,
    do_normalize: true,
    do_rescale: true,
    do_resize: true,
    image_mean: [0.48145466, 0.4578275, 0.40821073],
    image_processor_type: 'CLIPImageProcessor',
    image_std: [0.26862954, 0.26130258, 0.27577711],
    resample: 3,
    rescale_factor: 0.00392156862745098,
    size: { shortest_edge: size },
  };
}

const SPECIAL_TOKEN = (content: string) => ({
  content,
  lstrip: false,
  normalized: true,
  rstrip: false,
  single_word: false,
});

// SD 1.5's tokenizer configs, written where the source folder has none.
const TOKENIZER_CONFIGS: Readonly<Record<string, unknown>> = {
  'tokenizer_config.json': {
    add_prefix_space: false,
    bos_token: { __type: 'AddedToken', ...SPECIAL_TOKEN('<|startoftext|>') },
    do_lower_case: true,
    eos_token: { __type: 'AddedToken', ...SPECIAL_TOKEN('<|endoftext|>') },
    errors: 'replace',
    model_max_length: 77,
    pad_token: '<|endoftext|>',
    tokenizer_class: 'CLIPTokenizer',
    unk_token: { __type: 'AddedToken', ...SPECIAL_TOKEN('<|endoftext|>') },
  },
  'special_tokens_map.json': {
    bos_token: SPECIAL_TOKEN('<|startoftext|>'),
    eos_token: SPECIAL_TOKEN('<|endoftext|>'),
    pad_token: '<|endoftext|>',
    unk_token: SPECIAL_TOKEN('<|endoftext|>'),
  },
};

/**
 * tokenizer/: a CLIP tokenizer's vocab.json and merges.txt copied from `source` (a BPE vocab
 * can't be invented), with its tokenizer configs or SD 1.5's. Returns the vocabulary size.
 */
export function writeTokenizer(folder: string, source: string): number {
  mkdirSync(folder, { recursive: true });
  for (const file of ['vocab.json', 'merges.txt']) {
    const from = join(source, file);
    if (!existsSync(from)) {
      throw new Error(`Expected a CLIP tokenizer folder with ${file} but ${from} does not exist`);
    }
    copyFileSync(from, join(folder, file));
  }
  for (const [file, content] of Object.entries(TOKENIZER_CONFIGS)) {
    const from = join(source, file);
    if (existsSync(from)) copyFileSync(from, join(folder, file));
    else writeJson(join(folder, file), content);
  }
  const vocab = JSON.parse(readFileSync(join(folder, 'vocab.json'), 'utf8')) as object;
  return Object.keys(vocab).length;
}

/**
 * model_index.json of a diffusers StableDiffusionPipeline folder; the text encoder's class and an
 * optional image_encoder/ entry vary (the toy models ship CLIPTextModelWithProjection and a
 * vision tower).
 */
export function writeModelIndex(
  folder: string,
  options: { textEncoder?: string; imageEncoder?: string | null; scheduler?: string } = {},
): void {
  writeJson(join(folder, 'model_index.json'), {
    _class_name: 'StableDiffusionPipeline',
    _diffusers_version: DIFFUSERS_VERSION,
    feature_extractor: ['transformers', 'CLIPImageProcessor'],
    image_encoder: options.imageEncoder ? ['transformers', options.imageEncoder] : [null, null],
    requires_safety_checker: false,
    safety_checker: [null, null],
    scheduler: ['diffusers', options.scheduler ?? 'PNDMScheduler'],
    text_encoder: ['transformers', options.textEncoder ?? 'CLIPTextModel'],
    tokenizer: ['transformers', 'CLIPTokenizer'],
    unet: ['diffusers', 'UNet2DConditionModel'],
    vae: ['diffusers', 'AutoencoderKL'],
  });
}
