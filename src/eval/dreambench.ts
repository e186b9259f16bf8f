// DreamBench's evaluation protocol (DreamBooth, Ruiz et al. 2023, Sec. 4.1): 30 subjects, each
// with a class word, and 25 prompts per subject — one list for objects, one for live subjects
// (the cats and dogs). The lists are read from the file the benchmark ships
// (data/dreambench/prompts_and_classes.txt, CC BY 4.0, provenance in references_and_licenses.txt),
// not retyped, and turned into p3s prompt templates: "{0} {1}" (identifier, class) becomes "{}".
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The file carried in the repository. */
export const DREAMBENCH_PROMPTS_FILE = fileURLToPath(
  new URL('../../../data/dreambench/prompts_and_classes.txt', import.meta.url),
);

/** The benchmark's photos carried in the repository: one folder per subject. */
export const DREAMBENCH_PHOTOS = fileURLToPath(
  new URL('../../../data/dreambench', import.meta.url),
);

/** DreamBench calls the subjects of these classes live subjects; the rest are objects. */
const LIVE_CLASSES: ReadonlySet<string> = new Set(['cat', 'dog']);

export type SubjectKind = 'object' | 'live';

export interface DreamBench {
  /** Subject name → class word, in the file's order. */
  classes: ReadonlyMap<string, string>;
  /** The 25 prompt templates of each kind, with "{}" where "identifier class" goes. */
  prompts: Readonly<Record<SubjectKind, readonly string[]>>;
}

export class DreamBenchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DreamBenchError';
  }
}

/** Reads the benchmark's file (default: the one in the repository). */
export function readDreamBench(path: string = DREAMBENCH_PROMPTS_FILE): DreamBench {
  const lines = readFileSync(path, 'utf8').split(/\r?\n/);
  const classes = new Map<string, string>();
  for (const line of lines) {
    const m = /^([a-z0-9_]+),([a-z ]+)$/.exec(line.trim());
    if (m && m[1] !== 'subject_name') classes.set(m[1]!, m[2]!);
  }
  const prompts = {
    object: promptList(lines, 'Object Prompts', path),
    live: promptList(lines, 'Live Subject Prompts', path),
  };
  if (classes.size === 0) throw new DreamBenchError(`No subject,class lines in ${path}`);
  return { classes, prompts };
}

/** The quoted prompts of the `prompt_list = [...]` after `heading`, as "{}" templates. */
function promptList(lines: readonly string[], heading: string, path: string): string[] {
  const start = lines.findIndex((l) => l.trim() === heading);
  if (start < 0) throw new DreamBenchError(`No "${heading}" section in ${path}`);
  const out: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (line.trim() === ']') break;
    const m = /^'(.*)'\.format\(unique_token, class_token\),?$/.exec(line.trim());
    if (m) out.push(m[1]!.replace('{0} {1}', '{}'));
  }
  if (out.length === 0) throw new DreamBenchError(`No prompts under "${heading}" in ${path}`);
  return out;
}

/** Whether DreamBench scores a class as a live subject or an object. */
export function subjectKind(classWord: string): SubjectKind {
  return LIVE_CLASSES.has(classWord) ? 'live' : 'object';
}

/** A subject's class word and its 25 prompt templates; an unknown subject is named with the known ones. */
export function subjectProtocol(
  bench: DreamBench,
  subject: string,
): { classWord: string; kind: SubjectKind; prompts: readonly string[] } {
  const classWord = bench.classes.get(subject);
  if (classWord === undefined)
    throw new DreamBenchError(
      `Unknown DreamBench subject ${JSON.stringify(subject)}; known: ${[...bench.classes.keys()].join(', ')}`,
    );
  const kind = subjectKind(classWord);
  return { classWord, kind, prompts: bench.prompts[kind] };
}
