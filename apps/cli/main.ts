#!/usr/bin/env node
// p3s command line: each command parses its flags and calls a library function.
import { UsageError } from './args.js';
import { SettingError } from '../../src/settings/kinds.js';
import { inFlagTerms, type Table } from '../../src/settings/table.js';

interface Command {
  summary: string;
  run(argv: string[]): Promise<void>;
}

/** A command and the settings table its flags come from. */
interface Loaded {
  command: Command;
  settings: Table;
}

const COMMANDS: Record<string, () => Promise<Loaded>> = {
  mask: async () => ({
    command: (await import('./mask.js')).maskCommand,
    settings: (await import('../../src/p3s/supervision/mask_settings.js')).MASK_SETTINGS,
  }),
  train: async () => ({
    command: (await import('./train.js')).trainCommand,
    settings: (await import('../../src/p3s/train_settings.js')).TRAIN_SETTINGS,
  }),
  generate: async () => ({
    command: (await import('./generate.js')).generateCommand,
    settings: (await import('../../src/p3s/generate_settings.js')).GENERATE_SETTINGS,
  }),
  eval: async () => ({
    command: (await import('./eval.js')).evalCommand,
    settings: (await import('../../src/eval/eval_settings.js')).EVAL_SETTINGS,
  }),
  dreambench: async () => ({
    command: (await import('./dreambench.js')).dreambenchCommand,
    settings: (await import('../../src/eval/dreambench_settings.js')).DREAMBENCH_SETTINGS,
  }),
  demo: async () => ({
    command: (await import('./demo.js')).demoCommand,
    settings: (await import('../demo/demo.js')).DEMO_SETTINGS,
  }),
  serve: async () => {
    const { serveCommand, SERVE_SETTINGS } = await import('./serve.js');
    return { command: serveCommand, settings: SERVE_SETTINGS };
  },
};

/**
 * Runs a command; a setting the library refuses after the flags were read (--steps beyond the
 * scheduler's timesteps) is a usage error naming the flag the user typed.
 */
async function runCommand({ command, settings }: Loaded, argv: string[]): Promise<void> {
  try {
    await command.run(argv);
  } catch (err) {
    if (err instanceof SettingError) throw new UsageError(inFlagTerms(err, settings).message);
    throw err;
  }
}

function usage(): string {
  return `p3s — selective, subject-driven image generation from point labels (P3S-Diffusion)

Usage: p3s <command> [options]     (p3s <command> --help for a command's options)

Commands:
  mask       clicks on reference photos -> subject and distractor masks, filled photos
  train      filled reference photos -> a P3S adapter (fine-tuning, checkpoints, resume)
  generate   base model + adapter + prompts -> images of the subject
  eval       generated images + reference photos -> CLIP-I, CLIP-T, DINO (DreamBench's metrics)
  dreambench DreamBench's protocol: train, generate and score every subject with each method
  demo       the whole method on the embedded toy models, with an HTML report
  serve      the web app: photos, clicks, masks, training and generation in a browser
  info       the libtorch p3s runs on, threads, CUDA`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name === undefined ? 1 : 0;
  }
  if (name === 'info') {
    const { libtorchVersion, getNumThreads, cuda } = await import('../../src/engine/index.js');
    console.log(
      JSON.stringify(
        {
          libtorch: libtorchVersion(),
          threads: getNumThreads(),
          cuda: cuda.isAvailable(),
          cudaDevices: cuda.deviceCount(),
        },
        null,
        2,
      ),
    );
    return 0;
  }
  const load = COMMANDS[name];
  if (!load) {
    console.error(`p3s: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  await runCommand(await load(), rest);
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      console.error(`p3s: ${err.message} (see --help)`);
      process.exitCode = 2;
    } else {
      console.error(`p3s: ${err instanceof Error ? err.message : String(err)}`);
      if (process.env.P3S_DEBUG) console.error(err);
      process.exitCode = 1;
    }
  },
);
