// p3s generate: parses flags and calls generateP3S.
import { INJECTION_MODES } from '../../src/p3s/adapter/injection.js';
import { parse, intFlag, numberFlag, UsageError, choiceFlag } from './args.js';
import { Progress } from '../terminal/progress.js';
import { generateP3S, type GenerateP3SConfig } from '../../src/p3s/generate.js';
import { parseWeightCurve } from '../../src/p3s/adapter/weight_schedule.js';

const HELP = `Usage: p3s generate --base <folder> --adapter <file> --out <folder> (--prompt <text>... | --prompts <file>) [options]

Generates images of the trained subject: the base model with the adapter's trainable-copy
features injected at every step (weight ε_t of Eq. 9–10), DDIM sampling with classifier-free
guidance (the subject condition goes to both halves of the guidance batch). Each PNG carries
its parameters in text chunks; contact-sheet.png shows them all (a row per prompt).

Inputs:
  --base <folder>          the base model (diffusers layout) the adapter was trained on
  --adapter <file>         adapter.safetensors written by \`p3s train\`
  --out <folder>           where the PNGs go
Prompts:
  --prompt <text>          a prompt (repeatable); {} or [V] stand for "<identifier> <class>",
                           e.g. --prompt "a {} on the beach" -> "a sks dog on the beach"
  --prompts <file>         one prompt per line (blank lines and # comments skipped)
  --negative <text>        negative prompt (default: none, the empty prompt)
  A prompt without the identifier gets a warning: the text then does not name the subject.
Sampling:
  --images <n>             images per prompt (default 4)
  --seed <n>               image k of every prompt uses seed n + k (default 0)
  --seeds <list>           explicit seeds, comma-separated (one image each; overrides --images)
  --steps <n>              DDIM steps (default 50)
  --guidance <w>           classifier-free guidance scale (default 7.5; ≤ 1 turns it off)
  --eta <η>                DDIM η (default 0: deterministic)
  --latent-bias <s>        add s × the reference's latent to the starting noise (Sec. III's
                           "latent bias towards the subject"; default 0: none)
  --subject-guidance       subject condition in the conditional half of the guidance batch
                           only, so guidance amplifies the subject as well as the text (default:
                           both halves; see docs/p3s.md)
  --size <px>              image width and height (default: the adapter's training resolution)
  --batch-size <n>         images per forward pass (default: all images of a prompt)
P3S settings (default: the adapter's):
  --lambda <x>             λ of Eq. 7
  --weight-curve <c>       ε_t of Eq. 10: paper[:α,β,k], fixed:<w> (fixed:0 = plain base model),
                           quadratic-increasing, quadratic-decreasing
  --injection <mode>       decoupled, joint or aligned (default: the adapter's own)
  --reference <i|cycle>    which reference conditions the images: index i, or cycle (default:
                           image k uses reference k mod N)
  --no-contact-sheet       skip contact-sheet.png
  -h, --help               this help`;

export const generateCommand = {
  summary: 'base model + adapter -> images of the subject',
  async run(argv: string[]): Promise<void> {
    const { values, positionals } = parse(argv, {
      base: { type: 'string' },
      adapter: { type: 'string' },
      out: { type: 'string' },
      prompt: { type: 'string', multiple: true },
      prompts: { type: 'string' },
      negative: { type: 'string' },
      images: { type: 'string' },
      seed: { type: 'string' },
      seeds: { type: 'string' },
      steps: { type: 'string' },
      guidance: { type: 'string' },
      eta: { type: 'string' },
      'latent-bias': { type: 'string' },
      'subject-guidance': { type: 'boolean' },
      size: { type: 'string' },
      'batch-size': { type: 'string' },
      lambda: { type: 'string' },
      'weight-curve': { type: 'string' },
      injection: { type: 'string' },
      reference: { type: 'string' },
      'no-contact-sheet': { type: 'boolean' },
    });
    if (values.help) {
      console.log(HELP);
      return;
    }
    if (positionals.length > 0)
      throw new UsageError(`Unexpected argument ${positionals[0]}; prompts go after --prompt`);
    const str = (name: string): string | undefined => values[name] as string | undefined;
    for (const name of ['base', 'out']) {
      if (str(name) === undefined) throw new UsageError(`Expected --${name} <folder>`);
    }
    if (str('adapter') === undefined) throw new UsageError('Expected --adapter <file>');
    const prompts = values.prompt as string[] | undefined;
    if (prompts === undefined && str('prompts') === undefined)
      throw new UsageError('Expected --prompt <text> or --prompts <file>');
    let seeds: number[] | undefined;
    if (str('seeds') !== undefined) {
      seeds = str('seeds')!
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '')
        .map(Number);
      if (seeds.length === 0 || !seeds.every((s) => Number.isSafeInteger(s) && s >= 0))
        throw new UsageError(
          `Expected non-negative integers for --seeds but received ${str('seeds')}`,
        );
    }
    const injection =
      values.injection === undefined
        ? undefined
        : choiceFlag(values, 'injection', INJECTION_MODES, 'decoupled');
    const curve = str('weight-curve');
    if (curve !== undefined) {
      try {
        parseWeightCurve(curve);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
    }
    let reference: number | 'cycle' | undefined;
    const ref = str('reference');
    if (ref !== undefined) {
      if (ref === 'cycle') reference = 'cycle';
      else {
        reference = Number(ref);
        if (!Number.isSafeInteger(reference) || reference < 0)
          throw new UsageError(`Expected an index or cycle for --reference but received ${ref}`);
      }
    }
    const size = values.size === undefined ? undefined : intFlag(values, 'size', 0, 1);
    const tty = process.stderr.isTTY === true;
    let progress: Progress | undefined;
    const config: GenerateP3SConfig = {
      baseModel: str('base')!,
      adapter: str('adapter')!,
      outDir: str('out')!,
      prompts,
      promptFile: str('prompts'),
      negativePrompt: str('negative'),
      numImages: intFlag(values, 'images', 4, 1),
      seed: intFlag(values, 'seed', 0),
      seeds,
      steps: intFlag(values, 'steps', 50, 1),
      guidanceScale: numberFlag(values, 'guidance', 7.5),
      eta: numberFlag(values, 'eta', 0, (v) => v >= 0, 'a non-negative number'),
      latentBias: numberFlag(
        values,
        'latent-bias',
        0,
        (v) => Number.isFinite(v) && v >= 0,
        'a non-negative number',
      ),
      subjectGuidance: values['subject-guidance'] === true,
      height: size,
      width: size,
      batchSize:
        values['batch-size'] === undefined ? undefined : intFlag(values, 'batch-size', 1, 1),
      lambda: values.lambda === undefined ? undefined : numberFlag(values, 'lambda', 0.2),
      weightCurve: curve,
      injectionMode: injection,
      reference,
      contactSheet: values['no-contact-sheet'] !== true,
      onWarning: (w) => process.stderr.write(`${tty ? '\r\x1b[2K' : ''}warning: ${w}\n`),
      onProgress: (p) => {
        progress ??= new Progress('generate', p.total);
        progress.update(p.done, `step ${p.step}/${p.steps} "${p.prompt}"`);
      },
    };
    const result = await generateP3S(config);
    for (const img of result.images) console.log(img.path);
    if (result.contactSheetPath) console.log(`Contact sheet: ${result.contactSheetPath}`);
  },
};
