// What a fine-tuning method provides to the shared trainer (fine_tuning.ts, loop.ts): the module
// it trains, its loss on a noised batch, its part of the run's identity, and the file it writes
// for generation to load. P3S is one method (src/p3s/method.ts); DreamBooth, Custom Diffusion
// and Textual Inversion fit the same shape: the same batches, another trainable module and loss.
import type { Generator } from '../engine/random.js';
import type { Tensor } from '../engine/tensor.js';
import type { Module } from '../nn/module.js';
import type { Lineage } from './identity.js';

/** A micro-batch of noised reference latents (fine_tuning.ts draws it). */
export interface NoisedBatch {
  /** The reference of each sample, or one reference every sample shows (evaluation). */
  items: number[];
  /** The copy of its reference each sample shows: 0 the reference, v its augmented copy v. */
  variants: number[];
  timesteps: number[];
  /** (B, C, h, w) each: x_0, ε, x_t and the loss target (ε, v or x_0 by prediction type). */
  x0: Tensor;
  noise: Tensor;
  xt: Tensor;
  target: Tensor;
  /** (B, L, D): the prompt's or the empty prompt's text context per sample. */
  context: Tensor;
  /** Which samples have the empty prompt (methods that encode the prompt themselves need it). */
  dropped: boolean[];
  /** (B, 1, h, w): each latent cell's share of the subject mask, when the loss weighs it. */
  subjectMasks: Tensor | null;
}

export interface MethodLoss {
  /** The loss to back-propagate. */
  loss: Tensor;
  /** Its named parts, for logs and progress (null: not computed). */
  parts: Record<string, Tensor | null>;
  /** Frees what the loss kept alive past its scope (after backward). */
  release(): void;
}

export interface FineTuningMethod {
  readonly name: string;
  /** The module whose parameters train; checkpoints hold its weights. */
  readonly trainable: Module;
  /**
   * The loss of one batch (forward only). `draw` is the run's generator for the method's own
   * draws after the shared ones, or null for the fixed evaluation batch (no draws).
   */
  loss(batch: NoisedBatch, draw: Generator | null): MethodLoss;
  /** Writes what users of the method exchange (P3S: an adapter file); returns its path. */
  save(outDir: string, steps: number): string;
  /** The bytes save() writes, about (the trainer checks the disk has room before training). */
  artifactBytes(): number;
  /** Records the checkpoint a branched run continued from, for save() (when it keeps metadata). */
  recordLineage?(lineage: Lineage): void;
  /** Frees the trainable module and what the method holds. */
  dispose(): void;
}
