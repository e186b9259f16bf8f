// Validation images while P3S trains: every N steps, each validation prompt's images (seeds
// sampleSeed, sampleSeed + 1 ...) as one contact sheet samples/step-NNNNNN.png. An observer of
// the training loop, so the loop does not know it exists.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { contactSheet, writePng, type RgbImage } from '../io/image.js';
import { writingTo } from '../training/errors.js';
import { NonFiniteError, type SamplingScheduler } from '../pipelines/stable_diffusion.js';
import type { StepReport, TrainingObserver } from '../training/observer.js';
import { sampleP3S, type SamplingModels } from './generate.js';
import { promptProblem } from './prompts.js';

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
  ) {
    // before training starts, not at the first sheet (a NUL cannot go into its text chunk)
    settings.prompts.forEach((p, i) => {
      const problem = promptProblem(p);
      if (problem) throw new RangeError(`Validation prompt ${i + 1} ${problem}`);
    });
  }

  async onStep(report: StepReport): Promise<void> {
    if (this.settings.every === 0 || report.step % this.settings.every !== 0) return;
    try {
      const path = await this.write(report.step);
      this.sheets.push(path);
      this.log(`Samples ${path}`);
    } catch (err) {
      // a black sheet says nothing; whether the run diverged is the training loop's to judge
      if (!(err instanceof NonFiniteError)) throw err;
      this.log(`Samples at step ${report.step} not written: ${err.message}`);
    }
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
    const text = {
      step: String(step),
      prompts: s.prompts.join('\n'),
      seeds: seeds.join(','),
      steps: String(s.steps),
      guidance_scale: String(s.guidanceScale),
    };
    const sheet = contactSheet(images, seeds.length, { gap: 2 });
    await writingTo(path, 'write the samples', () => writePng(path, sheet, { text }));
    return path;
  }
}
