// How much memory one sampling request needs beyond the loaded weights, estimated from the model
// configs before anything is allocated, and the largest image size that fits a budget.
//
// An upper-ish bound, not an exact count: it follows where the forward passes keep memory, with
// the values each layer holds measured once (docs/p3s.md, Generation).
// - U-Net, batch B' = images × 2 with classifier-free guidance: each layer's output (and the
//   tensors around it) lives until the denoising step ends, HELD_PER_LAYER values per channel
//   and pixel; on top of them one layer's working set at a time (each block's internals are
//   freed when it is done), the largest being a self-attention's score maps,
//   B'·heads·HW·(HW·keyFactor) floats, two alive at once (scores and softmax, 1.13's path;
//   fused kernels need less). P3S's trainable copy runs first and everything it computed,
//   its injected features included, is held through the frozen pass.
// - VAE decoder, batch B: layer by layer (models/vae/scoped.ts), the largest being the mid
//   block's single-head self-attention at latent resolution, B·(hw)² floats ×2 — quadratic in
//   pixels: 1024² on the toy VAE (f = 4) is 65 536 tokens, 16 GiB per map per image — or a
//   resnet at full resolution.
// - The images a run keeps (every image until the contact sheet), 3 bytes a pixel each.
// - What the allocators keep beyond the live tensors: 25 % of them, and the larger of the CPU
//   cache's limit and 1 GiB of retained heap (measured over a 20-step run: see ALLOWANCE).
import type { UNet2DConditionConfig } from '../models/unet/unet_2d_condition.js';
import type { AutoencoderKLConfig } from '../models/vae/autoencoder_kl.js';

/** What an estimate needs of the U-Net's config. */
export type UNetShape = Pick<
  UNet2DConditionConfig,
  'block_out_channels' | 'down_block_types' | 'layers_per_block' | 'attention_head_dim'
> & { mid_block_type: string | null };

/** What an estimate needs of the VAE's config. */
export type VaeShape = Pick<
  AutoencoderKLConfig,
  'block_out_channels' | 'layers_per_block' | 'mid_block_add_attention'
>;

export interface SamplingMemoryRequest {
  unet: UNetShape;
  vae: VaeShape;
  /** Image size in pixels. */
  height: number;
  width: number;
  /** Images per forward pass. */
  batch: number;
  /** Classifier-free guidance doubles the U-Net's batch. */
  guided: boolean;
  /** P3S: the trainable copy runs first and its features are held through the frozen pass. */
  copy?: boolean;
  /** Self-attention keys per query token: 2 when P3S's joint injection appends f_i (default 1). */
  keyFactor?: number;
  /** Images kept in memory until the run ends (a contact sheet keeps all); default 0. */
  keptImages?: number;
  /** Bytes per U-Net activation value (float32: 4, the default; half precision: 2). */
  unetBytesPerValue?: number;
  /** The CPU cache's limit (memory().cpuCache.limitBytes): freed buffers it may keep. */
  cacheLimitBytes?: number;
}

export interface MemoryEstimate {
  /** One denoising step's peak (U-Net passes). */
  unet: number;
  /** Decoding the batch's latents to pixels. */
  vaeDecode: number;
  /** The images kept for the contact sheet. */
  keptImages: number;
  /** Live tensors at the peak: max(unet, vaeDecode) + keptImages. */
  live: number;
  /** What the process may grow by: live plus the allocators' allowance. */
  peak: number;
}

/**
 * What the allocators hold beyond the live tensors over a run of many steps, measured on the
 * tiny test models (P3S sampling, batch 2 with guidance, 20 steps): resident memory rose 126 MB
 * (64 px), 373 MB (128 px), 1.49 GB (256 px; 1.20 GB with the CPU cache off) and 2.54 GB
 * (384 px) above the loaded models, against live peaks of 8, 39, 255 and 952 MB.
 */
const ALLOWANCE = { liveShare: 0.25, cachedLives: 4, baseBytes: 256e6 };

/**
 * The allocators' share: what the CPU cache may keep of freed buffers (at most its limit, and
 * not more than a few live peaks' worth, since it only keeps what was freed), a quarter of the
 * live peak for heap fragmentation, and a fixed base.
 */
export function allocatorAllowance(live: number, cacheLimitBytes = 0): number {
  const cached = Math.min(cacheLimitBytes, ALLOWANCE.cachedLives * live);
  return cached + ALLOWANCE.liveShare * live + ALLOWANCE.baseBytes;
}

/** Pixels (tokens) of a level `i` halvings below (h, w), as the U-Net's strided convs round. */
function levelPixels(h: number, w: number, i: number): number {
  return Math.ceil(h / 2 ** i) * Math.ceil(w / 2 ** i);
}

/** A config value given for all blocks or per block. */
function perLevel(v: number | number[], i: number): number {
  return Array.isArray(v) ? v[i]! : v;
}

/**
 * Values alive in one resnet's scope, per pixel: input, norm, act (cin each); conv1, norm,
 * act, conv2, shortcut/sum (cout each).
 */
function resnetValues(cin: number, cout: number): number {
  return 3 * cin + 5 * cout;
}

/**
 * Values alive in one transformer block's widest scope, per token: the GEGLU feed-forward
 * (8C projection, 4C gate, 4C product, C out) with the block's own input, normed and
 * residual tensors (4C). Its attention adds q, k, v and out (4C) to the score maps.
 */
const TRANSFORMER_VALUES_PER_CHANNEL = 21;

/**
 * Values per channel and pixel that one layer (a resnet with its transformer) leaves alive until
 * the step ends, and one resnet alone. Measured on the tiny test U-Net and the toy U-Net (18–23
 * for a layer with attention, P3S's copy alike), rounded up.
 */
const HELD_PER_LAYER = 24;
const HELD_PER_RESNET = 4;

/** What a U-Net pass leaves alive until the step ends, per image: every layer's tensors. */
function unetHeldValues(unet: UNetShape, h: number, w: number): number {
  let values = 0;
  for (let i = 0; i < unet.block_out_channels.length; i++) {
    const layers = 2 * perLevel(unet.layers_per_block, i) + 1; // down, and up (one more)
    const held = hasAttention(unet, i) ? HELD_PER_LAYER : HELD_PER_RESNET;
    values += layers * held * unet.block_out_channels[i]! * levelPixels(h, w, i);
  }
  return values;
}

/** Whether level i holds transformer blocks (its down block, or the mid block at the bottom). */
function hasAttention(unet: UNetShape, i: number): boolean {
  const last = unet.block_out_channels.length - 1;
  return (
    unet.down_block_types[i]?.startsWith('CrossAttn') === true ||
    (i === last && unet.mid_block_type !== null)
  );
}

/** The largest single layer's working set over the U-Net's levels, per image (values). */
function unetLayerValues(unet: UNetShape, h: number, w: number, keyFactor: number): number {
  const c = unet.block_out_channels;
  let worst = 0;
  for (let i = 0; i < c.length; i++) {
    const p = levelPixels(h, w, i);
    // the up path concatenates a skip: up to twice the level's widest channels come in
    const cin = 2 * Math.max(c[i]!, c[i + 1] ?? 0);
    let values = resnetValues(cin, c[i]!) * p;
    if (hasAttention(unet, i)) {
      const heads = perLevel(unet.attention_head_dim, i);
      const maps = 2 * heads * p * p * keyFactor;
      values = Math.max(values, TRANSFORMER_VALUES_PER_CHANNEL * c[i]! * p + maps);
    }
    worst = Math.max(worst, values);
  }
  return worst;
}

/**
 * P3S's trainable copy, per image: one resnet down and one up per level, with the level's
 * transformers; all it computes (its features f_i among it) is held through the frozen pass.
 */
function copyHeldValues(unet: UNetShape, h: number, w: number): number {
  let values = 0;
  for (let i = 0; i < unet.block_out_channels.length; i++) {
    const transformers = hasAttention(unet, i) ? 2 * perLevel(unet.layers_per_block, i) + 1 : 0;
    values +=
      (2 + transformers) * HELD_PER_LAYER * unet.block_out_channels[i]! * levelPixels(h, w, i);
  }
  return values;
}

/** The largest layer of the VAE decoder, per image (values), at latent size (h, w). */
function vaeDecodeValues(vae: VaeShape, h: number, w: number): number {
  const c = [...vae.block_out_channels].reverse(); // the decoder's channels, bottom up
  const latent = h * w;
  const midAttention = vae.mid_block_add_attention ? 2 * latent * latent + 4 * c[0]! * latent : 0;
  let worst = Math.max(resnetValues(c[0]!, c[0]!) * latent, midAttention);
  for (let j = 0; j < c.length; j++) {
    const p = latent * 4 ** j; // up block j runs at 2^j × the latent side
    const cin = c[Math.max(j - 1, 0)]!;
    worst = Math.max(worst, resnetValues(cin, c[j]!) * p);
    // its upsampler: input, ×2 nearest copy and conv at the next level
    if (j < c.length - 1) worst = Math.max(worst, c[j]! * p * (1 + 2 * 4));
  }
  // conv_norm_out, act, conv_out, and the [0, 1] image steps at full resolution
  const full = latent * 4 ** (c.length - 1);
  return Math.max(worst, (3 * c[c.length - 1]! + 12) * full);
}

/** Pixels per latent: 2^(VAE blocks − 1), as StableDiffusionPipeline.vaeScaleFactor. */
export function vaeScale(vae: VaeShape): number {
  return 2 ** (vae.block_out_channels.length - 1);
}

/** The peak memory, in bytes, one sampling request needs beyond the loaded weights. */
export function estimateSamplingMemory(r: SamplingMemoryRequest): MemoryEstimate {
  const f = vaeScale(r.vae);
  const [h, w] = [Math.ceil(r.height / f), Math.ceil(r.width / f)];
  const bytes = r.unetBytesPerValue ?? 4;
  const unetBatch = r.batch * (r.guided ? 2 : 1);
  const perImage =
    unetHeldValues(r.unet, h, w) +
    unetLayerValues(r.unet, h, w, r.keyFactor ?? 1) +
    (r.copy ? copyHeldValues(r.unet, h, w) : 0);
  const unet = unetBatch * perImage * bytes;
  const vaeDecode = r.batch * vaeDecodeValues(r.vae, h, w) * 4; // the VAE stays float32
  const keptImages = (r.keptImages ?? 0) * 3 * r.height * r.width;
  const live = Math.max(unet, vaeDecode) + keptImages;
  const peak = live + allocatorAllowance(live, r.cacheLimitBytes);
  return { unet, vaeDecode, keptImages, live, peak };
}

/**
 * Image sides a U-Net and VAE pair can take: multiples of the VAE's factor times the U-Net's
 * total downsampling, so every level's size halves exactly (SD 1.5: 8 × 8 = 64).
 */
export function sizeMultiple(unet: UNetShape, vae: VaeShape): number {
  return vaeScale(vae) * 2 ** (unet.block_out_channels.length - 1);
}

/**
 * The largest square side, a multiple of `multiple`, whose estimate (from `estimate(side)`,
 * which must grow with the side) stays within `budget` bytes; 0 when not even one multiple fits.
 */
export function largestFittingSide(
  estimate: (side: number) => number,
  budget: number,
  multiple: number,
  below: number,
): number {
  let lo = 0; // in multiples: lo fits (0 trivially), hi does not
  let hi = Math.max(1, Math.floor(below / multiple)) + 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (estimate(mid * multiple) <= budget) lo = mid;
    else hi = mid;
  }
  return lo * multiple;
}

/** Bytes as a person reads them: 1.5 GB, 820 MB (powers of 1000, as `free -h --si`). */
export function formatBytes(bytes: number): string {
  const units = ['bytes', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let v = bytes;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return u === 0 ? `${Math.round(v)} bytes` : `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}
