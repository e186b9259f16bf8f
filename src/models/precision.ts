// Frozen models held in half precision while a trainable part stays in float32.
//
// A frozen model needs no float32 master weights (no optimizer updates them), so holding it in
// 16 bits halves its weights and, because a layer computes in its weights' dtype (nn/layers.ts),
// the activations it keeps for backward too. Trainable layers keep float32 weights, so their
// inputs are cast up at their boundary and their gradients and Adam states stay float32 — the
// split diffusers' training scripts make with `weight_dtype`. bfloat16 on CPU (float32's range,
// fast kernels on CPUs with AVX512-BF16 and no overflow without loss scaling); float16 on CUDA,
// where every card has fast float16 kernels and bfloat16 needs Ampere or newer.
import type { DType } from '../engine/dtype.js';
import type { Module } from '../nn/module.js';

/** How frozen weights are held: their own float32, or half (16 bits: frozenHalfDtype). */
export const PRECISIONS = ['float32', 'half'] as const;
export type Precision = (typeof PRECISIONS)[number];

/** The 16-bit dtype frozen weights are held in on a device ('cpu', 'cuda', 'cuda:1', ...). */
export function frozenHalfDtype(device: string): DType {
  return device.startsWith('cuda') ? 'float16' : 'bfloat16';
}

/**
 * Converts each module's floating-point weights and buffers to `dtype` (default: bfloat16 on
 * CPU, float16 on CUDA, from the first parameter's device). Every module must be frozen: a
 * trainable weight in 16 bits would be trained in 16 bits. Call it after anything that copies
 * these weights into a trainable module (P3S's trainable copy is initialised from the U-Net).
 */
export function holdFrozenInHalfPrecision(modules: readonly Module[], dtype?: DType): void {
  for (const m of modules) {
    const trainable = m.namedParameters().find(([, p]) => p.requiresGrad);
    if (trainable) {
      throw new Error(
        `holdFrozenInHalfPrecision: ${m.constructor.name} has a trainable parameter (${trainable[0]}); freeze() it first`,
      );
    }
  }
  for (const m of modules) {
    const first = m.parameters()[0];
    if (first) m.to(dtype ?? frozenHalfDtype(first.device));
  }
}
