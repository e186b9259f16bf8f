// Custom Diffusion (Kumari et al., CVPR 2023) on the shared trainer: only the cross-attention
// key and value projections (attn2.to_k, attn2.to_v) and a new modifier token "<sks>" train,
// with the same prior preservation as DreamBooth (prior.ts). Saves the projections as diffusers'
// pytorch_custom_diffusion_weights.safetensors —
//   <block path>.attn2.processor.to_{k,v}_custom_diffusion.weight
// which `unet.load_attn_procs` reads — and the token beside it as learned_embeds.safetensors
// (diffusers' example saves it as <new1>.bin for load_textual_inversion).
import { join } from 'node:path';
import { ITEM_SIZE } from '../engine/dtype.js';
import type { Tensor } from '../engine/tensor.js';
import { saveSafetensors } from '../io/safetensors.js';
import { Module } from '../nn/module.js';
import type { UNet2DConditionModel } from '../models/unet/unet_2d_condition.js';
import { LEARNED_EMBEDS } from './added_token.js';
import { TokenMethod } from './textual_inversion.js';

export const CUSTOM_DIFFUSION_WEIGHTS = 'pytorch_custom_diffusion_weights.safetensors';

/** U-Net keys → Custom Diffusion keys: what the processor calls its copies of to_k and to_v. */
const KEY_RENAMES: readonly (readonly [RegExp, string])[] = [
  [/\.attn2\.to_k\.weight$/, '.attn2.processor.to_k_custom_diffusion.weight'],
  [/\.attn2\.to_v\.weight$/, '.attn2.processor.to_v_custom_diffusion.weight'],
];

export function customDiffusionKey(unetKey: string): string | null {
  const rule = KEY_RENAMES.find(([from]) => from.test(unetKey));
  return rule ? unetKey.replace(rule[0], rule[1]) : null;
}

/** The U-Net's cross-attention K and V projections (the modules themselves) and the token. */
export class CrossAttentionKV extends Module {
  constructor(unet: UNet2DConditionModel, token: Module) {
    super();
    for (const [path, m] of unet.namedModules()) {
      if (!path.endsWith('.attn2')) continue;
      this.registerModule(`${path}.to_k`, m.child('to_k'));
      this.registerModule(`${path}.to_v`, m.child('to_v'));
    }
    this.registerModule('token', token);
  }

  /** The projections' weights by U-Net key (without the token). */
  projections(): Map<string, Tensor> {
    return new Map([...this.stateDict()].filter(([key]) => !key.startsWith('token.')));
  }
}

export class CustomDiffusionMethod extends TokenMethod {
  readonly name = 'Custom Diffusion';
  readonly trainable: CrossAttentionKV;

  constructor(...args: ConstructorParameters<typeof TokenMethod>) {
    super(...args);
    this.trainable = new CrossAttentionKV(this.unet, this.token).requiresGrad_(true);
  }

  save(outDir: string, steps: number): string {
    const path = join(outDir, CUSTOM_DIFFUSION_WEIGHTS);
    const renamed = new Map(
      [...this.trainable.projections()].map(([key, t]) => [customDiffusionKey(key)!, t]),
    );
    this.saveToken(outDir, steps);
    saveSafetensors(path, renamed, {
      format: 'pt',
      ...this.metadata,
      token: this.token.token,
      token_file: LEARNED_EMBEDS,
      training_steps: String(steps),
    });
    return path;
  }

  artifactBytes(): number {
    return [...this.trainable.stateDict().values()].reduce(
      (n, t) => n + t.numel * ITEM_SIZE[t.dtype],
      0,
    );
  }
}
