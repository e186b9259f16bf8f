// p3s generate: parses flags (declared in src/p3s/generate_settings.ts) and calls
// generateWithAdapter: P3S's generation, or a baseline's when --adapter is a baseline's output.
import { parse, settingsFromFlags, UsageError } from './args.js';
import { Progress } from '../terminal/progress.js';
import type { GenerateRunOptions } from '../../src/p3s/generate.js';
import { GENERATE_SETTINGS, type GenerateP3SConfig } from '../../src/p3s/generate_settings.js';
import { flagOptions, helpSections } from '../../src/settings/table.js';
import { generateWithAdapter } from '../../src/baselines/generate.js';

const HELP = `Usage: p3s generate --base <folder> --adapter <file> --out <folder> (--prompt <text>... | --prompts <file>) [options]

Generates images of the trained subject: the base model with the adapter's trainable-copy
features injected at every step (weight ε_t of Eq. 9–10), DDIM sampling with classifier-free
guidance (the subject condition goes to both halves of the guidance batch). Each PNG carries
its parameters in text chunks; contact-sheet.png shows them all (a row per prompt).
--adapter also takes what \`p3s train --method\` writes for a baseline — a DreamBooth unet
folder, a Textual Inversion learned_embeds file, Custom Diffusion weights — recognised by
content; then {} in prompts is the method's token and class word, and the P3S-only options do
nothing (with a warning).

${helpSections(GENERATE_SETTINGS)}
  -h, --help               this help`;

/** Warnings and a progress bar on stderr. */
function terminalReport(): GenerateRunOptions {
  const tty = process.stderr.isTTY === true;
  let progress: Progress | undefined;
  return {
    onWarning: (w) => process.stderr.write(`${tty ? '\r\x1b[2K' : ''}warning: ${w}\n`),
    onProgress: (p) => {
      progress ??= new Progress('generate', p.total);
      progress.update(p.done, `step ${p.step}/${p.steps} "${p.prompt}"`);
    },
  };
}

export const generateCommand = {
  summary: 'base model + adapter -> images of the subject',
  async run(argv: string[]): Promise<void> {
    const { values, positionals } = parse(argv, flagOptions(GENERATE_SETTINGS));
    if (values.help) {
      console.log(HELP);
      return;
    }
    if (positionals.length > 0)
      throw new UsageError(`Unexpected argument ${positionals[0]}; prompts go after --prompt`);
    const given = settingsFromFlags(GENERATE_SETTINGS, values);
    if (given.prompts == null && given.promptFile == null)
      throw new UsageError('Expected --prompt <text> or --prompts <file>');
    const config = given as GenerateP3SConfig;
    const result = await generateWithAdapter(config, terminalReport());
    for (const img of result.images) console.log(img.path);
    if (result.contactSheetPath) console.log(`Contact sheet: ${result.contactSheetPath}`);
  },
};
