// Model benchmarks at Stable Diffusion 1.5 / CLIP ViT-L/14 sizes with random weights, on CPU, as
// JSON lines {name, value, unit, ...} (bench/run.ts's format):
//   - one SD 1.5 U-Net forward (batch 2, 64×64 latents, 77 tokens): seconds and peak RSS
//   - SD 1.5's VAE decoder, 64×64 latents -> 512×512 image: seconds and peak RSS
//   - ViT-L/14's vision tower at 224 px: seconds and peak RSS
//   - loading an SD 1.5-sized fp16 U-Net file (1.7 GB) with dtype float16: peak RSS / file size
// Each runs in its own child process (`node dist/bench/models.js --one <name>`), so each peak
// RSS is that model's alone. Slow: several minutes on two cores.
//
//   node dist/bench/models.js            # all, one JSON line each
//   node dist/bench/models.js --one vae  # one, its raw result as JSON
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { getNumThreads, libtorchVersion } from '../src/index.js';
import { benchUNet, SD15_UNET } from './unet.js';
import { benchVaeDecoder } from './vae.js';
import { benchVisionTower } from './clip.js';
import { UNet2DConditionModel } from '../src/models/unet/unet_2d_condition.js';
import { writeTinyUNet } from '../apps/testing/tiny_models.js';
import { jsonChild } from './child.js';

const SELF = fileURLToPath(import.meta.url);
const MiB = 1024 * 1024;
const peakRssMiB = (): number => process.resourceUsage().maxRSS / 1024;

function emit(
  name: string,
  value: number,
  unit: string,
  extra: Record<string, unknown> = {},
): void {
  console.log(JSON.stringify({ name, value: Number(value.toFixed(3)), unit, ...extra }));
}

const round = (v: number, digits = 1): number => Number(v.toFixed(digits));

/** What a child process runs: one measurement, printed as one JSON line. */
const ONE: Record<string, (args: string[]) => Record<string, unknown>> = {
  unet: () => ({ ...benchUNet() }),
  vae: () => ({ ...benchVaeDecoder(1) }),
  vision: () => ({ ...benchVisionTower(3) }),
  /** Writes an SD 1.5-sized U-Net with random weights as float16 safetensors into args[0]. */
  'write-fp16-unet': ([dir]) => {
    const t0 = performance.now();
    writeTinyUNet(dir!, { seed: 0, config: { ...SD15_UNET }, dtype: 'float16', perturb: false });
    return { seconds: (performance.now() - t0) / 1000, peakRssMiB: peakRssMiB() };
  },
  /** UNet2DConditionModel.fromPretrained(args[0], { dtype: 'float16' }): time and peak RSS. */
  'load-fp16-unet': ([dir]) => {
    const baseline = peakRssMiB();
    const t0 = performance.now();
    const unet = UNet2DConditionModel.fromPretrained(dir!, { dtype: 'float16' });
    const seconds = (performance.now() - t0) / 1000;
    const peak = peakRssMiB();
    const rssAfter = process.memoryUsage().rss / MiB;
    const parameters = unet.numParameters();
    unet.dispose();
    return { seconds, baselineMiB: baseline, peakRssMiB: peak, rssAfterMiB: rssAfter, parameters };
  },
};

/** Runs `--one name` in a child process and returns its JSON result. */
const child = (name: string, ...args: string[]): Record<string, unknown> =>
  jsonChild(SELF, ['--one', name, ...args]);

export function benchModels(): void {
  const context = { threads: getNumThreads(), libtorch: libtorchVersion(), device: 'cpu' };

  for (const name of ['unet', 'vae', 'vision']) {
    const r = child(name);
    const extra: Record<string, unknown> = {
      ...context,
      peak_rss_mib: round(Number(r.peakRssMiB)),
    };
    if (r.initSeconds !== undefined) extra.init_s = round(Number(r.initSeconds), 2);
    if (r.parameters !== undefined) extra.parameters = r.parameters;
    if (r.rssBeforeDecodeMiB !== undefined) {
      extra.rss_before_decode_mib = round(Number(r.rssBeforeDecodeMiB));
    }
    emit(String(r.name), Number(r.value), String(r.unit), extra);
  }

  // SD 1.5 fp16 U-Net: peak RSS of loading vs the file's size
  const dir = mkdtempSync(join(tmpdir(), 'p3s-bench-unet-fp16-'));
  try {
    const written = child('write-fp16-unet', dir);
    const fileBytes = statSync(join(dir, 'diffusion_pytorch_model.safetensors')).size;
    const r = child('load-fp16-unet', dir);
    const fileMiB = fileBytes / MiB;
    const peak = Number(r.peakRssMiB);
    const baseline = Number(r.baselineMiB);
    emit('sd15-unet-fp16-load-peak-rss-ratio', peak / fileMiB, 'x', {
      ...context,
      file_mib: round(fileMiB),
      peak_rss_mib: round(peak),
      baseline_rss_mib: round(baseline),
      above_baseline_ratio: round((peak - baseline) / fileMiB, 3),
      rss_after_load_mib: round(Number(r.rssAfterMiB)),
      load_s: round(Number(r.seconds), 2),
      write_s: round(Number(written.seconds), 2),
      parameters: r.parameters,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const isMain =
  process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain) {
  const at = process.argv.indexOf('--one');
  if (at >= 0) {
    const name = process.argv[at + 1] ?? '';
    const run = ONE[name];
    if (!run) {
      throw new Error(`Unknown benchmark "${name}"; allowed: ${Object.keys(ONE).join(', ')}`);
    }
    console.log(JSON.stringify(run(process.argv.slice(at + 2))));
  } else {
    benchModels();
  }
}
