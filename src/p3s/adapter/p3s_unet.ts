// The P3S noise predictor: the frozen U-Net with the trainable copy's features injected into
// its self-attention layers (Eq. 6–9), and the subject input the copy runs on (Eq. 4–5).
import { Tensor } from '../../engine/tensor.js';
import { disposeAll } from '../../engine/scope.js';
import { tensor, zeros } from '../../engine/creation.js';
import * as ops from '../../engine/ops.generated.js';
import { Module } from '../../nn/module.js';
import { AttnCaptureProcessor, type AttentionProcessor } from '../../models/attention_processor.js';
import type { UNet2DConditionModel } from '../../models/unet/unet_2d_condition.js';
import { SubjectEncoder } from './subject_encoder.js';
import { TrainableCopy } from './trainable_copy.js';
import { P3S_FEATURES, P3SInjectionProcessor, type InjectionMode } from './injection.js';
import { injectionWeight, PAPER_CURVE, type WeightCurve } from './weight_schedule.js';
import { regionAt, regionLayerKeys } from './subject_region.js';

export interface P3SSettings {
  /** λ of Eq. (7). */
  lambda: number;
  /** ε_t of Eq. (9)–(10). */
  weightCurve: WeightCurve;
  injectionMode: InjectionMode;
  /** T of Eq. (10): the base model's training timesteps. */
  numTrainTimesteps: number;
}

export const DEFAULT_SETTINGS: P3SSettings = {
  lambda: 0.2,
  weightCurve: PAPER_CURVE,
  injectionMode: 'decoupled',
  numTrainTimesteps: 1000,
};

/** The subject condition: the filled reference's latent I' and CLIP last hidden state c_s. */
export interface SubjectCondition {
  latent: Tensor; // (B, C, h, w)
  clipStates: Tensor; // (B, L, E)
}

export interface P3SOutput {
  noisePred: Tensor;
  /** M_c and M_o of Eq. (13), when captured (training). */
  copyAttention: Tensor | null;
  frozenAttention: Tensor | null;
  /** The frozen U-Net's region maps (subject_region.ts), when it captures them: the caller's. */
  regionAttention: Tensor[] | null;
}

/** The trained part of P3S: the subject encoder and the trainable copy (what an adapter holds). */
export class P3SAdapter extends Module {
  readonly subjectEncoder: SubjectEncoder;
  readonly copy: TrainableCopy;
  constructor(frozen: UNet2DConditionModel, clipHiddenSize: number) {
    super();
    const latentChannels = frozen.config.in_channels;
    this.subjectEncoder = this.registerModule(
      'subject_encoder',
      new SubjectEncoder({
        latentChannels,
        clipHiddenSize,
        attentionDim: frozen.config.block_out_channels[0]!,
      }),
    );
    this.copy = this.registerModule('copy', new TrainableCopy(frozen));
  }
}

const STAGE: Record<string, number> = { down_blocks: 0, mid_block: 1, up_blocks: 2 };

/** Orders U-Net module paths as the forward pass visits them: down, mid, up, then by index. */
function byExecutionOrder(a: string, b: string): number {
  const key = (p: string): number[] => {
    const parts = p.split('.');
    return [STAGE[parts[0]!] ?? 3, ...parts.filter((x) => /^\d+$/.test(x)).map(Number)];
  };
  const ka = key(a);
  const kb = key(b);
  for (let i = 0; i < Math.max(ka.length, kb.length); i++) {
    const d = (ka[i] ?? -1) - (kb[i] ?? -1);
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * The frozen U-Net with an adapter attached: its self-attention processors are swapped once, at
 * construction, and each forward call hands them that call's features, so the U-Net holds
 * nothing between calls (a plain unet.forward while attached injects nothing).
 */
export class P3SUNet {
  private readonly frozenCapture = new AttnCaptureProcessor('last');
  private readonly lastCrossPath: string;
  private readonly saved: Map<string, AttentionProcessor>;
  /** The region layers' maps of the last call, with regionCapture. */
  private readonly regionMaps = new Map<string, Tensor>();
  private readonly regionKeys: string[];

  constructor(
    readonly unet: UNet2DConditionModel,
    readonly adapter: P3SAdapter,
    public settings: P3SSettings = DEFAULT_SETTINGS,
    /** Capture the frozen U-Net's region maps on every call (local injection). */
    regionCapture = false,
  ) {
    this.saved = unet.attnProcessors();
    const processors = new Map<string, AttentionProcessor>(this.saved);
    for (const path of adapter.copy.blockPaths) {
      const key = `${path}.attn1.processor`;
      if (!processors.has(key))
        throw new Error(
          `The adapter's layer ${path} has no self-attention in this U-Net: adapter and base model differ`,
        );
      processors.set(key, new P3SInjectionProcessor(path, settings.lambda, settings.injectionMode));
    }
    const crossKeys = [...processors.keys()]
      .filter((k) => k.endsWith('.attn2.processor'))
      .sort(byExecutionOrder);
    this.lastCrossPath = crossKeys[crossKeys.length - 1] ?? '';
    if (this.lastCrossPath) processors.set(this.lastCrossPath, this.frozenCapture);
    this.regionKeys = regionCapture ? regionLayerKeys(processors.keys()) : [];
    if (this.regionKeys.includes(this.lastCrossPath))
      throw new Error('Local injection needs two or more up blocks with cross-attention');
    for (const key of this.regionKeys)
      processors.set(key, new AttnCaptureProcessor(key, this.regionMaps));
    unet.setAttnProcessor(processors);
  }

  /** Restores the U-Net's own processors. */
  detach(): void {
    this.unet.setAttnProcessor(this.saved);
    this.frozenCapture.clear(); // a map captured by a plain unet.forward while attached
    for (const t of this.regionMaps.values()) t.dispose();
    this.regionMaps.clear();
  }

  /** The region maps the last call captured, handed over to the caller (null: none). */
  private takeRegionMaps(): Tensor[] | null {
    if (this.regionKeys.length === 0) return null;
    const maps = this.regionKeys.map((k) => this.regionMaps.get(k)!);
    this.regionMaps.clear();
    return maps;
  }

  /** ε_t per sample (B,): Eq. (10) at each sample's timestep. */
  weights(timesteps: number[]): number[] {
    return timesteps.map((t) =>
      injectionWeight(this.settings.weightCurve, t, this.settings.numTrainTimesteps),
    );
  }

  /**
   * Predicts noise for x_t (B, C, h, w) at timesteps (B,) with text context (B, L, D) and the
   * subject condition (broadcast over B if it has batch 1).
   */
  forward(
    xt: Tensor,
    timesteps: number[],
    context: Tensor,
    condition: SubjectCondition | null,
    options: {
      captureAttention?: boolean;
      /** Per sample (B,), multiplies ε_t: 0 leaves that sample to the frozen U-Net alone. */
      injectionScale?: readonly number[];
      /** (B, 1, h, w) in [0, 1]: where the copy's features reach the frozen U-Net (default: everywhere). */
      region?: Tensor | null;
    } = {},
  ): P3SOutput {
    const b = xt.shape[0]!;
    if (timesteps.length !== b)
      throw new Error(`Expected ${b} timesteps but received ${timesteps.length}`);
    const scale = options.injectionScale;
    if (scale && scale.length !== b)
      throw new Error(`Expected ${b} injection scales but received ${scale.length}`);
    const t = tensor(timesteps, [b], { dtype: 'int64', device: xt.device });
    if (condition === null) {
      const noisePred = this.unet.forward(xt, t, context);
      this.frozenCapture.clear();
      const regionAttention = this.takeRegionMaps();
      return { noisePred, copyAttention: null, frozenAttention: null, regionAttention };
    }
    const expand = (c: Tensor): Tensor => (c.shape[0] === b ? c : c.expand(b, ...c.shape.slice(1)));
    const weights = this.weights(timesteps).map((w, i) => w * (scale?.[i] ?? 1));
    // The copy runs only on the samples whose ε_t is not 0 (with subject guidance, the
    // conditional half): the others' features would be scaled to 0 anyway (Eq. 9).
    const active = weights.flatMap((w, i) => (w !== 0 ? [i] : []));
    const partial = active.length > 0 && active.length < b && !options.captureAttention;
    const rows = partial
      ? tensor(active, [active.length], { dtype: 'int64', device: xt.device })
      : null;
    const pick = (x: Tensor): Tensor => (rows ? ops.indexSelect(x, 0, rows) : x);
    const subjectInput = this.adapter.subjectEncoder.forward(
      pick(expand(condition.latent)),
      pick(expand(condition.clipStates)),
    ); // Eq. (4)
    const copyOut = this.adapter.copy.forward(pick(xt).add(subjectInput), pick(t), pick(context)); // Eq. (6)
    // Eq. (9): f scaled by ε_t, per sample
    const activeWeights = partial ? active.map((i) => weights[i]!) : weights;
    const eps = tensor(activeWeights, [activeWeights.length, 1, 1], {
      dtype: xt.dtype,
      device: xt.device,
    });
    const scaled = new Map<string, Tensor>();
    const region = options.region ? pick(options.region) : null;
    for (const [path, f] of copyOut.features) {
      const weighted = region ? f.mul(eps).mul(regionAt(region, f.shape[1]!)) : f.mul(eps);
      scaled.set(path, partial ? scatterRows(weighted, active, b) : weighted);
    }
    try {
      // the features reach the injection processors with this call only (injection.ts)
      const noisePred = this.unet.forward(xt, t, context, {
        attentionContext: P3S_FEATURES.entry(scaled),
      });
      const frozenAttention = this.frozenCapture.captured.get('last') ?? null;
      this.frozenCapture.captured.delete('last');
      if (!options.captureAttention) disposeAll([frozenAttention, copyOut.lastCrossAttention]);
      return {
        noisePred,
        copyAttention: options.captureAttention ? copyOut.lastCrossAttention : null,
        frozenAttention: options.captureAttention ? frozenAttention : null,
        regionAttention: this.takeRegionMaps(),
      };
    } finally {
      disposeAll([...copyOut.features.values(), ...scaled.values()]);
    }
  }
}

/** A batch of `size` rows: row i of `rows` at batch position `at[i]`, zeros elsewhere. */
function scatterRows(rows: Tensor, at: readonly number[], size: number): Tensor {
  const zero = zeros([1, ...rows.shape.slice(1)], { dtype: rows.dtype, device: rows.device });
  const parts = Array.from({ length: size }, (_, i) => {
    const k = at.indexOf(i);
    return k < 0 ? zero : rows.slice(0, k, k + 1);
  });
  return ops.cat(parts, 0);
}
