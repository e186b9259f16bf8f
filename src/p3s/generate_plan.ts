// The plan of a generation: settings validated, the adapter's metadata read, prompts filled and
// checked, seeds drawn up — everything that can be refused before a model is loaded.
import { existsSync } from 'node:fs';
import { ModelLoadError } from '../models/loading.js';
import { refuseSetting, resolveSettings } from '../settings/table.js';
import { readAdapterMetadata, type AdapterMetadata } from './adapter/adapter_io.js';
import {
  GENERATE_SETTINGS,
  type GenerateP3SConfig,
  type GenerateSettings,
} from './generate_settings.js';
import { fillPrompt, mentionsIdentifier, promptProblem, readPromptFile } from './prompts.js';

/** The prompts of a config, templates filled; warnings for those without the identifier. */
export function resolvePrompts(
  config: Pick<GenerateP3SConfig, 'prompts' | 'promptFile'>,
  identifier: string,
  classWord: string,
): { prompts: string[]; warnings: string[] } {
  const raw = [...(config.prompts ?? [])];
  raw.forEach((p, i) => checkPrompt('prompts', p, `prompt ${i + 1}`));
  if (config.promptFile != null) raw.push(...readPromptFile(config.promptFile));
  if (raw.length === 0) throw new Error('Expected at least one prompt (prompts or promptFile)');
  const warnings: string[] = [];
  const prompts = raw.map((p) => {
    const filled = fillPrompt(p, identifier, classWord);
    if (!mentionsIdentifier(filled, identifier)) {
      warnings.push(
        `Prompt "${filled}" does not contain the identifier "${identifier}": the text does not name the subject ` +
          `(the trainable copy still injects it); write "{}" or "[V]" where "${identifier} ${classWord}" belongs`,
      );
    }
    return filled;
  });
  return { prompts, warnings };
}

/** Refuses a prompt the images' text chunks or the tokenizer cannot take (see promptProblem). */
function checkPrompt(key: 'prompts' | 'negativePrompt', prompt: string, which: string): void {
  const problem = promptProblem(prompt);
  if (problem)
    refuseSetting(
      GENERATE_SETTINGS,
      key,
      'a prompt of plain text (no control characters, valid Unicode)',
      prompt,
      `${which} ${problem}`,
    );
}

/** The adapter's identifier and class word go into every prompt: refused like a prompt. */
function checkSubjectWords(metadata: AdapterMetadata, adapter: string): void {
  const problem = promptProblem(`${metadata.identifier} ${metadata.classWord}`);
  if (problem)
    throw new RangeError(
      `The identifier and class word in ${adapter}'s metadata ${problem}: it cannot go into a prompt`,
    );
}

/** What a generation will do, settled before any model is loaded. */
export interface Plan {
  settings: GenerateSettings;
  metadata: AdapterMetadata;
  prompts: string[];
  /** Image k of every prompt uses seeds[k]. */
  seeds: number[];
  batchSize: number;
  warnings: string[];
}

export function planGeneration(
  config: GenerateP3SConfig,
  onWarning?: (message: string) => void,
): Plan {
  const settings = resolveSettings(GENERATE_SETTINGS, config);
  if (settings.subjectGuidanceScale !== null && !settings.subjectGuidance)
    refuseSetting(
      GENERATE_SETTINGS,
      'subjectGuidanceScale',
      'no value',
      settings.subjectGuidanceScale,
      'it scales subject guidance: give subjectGuidance too',
    );
  if (!existsSync(settings.baseModel))
    throw new ModelLoadError(`Base model folder not found: ${settings.baseModel}`);
  const metadata = readAdapterMetadata(settings.adapter); // a wrong file fails before loading models
  checkSubjectWords(metadata, settings.adapter);
  checkPrompt('negativePrompt', settings.negativePrompt, 'the negative prompt');
  const seeds =
    settings.seeds ?? Array.from({ length: settings.numImages }, (_, k) => settings.seed + k);
  const { prompts, warnings } = resolvePrompts(settings, metadata.identifier, metadata.classWord);
  for (const w of warnings) onWarning?.(w);
  return {
    settings,
    metadata,
    prompts,
    seeds,
    batchSize: settings.batchSize ?? seeds.length,
    warnings,
  };
}
