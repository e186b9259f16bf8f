// Which CLIP hidden state and patch-grid density the live masks use. The shipped toy models
// record the ones that mask best in their quality.json (maskLayer, maskDense), measured on their
// own image_encoder; any other CLIP gets `p3s mask`'s defaults.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { MASK_SETTINGS } from '../../src/p3s/supervision/mask_settings.js';
import type { MaskWorkerSettings } from './mask_protocol.js';

const defaultOf = (key: string): number =>
  MASK_SETTINGS.find((s) => s.key === key)!.default as number;

export function liveMaskSettings(baseModel: string, clipModel: string): MaskWorkerSettings {
  const settings = { clipFolder: clipModel, layer: defaultOf('layer'), dense: defaultOf('dense') };
  const quality = join(baseModel, 'quality.json');
  const ownClip = resolve(clipModel) === resolve(baseModel, 'image_encoder');
  if (!ownClip || !existsSync(quality)) return settings;
  try {
    const q = JSON.parse(readFileSync(quality, 'utf8')) as Record<string, unknown>;
    if (Number.isSafeInteger(q.maskLayer)) settings.layer = q.maskLayer as number;
    if (Number.isSafeInteger(q.maskDense) && (q.maskDense as number) >= 1)
      settings.dense = q.maskDense as number;
  } catch {
    // an unreadable quality.json only costs the better settings
  }
  return settings;
}
