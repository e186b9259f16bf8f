// Prompts that name the subject: the identifier [V] (a rare token such as "sks", DreamBooth's
// convention, which P3S follows in Sec. IV) with the class word, "sks dog".
import { existsSync, readFileSync } from 'node:fs';

/** "sks dog". */
export function subjectPhrase(identifier: string, classWord: string): string {
  return `${identifier} ${classWord}`.trim();
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Replaces every `{}` and `[V]` with "identifier classWord". A class word already written
 * after the placeholder is not doubled: "a [V] dog" and "a {} dog" become "a sks dog".
 */
export function fillPrompt(template: string, identifier: string, classWord: string): string {
  const phrase = subjectPhrase(identifier, classWord);
  let out = template;
  if (classWord.trim() !== '') {
    const doubled = new RegExp(`(\\{\\}|\\[V\\])\\s+${escapeRegExp(classWord.trim())}\\b`, 'g');
    out = out.replace(doubled, phrase);
  }
  return out.replace(/\{\}|\[V\]/g, phrase);
}

/** Whether the prompt contains the identifier as a word of its own. */
export function mentionsIdentifier(prompt: string, identifier: string): boolean {
  return new RegExp(
    `(^|[^\\p{L}\\p{N}_])${escapeRegExp(identifier)}($|[^\\p{L}\\p{N}_])`,
    'u',
  ).test(prompt);
}

/** A prompt file: one prompt per line; blank lines and lines starting with # are skipped. */
export function readPromptFile(path: string): string[] {
  if (!existsSync(path)) throw new Error(`Prompt file not found: ${path}`);
  const prompts = readFileSync(path, 'utf8')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  if (prompts.length === 0) throw new Error(`Prompt file ${path} holds no prompts`);
  return prompts;
}
