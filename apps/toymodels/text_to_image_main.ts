// npm run eval:t2i [-- options]: the base model's text-to-image attribute accuracy on held-out
// captions, judged by the probe (the model card's number, at any sample count), with a contact
// sheet of the samples for a look.
import { join } from 'node:path';
import { UsageError, intFlag, numberFlag, parse } from '../cli/args.js';
import { contactSheet, enlargeImage, writePng } from '../../src/io/image.js';
import { StableDiffusionPipeline } from '../../src/pipelines/stable_diffusion.js';
import { AttributeProbe, PROBE_ATTRIBUTES } from './probe.js';
import { outlineRetention } from './outline.js';
import { generationAccuracy, type CaptionSet } from './quality.js';
import { CHANCE } from '../../src/toyworld/attributes.js';
import { pct } from '../demo/report_tables.js';

const HELP = `npm run eval:t2i -- [options]

Generates images from captions of held-out single-object scenes and reports how often the probe
reads the prompted colour, shape, pattern and background (each, and all four at once).

Options:
  --model <dir>       toy model folder with probe/ (default models/toy)
  --count <n>         held-out captions, one image each (default 128)
  --steps <n>         DDIM steps (default 25)
  --guidance <g>      classifier-free guidance scale (default 5)
  --seed <n>          first seed (default 0)
  --captions <set>    report (default): the captions the model card reports; tuning: other
                      held-out captions, for choosing between models without touching those
  --sheet <file.png>  also write the samples as one contact sheet
  --outline <t,...>   instead: for each timestep t, held-out tuning scenes noised to t and
                      denoised under their own caption (shape kept?) and under the caption with
                      another shape (that shape drawn?): where the U-Net loses the outline`;

async function main(): Promise<void> {
  const { values } = parse(process.argv.slice(2), {
    model: { type: 'string' },
    count: { type: 'string' },
    steps: { type: 'string' },
    guidance: { type: 'string' },
    seed: { type: 'string' },
    sheet: { type: 'string' },
    captions: { type: 'string' },
    outline: { type: 'string' },
  });
  if (values.help) return console.log(HELP);
  const folder = String(values.model ?? 'models/toy');
  const captions = String(values.captions ?? 'report');
  if (captions !== 'report' && captions !== 'tuning') {
    throw new UsageError(`Expected report or tuning for --captions but received ${captions}`);
  }
  const pipeline = StableDiffusionPipeline.fromPretrained(folder, { scheduler: 'ddim' });
  const probe = AttributeProbe.load(join(folder, 'probe'));
  try {
    if (values.outline !== undefined) return await printOutline(pipeline, probe, values);
    const began = performance.now();
    const result = await generationAccuracy(pipeline, probe, {
      count: intFlag(values, 'count', 128, 1),
      steps: intFlag(values, 'steps', 25, 1),
      guidanceScale: numberFlag(values, 'guidance', 5, (v) => v >= 0, 'a number ≥ 0'),
      seed: intFlag(values, 'seed', 0),
      captions: captions as CaptionSet,
    });
    const seconds = (performance.now() - began) / 1000;
    console.log(`${folder}: ${result.count} ${captions} captions, ${seconds.toFixed(0)} s`);
    for (const k of [...PROBE_ATTRIBUTES, 'all'] as const) {
      const share = (100 * result[k]).toFixed(1).padStart(5);
      console.log(`  ${k.padEnd(10)} ${share} %   (chance ${pct(CHANCE[k])})`);
    }
    if (typeof values.sheet === 'string') {
      const tiles = result.images.map((im) => enlargeImage(im, 2));
      await writePng(values.sheet, contactSheet(tiles, 16, { gap: 2, margin: 2 }));
    }
  } finally {
    pipeline.dispose();
    probe.dispose();
  }
}

/** The --outline table: per starting timestep, the probe under the own and the swapped caption. */
async function printOutline(
  pipeline: StableDiffusionPipeline,
  probe: AttributeProbe,
  values: Record<string, unknown>,
): Promise<void> {
  const timesteps = String(values.outline)
    .split(',')
    .map((t) => Number(t.trim()));
  if (!timesteps.every((t) => Number.isSafeInteger(t) && t >= 0))
    throw new UsageError(
      `Expected timesteps like 400,600 for --outline but received ${String(values.outline)}`,
    );
  const rows = await outlineRetention(pipeline, probe, timesteps, {
    count: intFlag(values, 'count', 64, 1),
    steps: intFlag(values, 'steps', 25, 1),
    guidanceScale: numberFlag(values, 'guidance', 5, (v) => v >= 0, 'a number ≥ 0'),
    seed: intFlag(values, 'seed', 0),
  });
  console.log('start t   own caption: colour shape pattern background   other shape: drawn');
  for (const r of rows) {
    const own = [r.own.colour, r.own.shape, r.own.pattern, r.own.background].map((v) =>
      pct(v).padStart(6),
    );
    console.log(
      `${String(r.timestep).padStart(7)}   ${own.join(' ')}   ${pct(r.swapped.shape).padStart(28)}`,
    );
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof UsageError ? `${err.message}\n\n${HELP}` : err);
  process.exitCode = err instanceof UsageError ? 2 : 1;
});
