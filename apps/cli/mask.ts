// p3s mask: parses flags and calls runMaskJob.
import { parse, choiceFlag, intFlag, numberFlag, UsageError } from './args.js';
import { Progress } from '../terminal/progress.js';
import { runMaskJob } from '../../src/p3s/supervision/mask_job.js';

const HELP = `Usage: p3s mask <annotation.json> --clip <folder> --out <folder> [options]

Builds a rough mask of the subject you clicked (and of the look-alike you clicked as negative)
in every reference photo from CLIP patch similarity (paper Sec. III-A, Eq. 1–2), and fills the
look-alike with its surroundings (Eq. 3).

Arguments:
  annotation.json      reference photos and clicks (see docs/annotations.md); photos without
                       clicks get them from the annotated ones (propagation)
Options:
  --clip <folder>      CLIP vision weights (transformers layout: config.json + model.safetensors)
  --out <folder>       where to write masks, overlays, filled photos and summary.json
  --layer <n>          CLIP hidden state to compare (-1 last [default], -2 penultimate, i = after layer i)
  --dense <f>          run CLIP on f×f sub-patch shifts of each photo for an f× finer patch grid
                       (default 1; helps small subjects; costs f² forward passes)
  --rule <r>           how the negative click removes the look-alike: compare (default; a patch
                       is the subject's if it is more like the positive click than the negative)
                       or product (Eq. 2 as the paper writes it, M_P·(1 − M_N))
  --refine <m>         guided (default): refine the masks along the photo's edges with a guided
                       filter one patch wide; none: the patch-level masks alone
  --sigma <s>          Gaussian σ of Ψ in patches (default 1)
  --dilate <px>        grow the masks by this many pixels (default 0)
  --no-propagate       require clicks on every photo
  -h, --help           this help`;

export const maskCommand = {
  summary: 'clicks -> masks and filled photos',
  async run(argv: string[]): Promise<void> {
    const { values, positionals } = parse(argv, {
      clip: { type: 'string' },
      out: { type: 'string' },
      layer: { type: 'string' },
      dense: { type: 'string' },
      sigma: { type: 'string' },
      rule: { type: 'string' },
      refine: { type: 'string' },
      dilate: { type: 'string' },
      'no-propagate': { type: 'boolean' },
    });
    if (values.help) {
      console.log(HELP);
      return;
    }
    if (positionals.length !== 1) throw new UsageError('Expected one annotation file');
    if (typeof values.clip !== 'string') throw new UsageError('Expected --clip <folder>');
    if (typeof values.out !== 'string') throw new UsageError('Expected --out <folder>');
    const layer = numberFlag(values, 'layer', -1, Number.isInteger, 'an integer');
    const sigma = numberFlag(values, 'sigma', 1, (v) => v > 0, 'a positive number');
    const dilate = intFlag(values, 'dilate', 0);
    const rule = choiceFlag(values, 'rule', ['compare', 'product'] as const, 'compare');
    const refine = choiceFlag(values, 'refine', ['guided', 'none'] as const, 'guided');
    let progress: Progress | undefined;
    const { summaryPath, summary } = await runMaskJob({
      annotationPath: positionals[0]!,
      clipFolder: values.clip,
      outDir: values.out,
      layer,
      dense: intFlag(values, 'dense', 1, 1),
      sigma,
      dilate,
      rule,
      refine,
      propagate: !values['no-propagate'],
      onProgress: (done, total, name) => {
        progress ??= new Progress('CLIP features', total);
        progress.update(done, name);
      },
    });
    for (const s of summary) {
      console.log(
        `${s.image}: subject ${s.subject.area} px${s.distractor ? `, look-alike ${s.distractor.area} px` : ''}${s.propagated ? ' (clicks propagated)' : ''}`,
      );
    }
    console.log(`Wrote ${summaryPath}`);
  },
};
