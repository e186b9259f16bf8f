// Which CLIP hidden state and patch-grid density the live masks use. The shipped toy models
// record the ones that mask best in their quality.json (maskLayer, maskDense), measured on their
// own image_encoder; any other CLIP gets `p3s mask`'s defaults.
import { resolve } from 'node:path';
import { MASK_SETTINGS } from '../../src/p3s/supervision/mask_settings.js';
import { measuredMaskChoice, readQuality } from '../toymodels/quality_file.js';
import type { MaskWorkerSettings } from './mask_protocol.js';

const defaultOf = (key: string): number =>
  MASK_SETTINGS.find((s) => s.key === key)!.default as number;

export function liveMaskSettings(baseModel: string, clipModel: string): MaskWorkerSettings {
  const settings = { clipFolder: clipModel, layer: defaultOf('layer'), dense: defaultOf('dense') };
  if (resolve(clipModel) !== resolve(baseModel, 'image_encoder')) return settings;
  try {
    const { maskLayer, maskDense } = measuredMaskChoice(readQuality(baseModel));
    return { ...settings, layer: maskLayer ?? settings.layer, dense: maskDense ?? settings.dense };
  } catch {
    return settings; // an unreadable quality.json only costs the better settings
  }
}
