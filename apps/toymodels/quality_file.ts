// A toy model folder's quality.json (written by the eval stage, evaluate.ts): read back for the
// model card, and for the CLIP layer and patch grid that mask best, which every experiment, the
// demo and the web app's live masks use on the models' own image encoder.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The folder's quality.json, or null where the eval stage has not run. */
export function readQuality(folder: string): Record<string, unknown> | null {
  const path = join(folder, 'quality.json');
  return existsSync(path)
    ? (JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>)
    : null;
}

/**
 * The CLIP layer and grid density the eval stage measured to mask best (none where quality.json
 * lacks them, or holds no usable value: the mask's defaults then).
 */
export function measuredMaskChoice(quality: Record<string, unknown> | null): {
  maskLayer?: number;
  maskDense?: number;
} {
  const layer = quality?.maskLayer;
  const dense = quality?.maskDense;
  return {
    ...(Number.isSafeInteger(layer) ? { maskLayer: layer as number } : {}),
    ...(Number.isSafeInteger(dense) && (dense as number) >= 1
      ? { maskDense: dense as number }
      : {}),
  };
}
