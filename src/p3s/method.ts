// P3S as a fine-tuning method (training/method.ts): it trains an adapter — the subject encoder
// and the trainable copy — whose features are injected into the frozen U-Net, with
//   L = L_LDM + γ·L_ac                                                        (Eq. 15)
// L_LDM on the injected U-Net's prediction (Eq. 14), weighted outside the subject mask by the
// background weight when masks are given, and L_ac between the last cross-attention maps of copy
// and frozen U-Net (Eq. 11–13). It writes an adapter file (adapter/adapter_io.ts).
//
// Its own draw, after the shared ones: with the condition from an 'other' reference, which one.
import { join } from 'node:path';
import { randint } from '../engine/creation.js';
import { ITEM_SIZE } from '../engine/dtype.js';
import type { Generator } from '../engine/random.js';
import { disposeAll } from '../engine/scope.js';
import type { Tensor } from '../engine/tensor.js';
import * as ops from '../engine/ops.generated.js';
import type { UNet2DConditionModel } from '../models/unet/unet_2d_condition.js';
import type { FineTuningMethod, MethodLoss, NoisedBatch } from '../training/method.js';
import type { Lineage } from '../training/identity.js';
import { referenceCopy } from '../training/fine_tuning.js';
import { saveAdapter, type AdapterMetadata } from './adapter/adapter_io.js';
import { attentionConsistencyLoss, subjectWeightedLoss, totalLoss } from './adapter/losses.js';
import {
  P3SAdapter,
  P3SUNet,
  type P3SSettings,
  type SubjectCondition,
} from './adapter/p3s_unet.js';
import type { EncodedReferences, ReferenceTensors } from './references.js';
import type { ConditionSource } from './train_settings.js';

export interface P3SLossSettings {
  /** γ of Eq. (15). */
  gamma: number;
  /** Weight of Eq. (14)'s error outside the subject mask (1: the plain loss). */
  backgroundLossWeight: number;
  conditionFrom: ConditionSource;
}

/** What the adapter file records besides its training steps. */
export type AdapterRecord = Omit<
  AdapterMetadata,
  'format' | 'formatVersion' | 'p3sVersion' | 'trainingSteps'
>;

const rows = (t: Tensor, items: readonly number[]): Tensor =>
  ops.cat(
    items.map((r) => t.slice(0, r, r + 1)),
    0,
  );

export class P3SMethod implements FineTuningMethod {
  readonly name = 'P3S';
  readonly adapter: P3SAdapter;
  readonly p3s: P3SUNet;

  /** Builds a fresh adapter for the frozen U-Net (seed the global generator first). */
  constructor(
    unet: UNet2DConditionModel,
    clipHiddenSize: number,
    injection: P3SSettings,
    readonly references: EncodedReferences,
    readonly settings: P3SLossSettings,
    readonly record: AdapterRecord,
  ) {
    this.adapter = new P3SAdapter(unet, clipHiddenSize);
    this.p3s = new P3SUNet(unet, this.adapter, injection);
  }

  get trainable(): P3SAdapter {
    return this.adapter;
  }

  /** The subject condition (I', c_s) of every reference: what the adapter file stores. */
  get condition(): SubjectCondition {
    return {
      latent: this.references.condition.latents,
      clipStates: this.references.condition.clipStates,
    };
  }

  /** Which reference conditions each sample (its own, or with 'other' a drawn different one). */
  private conditionItems(batch: NoisedBatch, draw: Generator | null): number[] {
    const n = this.references.latents.shape[0]!;
    if (draw === null || this.settings.conditionFrom !== 'other' || n < 2) return batch.items;
    const draws = randint(0, n - 1, [batch.items.length], {
      generator: draw,
    }).toArray() as number[];
    return batch.items.map((r, j) => (draws[j]! >= r ? draws[j]! + 1 : draws[j]!));
  }

  private conditionOf(batch: NoisedBatch, items: readonly number[]): SubjectCondition {
    const part = (j: number): ReferenceTensors =>
      referenceCopy(this.references, batch.variants[j]!).condition;
    const pick = (which: keyof ReferenceTensors): Tensor =>
      ops.cat(
        items.map((r, j) => rows(part(j)[which], [r])),
        0,
      );
    return { latent: pick('latents'), clipStates: pick('clipStates') };
  }

  loss(batch: NoisedBatch, draw: Generator | null): MethodLoss {
    const condition = this.conditionOf(batch, this.conditionItems(batch, draw));
    const out = this.p3s.forward(batch.xt, batch.timesteps, batch.context, condition, {
      captureAttention: this.settings.gamma > 0,
    });
    const maps = [out.copyAttention, out.frozenAttention].filter((m): m is Tensor => m !== null);
    const ldm = subjectWeightedLoss(
      out.noisePred,
      batch.target,
      batch.subjectMasks,
      this.settings.backgroundLossWeight,
    ); // Eq. (14)
    const ac =
      out.copyAttention && out.frozenAttention
        ? attentionConsistencyLoss(out.copyAttention, out.frozenAttention) // Eq. (11)–(13)
        : null;
    return {
      loss: totalLoss(ldm, ac, this.settings.gamma), // Eq. (15)
      parts: { ldm, ac },
      // the captured maps outlive their scope (their processors keep them): free after backward
      release: () => disposeAll(maps),
    };
  }

  save(outDir: string, steps: number): string {
    const path = join(outDir, 'adapter.safetensors');
    saveAdapter(path, this.adapter, this.condition, { ...this.record, trainingSteps: steps });
    return path;
  }

  /** The adapter's weights and the subject condition. */
  artifactBytes(): number {
    const { latent, clipStates } = this.condition;
    const tensors = [...this.adapter.stateDict().values(), latent, clipStates];
    return tensors.reduce((n, t) => n + t.numel * ITEM_SIZE[t.dtype], 0);
  }

  recordLineage(lineage: Lineage): void {
    this.record.training.branched_from = lineage;
  }

  dispose(): void {
    this.p3s.detach();
    this.adapter.dispose();
  }
}
