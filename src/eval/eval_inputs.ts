// What `p3s eval` scores: the generated PNGs with the prompt each was made from (from the text
// chunks `p3s generate` writes) and the real photos of the subject.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { extname, resolve } from 'node:path';
import { readImage, readPngText, type RgbImage } from '../io/image.js';
import { ReferencePhotoError, resolveReferencePaths } from '../p3s/references.js';
import { clipTextPrompt } from './metrics.js';

/** Input that cannot be scored: an empty folder, an image without a prompt, an unreadable file. */
export class EvalInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EvalInputError';
  }
}

/** A generated image, the prompt it was made from, and that prompt as CLIP-T reads it. */
export interface GeneratedImage {
  path: string;
  prompt: string;
  identifier: string;
  classWord: string;
  /** The prompt with the identifier replaced by the class word (clipTextPrompt). */
  clipPrompt: string;
}

/** --identifier / --class: given, they win over the chunks. */
export interface SubjectWords {
  identifier: string | null;
  classWord: string | null;
}

/** `p3s generate` writes this overview next to the images; it is not a sample. */
const CONTACT_SHEET = 'contact-sheet.png';

/** The PNG files of the generated folder, in name order. */
export function generatedPaths(folder: string): string[] {
  if (!existsSync(folder) || !statSync(folder).isDirectory())
    throw new EvalInputError(`Generated images folder not found: ${folder}`);
  const files = readdirSync(folder)
    .filter((f) => extname(f).toLowerCase() === '.png' && f !== CONTACT_SHEET)
    .sort();
  if (files.length === 0) throw new EvalInputError(`No generated PNGs in ${folder}`);
  return files.map((f) => resolve(folder, f));
}

/** Every generated PNG with its prompt; refuses an image whose prompt or subject is unknown. */
export async function readGenerated(
  folder: string,
  words: SubjectWords,
): Promise<GeneratedImage[]> {
  const out: GeneratedImage[] = [];
  for (const path of generatedPaths(folder)) {
    let chunks: Record<string, string>;
    try {
      chunks = await readPngText(path);
    } catch (err) {
      throw new EvalInputError(`Cannot read ${path}: ${(err as Error).message}`);
    }
    out.push(describe(path, chunks, words));
  }
  return out;
}

function describe(
  path: string,
  chunks: Record<string, string>,
  words: SubjectWords,
): GeneratedImage {
  const prompt = chunks.prompt;
  if (prompt === undefined || prompt.trim() === '')
    throw new EvalInputError(
      `No prompt known for ${path}: it has no "prompt" text chunk (PNGs from \`p3s generate\` have one)`,
    );
  const identifier = words.identifier ?? chunks.identifier;
  const classWord = words.classWord ?? chunks.class_word;
  if (!identifier || !classWord)
    throw new EvalInputError(
      `No ${identifier ? 'class word' : 'identifier'} known for ${path}: give ${identifier ? '--class' : '--identifier'}`,
    );
  const clipPrompt = clipTextPrompt(prompt, identifier, classWord);
  return { path, prompt, identifier, classWord, clipPrompt };
}

/** The real photos' paths: files as given, folders expanded as training reads them. */
export function realPaths(inputs: readonly string[]): string[] {
  try {
    return resolveReferencePaths(inputs);
  } catch (err) {
    if (err instanceof ReferencePhotoError) throw new EvalInputError(err.message);
    throw err;
  }
}

/** An image, or an EvalInputError naming the file. */
export async function readEvalImage(path: string): Promise<RgbImage> {
  try {
    return await readImage(path);
  } catch (err) {
    const why = (err as Error).message;
    throw new EvalInputError(why.includes(path) ? why : `${path}: ${why}`);
  }
}
