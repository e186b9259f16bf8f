// Validation images while P3S trains: every N steps, each validation prompt's images (seeds
// sampleSeed, sampleSeed + 1 ...) as one contact sheet samples/step-NNNNNN.png. An observer of
// the training loop, so the loop does not know it exists.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { contactSheet, writePng, type RgbImage } from '../io/image.js';
import type { SamplingScheduler } from '../pipelines/stable_diffusion.js';
import type { StepReport, TrainingObserver } from '../training/observer.js';
import { sampleP3S, type SamplingModels } from './generate.js';

export interface SampleSettings {
  /** Every this many steps (0: never). */
  every: number;
  prompts: string[];
  images: number;
  firstSeed: number;
  steps: number;
  guidanceScale: number;
}

export class SampleWriter implements TrainingObserver {
  /** The sheets written so far. */
  readonly sheets: string[] = [];

  constructor(
    private readonly models: SamplingModels,
    private readonly scheduler: SamplingScheduler,
    private readonly settings: SampleSettings,
    private readonly dir: string,
    private readonly log: (message: string) => void,
  ) {}

  async onStep(report: StepReport): Promise<void> {
    if (this.settings.every === 0 || report.step % this.settings.every !== 0) return;
    const path = await this.write(report.step);
    this.sheets.push(path);
    this.log(`Samples ${path}`);
  }

  private async write(step: number): Promise<string> {
    const { models, settings: s } = this;
    mkdirSync(this.dir, { recursive: true });
    const n = models.condition.latent.shape[0]!;
    const [h, w] = [models.condition.latent.shape[2]!, models.condition.latent.shape[3]!];
    const seeds = Array.from({ length: s.images }, (_, k) => s.firstSeed + k);
    const images: RgbImage[] = [];
    for (const prompt of s.prompts) {
      images.push(
        ...(await sampleP3S(models, this.scheduler, {
          prompt,
          negativePrompt: '',
          seeds,
          referenceIndices: seeds.map((_, k) => k % n),
          steps: s.steps,
          guidanceScale: s.guidanceScale,
          eta: 0,
          latentSize: [h, w],
        })),
      );
    }
    const path = join(this.dir, `step-${String(step).padStart(6, '0')}.png`);
    await writePng(path, contactSheet(images, seeds.length, { gap: 2 }), {
      text: {
        step: String(step),
        prompts: s.prompts.join('\n'),
        seeds: seeds.join(','),
        steps: String(s.steps),
        guidance_scale: String(s.guidanceScale),
      },
    });
    return path;
  }
}
