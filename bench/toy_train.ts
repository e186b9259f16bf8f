// One training step of the toy U-Net (batch 32, as the unet stage of `npm run train:toy`), with
// the native core's buffer cache and without it (P3S_CPU_CACHE_MB=0), each in its own process
// since the cache is set up when the native core loads.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { randint, randn } from '../src/engine/creation.js';
import { manualSeed } from '../src/engine/random.js';
import { tidy } from '../src/engine/scope.js';
import { mseLoss } from '../src/nn/functional.js';
import { UNet2DConditionModel } from '../src/models/unet/unet_2d_condition.js';
import { AdamW } from '../src/optim/adam.js';
import { TOY_UNET_CONFIG } from '../apps/toymodels/configs.js';

const STEPS = 8;

/** Median milliseconds of a U-Net training step on random latents and contexts. */
function measureStep(): number {
  manualSeed(0);
  const unet = new UNet2DConditionModel(TOY_UNET_CONFIG);
  const optimizer = new AdamW(unet.parameters(), { lr: 1e-4 });
  const x = randn([32, 4, 16, 16]);
  const context = randn([32, 77, TOY_UNET_CONFIG.cross_attention_dim as number]);
  const times: number[] = [];
  for (let i = 0; i < STEPS + 2; i++) {
    const began = performance.now();
    tidy(() => {
      optimizer.zeroGrad();
      const t = randint(0, 1000, [32]);
      mseLoss(unet.forward(x, t, context), x).backward();
      optimizer.step();
    });
    if (i >= 2) times.push(performance.now() - began);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

function stepInChild(cacheMb: string | undefined): number {
  const env = { ...process.env };
  if (cacheMb === undefined) delete env.P3S_CPU_CACHE_MB;
  else env.P3S_CPU_CACHE_MB = cacheMb;
  const r = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child'], {
    env,
    encoding: 'utf8',
  });
  if (r.status !== 0) throw new Error(`toy training bench failed: ${r.stderr}`);
  return Number(r.stdout.trim());
}

export function benchToyTraining(): Record<string, unknown>[] {
  const cached = stepInChild(undefined);
  const uncached = stepInChild('0');
  return [
    {
      name: 'toy.unet.train_step',
      value: Number(cached.toFixed(1)),
      unit: 'ms',
      reference: Number(uncached.toFixed(1)),
      referenceIs: 'the same step with the buffer cache off (P3S_CPU_CACHE_MB=0)',
      ratio: Number((cached / uncached).toFixed(3)),
    },
  ];
}

if (process.argv[2] === '--child') console.log(measureStep());
