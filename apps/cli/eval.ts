// p3s eval: parses flags (declared in src/eval/eval_settings.ts), calls scoreImages, writes
// eval.json and prints the table.
import { join } from 'node:path';
import { parse, settingsFromFlags, UsageError } from './args.js';
import { Progress } from '../terminal/progress.js';
import { scoreImages, type ScoreOptions } from '../../src/eval/score.js';
import { EVAL_SETTINGS, type EvalConfig } from '../../src/eval/eval_settings.js';
import { formatScoreTable, writeEvalJson } from '../../src/eval/eval_report.js';
import { writeEvalPage } from '../../src/eval/eval_page.js';
import { flagOptions, helpSections } from '../../src/settings/table.js';
import { readDreamBench, subjectProtocol } from '../../src/eval/dreambench.js';

const HELP = `Usage: p3s eval --generated <folder> --real <path>... [--clip <folder>] [--dino <folder>] [options]

Scores generated images of a subject against real photos of it with DreamBench's metrics
(DreamBooth, Ruiz et al. 2023; docs/eval.md): CLIP-I and CLIP-Iv (image embeddings of generated
vs real), CLIP-T (each image vs its prompt, the identifier replaced by the class word) and, with
--dino, DINO and DINO-v. Overall and per prompt; cosines in [-1, 1], not ×100. Without --dino the
DINO columns are "not measured" (null in eval.json), never 0. The defaults are the shipped toy
models, which only make sense for images of the toy world; for SD 1.5 pass --clip with a
transformers CLIP folder (openai/clip-vit-large-patch14) and --dino facebook/dino-vits16.

${helpSections(EVAL_SETTINGS)}
  -h, --help               this help

DreamBench's protocol (25 prompts per subject, 4 images each):
  p3s eval --dreambench-prompts <subject> > prompts.txt
prints the subject's 25 prompts ("{}" for the identifier and class word) as a prompts file for
\`p3s generate --prompts prompts.txt --images 4\`; <subject> is a DreamBench folder name (dog,
backpack, ...), which decides the class word (train with --class <it>) and whether the
live-subject list applies.`;

/** The subject's DreamBench prompts as a prompts file (comment lines say what they are). */
function printDreamBenchPrompts(subject: string): void {
  const { classWord, kind, prompts } = subjectProtocol(readDreamBench(), subject);
  console.log(`# DreamBench prompts for ${subject}: class "${classWord}", ${kind} subject`);
  console.log(`# train with --class "${classWord}"; p3s generate --prompts <this file> --images 4`);
  for (const p of prompts) console.log(p);
}

/** A progress bar on stderr, over the batches of model forwards. */
function terminalReport(): ScoreOptions {
  let progress: Progress | undefined;
  return {
    onProgress: (p) => {
      progress ??= new Progress('eval', p.total);
      progress.update(p.done, p.detail);
    },
  };
}

export const evalCommand = {
  summary: 'generated images + reference photos -> CLIP-I, CLIP-T, DINO',
  async run(argv: string[]): Promise<void> {
    const { values, positionals } = parse(argv, {
      ...flagOptions(EVAL_SETTINGS),
      'dreambench-prompts': { type: 'string' },
    });
    if (values.help) {
      console.log(HELP);
      return;
    }
    const subject = values['dreambench-prompts'];
    if (typeof subject === 'string') return printDreamBenchPrompts(subject);
    if (positionals.length > 0)
      throw new UsageError(`Unexpected argument ${positionals[0]}; real photos go after --real`);
    const given = settingsFromFlags(EVAL_SETTINGS, values) as EvalConfig;
    const result = await scoreImages(given, terminalReport());
    const out = given.outFile ?? join(given.generated, 'eval.json');
    writeEvalJson(out, result);
    const page = `${out.replace(/\.json$/i, '')}.html`;
    await writeEvalPage(page, result);
    console.log(formatScoreTable(result));
    console.log(`Scores: ${out}\nPage: ${page}`);
  },
};
