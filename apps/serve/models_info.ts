// GET /api/models: which models the server runs on, read from their config files once.
import { basename, join, resolve } from 'node:path';
import { readJson } from '../../src/models/loading.js';
import { BACKGROUND_PHRASES } from '../../src/toyworld/index.js';
import { SHIPPED_TOY_MODELS } from '../demo/settings.js';
import { recipeSettings, TOY_RECIPE } from '../toymodels/recipes.js';
import type { ModelsInfo } from './api.js';

/** The square size a model trains at: the U-Net's sample_size × the VAE's downscaling factor. */
function defaultResolution(baseModel: string): number {
  const unet = readJson(join(baseModel, 'unet', 'config.json')) as { sample_size?: number };
  const vae = readJson(join(baseModel, 'vae', 'config.json')) as { block_out_channels?: number[] };
  const factor = 2 ** ((vae.block_out_channels?.length ?? 4) - 1);
  return (unet.sample_size ?? 64) * factor;
}

export function modelsInfo(baseModel: string, clipModel: string): ModelsInfo {
  const toy = resolve(baseModel) === resolve(SHIPPED_TOY_MODELS);
  return {
    base: basename(resolve(baseModel)),
    clip:
      toy && resolve(clipModel) === resolve(baseModel, 'image_encoder')
        ? 'toy image_encoder'
        : basename(resolve(clipModel)),
    toy,
    resolution: defaultResolution(baseModel),
    // the toy world's six contexts read as well for real photos: "{} on the beach", ...
    exampleContexts: Object.values(BACKGROUND_PHRASES).map((phrase) => `{} ${phrase}`),
    ...(toy ? toyRecipeDefaults() : { trainDefaults: {}, generateDefaults: {} }),
  };
}

/** The demo's recipe for the toy models (apps/toymodels/recipes.ts), as request settings. */
function toyRecipeDefaults(): Pick<ModelsInfo, 'trainDefaults' | 'generateDefaults'> {
  const { train, generate } = recipeSettings(TOY_RECIPE);
  return { trainDefaults: train, generateDefaults: generate };
}

/** The identifier new subjects get: the recipe's on the toy models, else the library's default. */
export function subjectIdentifier(models: ModelsInfo): string | undefined {
  const identifier = models.trainDefaults.identifier;
  return typeof identifier === 'string' ? identifier : undefined;
}
