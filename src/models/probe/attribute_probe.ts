// The attribute probe: a small CNN trained on the toy world's labels (apps/toymodels/probe.ts),
// used only to judge generated images — it reads the main object's colour, shape and pattern and
// the background of a 64-px image. Trained on single-object scenes, so on a generated image it
// names the object the image is about.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ops from '../../engine/ops.generated.js';
import { noGrad } from '../../engine/autograd.js';
import { tidy } from '../../engine/scope.js';
import type { Tensor } from '../../engine/tensor.js';
import { imagesToSignedTensor, type RgbImage } from '../../io/image.js';
import { loadSafetensors, saveSafetensors } from '../../io/safetensors.js';
import { silu } from '../../nn/functional.js';
import { Conv2d, GroupNorm, Linear } from '../../nn/layers.js';
import { Module } from '../../nn/module.js';
import { BACKGROUNDS, COLOUR_NAMES, PATTERNS, SHAPES } from '../../toyworld/attributes.js';

export const PROBE_HEADS = {
  colour: COLOUR_NAMES,
  shape: SHAPES,
  pattern: PATTERNS,
  background: BACKGROUNDS,
} as const;
export type ProbeAttribute = keyof typeof PROBE_HEADS;
export const PROBE_ATTRIBUTES = Object.keys(PROBE_HEADS) as ProbeAttribute[];
const OUTPUTS = PROBE_ATTRIBUTES.reduce((n, k) => n + PROBE_HEADS[k].length, 0);

export type ProbeLabels = Record<ProbeAttribute, string>;

/** Bumped when the architecture changes, so an old probe folder fails with a clear message. */
const PROBE_VERSION = 2;

/** (in, out, kernel, stride, padding) of each conv: 64 px -> 8 × 8 feature map. */
const PROBE_CONVS = [
  [3, 32, 3, 1, 1],
  [32, 64, 4, 2, 1],
  [64, 64, 3, 1, 1],
  [64, 128, 4, 2, 1],
  [128, 128, 4, 2, 1],
] as const;
const PROBE_FEATURES = 2 * PROBE_CONVS[PROBE_CONVS.length - 1]![1];

/**
 * Input (B, 3, 64, 64) in [-1, 1] -> logits of every head, concatenated (B, 30). Conv + GroupNorm
 * blocks, then the mean and the max of the last feature map over all positions: an object is read
 * the same wherever it sits (a linear layer over the flattened map read shapes far worse;
 * docs/toy.md).
 */
export class AttributeProbe extends Module {
  private readonly convs = PROBE_CONVS.map(([i, o, k, stride, padding], j) =>
    this.registerModule(`conv${j}`, new Conv2d(i, o, k, { stride, padding })),
  );
  private readonly norms = PROBE_CONVS.map(([, o], j) =>
    this.registerModule(`norm${j}`, new GroupNorm(8, o)),
  );
  readonly fc1 = this.registerModule('fc1', new Linear(PROBE_FEATURES, 128));
  readonly fc2 = this.registerModule('fc2', new Linear(128, OUTPUTS));

  forward(x: Tensor): Tensor {
    let h = x;
    for (let j = 0; j < this.convs.length; j++) {
      h = silu(this.norms[j]!.forward(this.convs[j]!.forward(h)));
    }
    const pooled = ops.cat([h.mean([2, 3]), h.amax([2, 3])], 1);
    return this.fc2.forward(silu(this.fc1.forward(pooled)));
  }

  /** Per-head logits (B, classes). */
  heads(x: Tensor): Record<ProbeAttribute, Tensor> {
    const logits = this.forward(x);
    const out = {} as Record<ProbeAttribute, Tensor>;
    let at = 0;
    for (const k of PROBE_ATTRIBUTES) {
      const n = PROBE_HEADS[k].length;
      out[k] = logits.slice(1, at, at + n);
      at += n;
    }
    return out;
  }

  /** The probe's reading of each image. */
  predict(images: Tensor): ProbeLabels[] {
    return noGrad(() =>
      tidy(() => {
        const heads = this.heads(images);
        const b = images.shape[0]!;
        const picks = PROBE_ATTRIBUTES.map((k) => heads[k].argmax(1).toArray() as number[]);
        return Array.from({ length: b }, (_, i) => {
          const row = {} as ProbeLabels;
          PROBE_ATTRIBUTES.forEach((k, j) => (row[k] = PROBE_HEADS[k][picks[j]![i]!]!));
          return row;
        });
      }),
    );
  }

  static load(folder: string): AttributeProbe {
    const file = join(folder, 'probe.safetensors');
    if (!existsSync(file)) throw new Error(`No attribute probe at ${file}`);
    const config = JSON.parse(readFileSync(join(folder, 'config.json'), 'utf8')) as {
      heads: Record<string, string[]>;
      version?: number;
    };
    if ((config.version ?? 1) !== PROBE_VERSION) {
      throw new Error(
        `${folder} holds a version ${config.version ?? 1} probe; this p3s reads version ${PROBE_VERSION}: retrain it with \`npm run train:toy -- --stages probe\``,
      );
    }
    if (JSON.stringify(config.heads) !== JSON.stringify(PROBE_HEADS)) {
      throw new Error(`${folder}/config.json names other classes than this version's toy world`);
    }
    const probe = new AttributeProbe();
    const state = loadSafetensors(file);
    try {
      probe.loadStateDict(state);
    } finally {
      for (const t of state.values()) t.dispose();
    }
    return probe.eval();
  }

  save(folder: string): void {
    mkdirSync(folder, { recursive: true });
    const half = new Map([...this.stateDict()].map(([k, v]) => [k, v.to('float16')]));
    try {
      saveSafetensors(join(folder, 'probe.safetensors'), half, { format: 'pt' });
    } finally {
      for (const t of half.values()) t.dispose();
    }
    writeFileSync(
      join(folder, 'config.json'),
      `${JSON.stringify({ _class_name: 'AttributeProbe', version: PROBE_VERSION, heads: PROBE_HEADS }, null, 2)}\n`,
    );
  }
}

/** The probe's readings of images in batches (64-px images, as the toy world draws them). */
export function probeImages(probe: AttributeProbe, images: readonly RgbImage[]): ProbeLabels[] {
  const out: ProbeLabels[] = [];
  for (let i = 0; i < images.length; i += 64) {
    const x = imagesToSignedTensor(images.slice(i, i + 64));
    try {
      out.push(...probe.predict(x));
    } finally {
      x.dispose();
    }
  }
  return out;
}
