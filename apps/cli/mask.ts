// p3s mask: parses flags (declared in src/p3s/supervision/mask_settings.ts) and calls runMaskJob.
import { parse, settingsFromFlags, UsageError } from './args.js';
import { Progress } from '../terminal/progress.js';
import { refuseEmptySubjects, runMaskJob } from '../../src/p3s/supervision/mask_job.js';
import { MASK_SETTINGS, type MaskJob } from '../../src/p3s/supervision/mask_settings.js';
import { flagOptions, helpSections } from '../../src/settings/table.js';

const HELP = `Usage: p3s mask <annotation.json> --clip <folder> --out <folder> [options]

Builds a rough mask of the subject you clicked (and of the look-alike you clicked as negative)
in every reference photo from CLIP patch similarity (paper Sec. III-A, Eq. 1–2), and fills the
look-alike with its surroundings (Eq. 3).

Arguments:
  annotation.json          reference photos and clicks (see docs/annotations.md); photos without
                           clicks get them from the annotated ones (propagation)
${helpSections(MASK_SETTINGS)}
  -h, --help               this help`;

export const maskCommand = {
  summary: 'clicks -> masks and filled photos',
  async run(argv: string[]): Promise<void> {
    const { values, positionals } = parse(argv, flagOptions(MASK_SETTINGS));
    if (values.help) {
      console.log(HELP);
      return;
    }
    if (positionals.length !== 1) throw new UsageError('Expected one annotation file');
    const given = settingsFromFlags(MASK_SETTINGS, values);
    let progress: Progress | undefined;
    const job = { ...given, annotationPath: positionals[0]! } as MaskJob;
    const { summaryPath, summary } = await runMaskJob(job, {
      onProgress: (done, total, name) => {
        progress ??= new Progress('CLIP features', total);
        progress.update(done, name);
      },
      check: refuseEmptySubjects, // an empty mask is refused before any file is written
    });
    for (const s of summary) {
      console.log(
        `${s.image}: subject ${s.subject.area} px${s.distractor ? `, look-alike ${s.distractor.area} px` : ''}${s.propagated ? ' (clicks propagated)' : ''}`,
      );
    }
    console.log(`Wrote ${summaryPath}`);
  },
};
