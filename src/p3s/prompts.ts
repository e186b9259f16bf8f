// Prompts that name the subject: the identifier [V] (a rare token such as "sks", DreamBooth's
// convention, which P3S follows in Sec. IV) with the class word, "sks dog".
import { existsSync, readFileSync } from 'node:fs';

/** The identifier when none is given: DreamBooth's rare token, the one SD 1.5 users know. */
export const DEFAULT_IDENTIFIER = 'sks';

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

/**
 * Why a text cannot be a prompt, or null. Prompts go into each PNG's text chunks, which cannot
 * hold a NUL, and through the tokenizer: a control character (tab and newline aside) or a lone
 * UTF-16 surrogate is a corrupt input, refused before any image is made.
 */
export function promptProblem(text: string): string | null {
  const control = /[\u0000-\u0008\u000b-\u001f\u007f]/.exec(text);
  if (control) {
    const code = control[0].charCodeAt(0);
    const hex = code.toString(16).toUpperCase().padStart(4, '0');
    return `holds the control character U+${hex}${code === 0 ? ' (NUL)' : ''} at character ${control.index + 1}`;
  }
  const lone = /\p{Cs}/u.exec(text);
  if (lone)
    return `holds a lone UTF-16 surrogate at character ${lone.index + 1} (not valid Unicode)`;
  return null;
}

/** The file's text, refusing bytes that are not UTF-8 (read leniently they would become U+FFFD). */
function readUtf8(path: string): string {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new Error(`Cannot read prompt file ${path}: ${(err as Error).message}`);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new Error(`Prompt file ${path} is not UTF-8 text: save it as UTF-8`);
  }
}

/**
 * A prompt file: one prompt per line; blank lines and lines starting with # are skipped. Every
 * line is checked (promptProblem) before any prompt is used.
 */
export function readPromptFile(path: string): string[] {
  if (!existsSync(path)) throw new Error(`Prompt file not found: ${path}`);
  const prompts: string[] = [];
  readUtf8(path)
    .split(/\r?\n/)
    .forEach((raw, i) => {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) return;
      const problem = promptProblem(line);
      if (problem) throw new RangeError(`Prompt file ${path}: line ${i + 1} ${problem}`);
      prompts.push(line);
    });
  if (prompts.length === 0) throw new Error(`Prompt file ${path} holds no prompts`);
  return prompts;
}
