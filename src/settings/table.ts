// Settings declared once. A command family (train, generate, mask, demo) lists its settings in
// one table — key, kind, default, flag, help, and whether a value belongs to a training run's
// identity or a file's metadata — and everything else is derived from it: the CLI's flags and
// --help, the one validation at the boundary into typed values, the run identity a checkpoint
// must match, the metadata an adapter records, and what an older checkpoint ran with for a
// setting it predates. Adding a setting touches its table and the code that uses it.
import { KindError, SettingError, type Kind } from './kinds.js';

export interface Setting<K extends string = string, T = unknown, G = T> {
  /** The API name: the key in config objects and in the resolved values. */
  readonly key: K;
  readonly kind: Kind<T, G>;
  readonly default: NoInfer<T>;
  /** The CLI flag, without dashes; absent: the setting is not a flag. */
  readonly flag?: string;
  /** The flag's value in --help: "<n>", "<file>" (default "<x>"; none for booleans). */
  readonly placeholder?: string;
  /** --help section. */
  readonly group: string;
  /** What --help says; the default is appended unless `defaultHelp` says otherwise. */
  readonly help: string;
  /** --help's default: text to show instead of the value, or '' for none. */
  readonly defaultHelp?: string;
  /** Must be given (inputs such as the base model); the default is then never used. */
  readonly required?: boolean;
  /** The snake_case name in a run's identity and in file metadata (default: key in snake_case). */
  readonly record?: string;
  /** Part of a training run's identity (a checkpoint of another value is refused). */
  readonly identity?: boolean | ((value: T) => unknown);
  /** Recorded in the adapter's training metadata. */
  readonly metadata?: boolean | ((value: T) => unknown);
  /** The value a checkpoint written before this setting existed ran with. */
  readonly olderDefault?: unknown;
}

/** Declares one setting (keeps its key's literal type for ValuesOf). */
export function setting<const K extends string, T, G>(s: Setting<K, T, G>): Setting<K, T, G> {
  return s;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Table = readonly Setting<string, any, any>[];

/**
 * Another command's setting, declared there, in this command's --help section: a command that
 * drives others (p3s dreambench) takes their settings as they are instead of declaring them twice.
 */
export function settingOf<T extends Table, K extends T[number]['key']>(
  table: T,
  key: K,
  group: string,
): Extract<T[number], { key: K }> {
  const found = table.find((s) => s.key === key);
  if (found === undefined) throw new Error(`No setting "${key}" in the table`);
  return { ...found, group } as Extract<T[number], { key: K }>;
}

/** The resolved values of a table: one typed field per setting. */
export type ValuesOf<T extends Table> = {
  [S in T[number] as S['key']]: S extends Setting<string, infer V, unknown> ? V : never;
};

/** What a caller may give: any subset, undefined meaning "the default". */
export type GivenOf<T extends Table> = {
  [S in T[number] as S['key']]?: (S['kind'] extends Kind<unknown, infer G> ? G : never) | undefined;
};

const snake = (key: string): string => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** A setting's name in a file or a run's identity. */
export const recordName = (s: Setting): string => s.record ?? snake(s.key);

/** How errors name a setting: its flag for the CLI, its key for the API. */
export type Naming = 'api' | 'cli';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const nameOf = (s: Setting<string, any>, naming: Naming): string =>
  naming === 'cli' && s.flag ? `--${s.flag}` : s.key;

function checked<T>(s: Setting<string, T>, run: () => T, naming: Naming): T {
  try {
    return run();
  } catch (err) {
    if (err instanceof KindError)
      throw new SettingError(s.kind.expected, nameOf(s, naming), err.received, {
        key: s.key,
        note: err.note,
      });
    throw err;
  }
}

/**
 * Refuses a resolved value that a check beyond its kind found wrong (steps against the
 * scheduler's timesteps, once the model is loaded): a SettingError naming the setting by key,
 * which a command line rewords with the flag (inFlagTerms).
 */
export function refuseSetting(
  table: Table,
  key: string,
  expected: string,
  received: unknown,
  note?: string,
): never {
  const s = table.find((x) => x.key === key);
  if (!s) throw new Error(`refuseSetting: no setting "${key}" in this table`);
  throw new SettingError(expected, s.key, received, { key: s.key, note });
}

/** The error naming the flag the user typed (--lr) instead of the API key (learningRate). */
export function inFlagTerms(err: SettingError, ...tables: Table[]): SettingError {
  const s = tables.flat().find((x) => x.key === err.key);
  return s?.flag ? err.renamed(`--${s.flag}`) : err;
}

/** Validates what was given, once, into typed values; missing ones take their defaults. */
export function resolveSettings<T extends Table>(
  table: T,
  given: Partial<Record<string, unknown>>,
  naming: Naming = 'api',
): ValuesOf<T> {
  const out: Record<string, unknown> = {};
  for (const s of table) {
    const v = given[s.key];
    if (v === undefined && s.required)
      throw new SettingError(s.kind.expected, nameOf(s, naming), undefined, { key: s.key });
    out[s.key] = v === undefined ? s.default : checked(s, () => s.kind.check(v), naming);
  }
  return out as ValuesOf<T>;
}

/** node:util parseArgs options for every flag of the tables. */
export function flagOptions(
  ...tables: Table[]
): Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> {
  const out: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = {};
  const add = (flag: string, option: { type: 'string' | 'boolean'; multiple?: boolean }) => {
    if (flag in out) throw new Error(`Two settings declare the flag --${flag}`);
    out[flag] = option;
  };
  for (const s of tables.flat()) {
    if (!s.flag) continue;
    add(s.flag, { type: s.kind.flagType, ...(s.kind.multiple ? { multiple: true } : {}) });
    if (s.kind.negatable) add(`no-${s.flag}`, { type: 'boolean' });
  }
  return out;
}

/** The flags given on a command line, parsed into values by key (absent flags stay absent). */
export function valuesFromFlags<T extends Table>(
  table: T,
  flags: Record<string, unknown>,
): GivenOf<T> {
  const out: Record<string, unknown> = {};
  for (const s of table) {
    if (!s.flag) continue;
    if (s.kind.negatable && flags[`no-${s.flag}`] !== undefined) {
      if (flags[s.flag] !== undefined)
        throw new SettingError(`--${s.flag} or --no-${s.flag}`, `--${s.flag}`, 'both', {
          key: s.key,
        });
      out[s.key] = false;
      continue;
    }
    if (flags[s.flag] === undefined) continue;
    const raw = flags[s.flag] as string | boolean | string[];
    out[s.key] = checked(s, () => s.kind.parse(raw), 'cli');
  }
  return out as GivenOf<T>;
}

/** The settings marked for a run's identity or a file's metadata, by record name. */
function recordsOf<T extends Table>(
  table: T,
  values: ValuesOf<T>,
  which: 'identity' | 'metadata',
): Record<string, unknown> {
  const all = values as Record<string, unknown>;
  return Object.fromEntries(
    table
      .filter((s) => s[which])
      .map((s) => {
        const how = s[which];
        const v = all[s.key];
        return [
          recordName(s),
          typeof how === 'function' ? how(v) : s.kind.record ? s.kind.record(v) : v,
        ];
      }),
  );
}

/** The values that make a training run what it is, by record name. */
export function identityOf<T extends Table>(
  table: T,
  values: ValuesOf<T>,
): Record<string, unknown> {
  return recordsOf(table, values, 'identity');
}

/** The values an adapter records about its training, by record name. */
export function metadataOf<T extends Table>(
  table: T,
  values: ValuesOf<T>,
): Record<string, unknown> {
  return recordsOf(table, values, 'metadata');
}

/** For each identity setting added after checkpoints existed: the value those ran with. */
export function olderDefaults(table: Table): Record<string, unknown> {
  return Object.fromEntries(
    table.filter((s) => s.olderDefault !== undefined).map((s) => [recordName(s), s.olderDefault]),
  );
}

const HELP_COLUMN = 27;
const HELP_WIDTH = 99;

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  for (const paragraph of text.split('\n')) {
    let line = '';
    for (const w of paragraph.split(/\s+/).filter(Boolean)) {
      if (line && line.length + 1 + w.length > width) {
        lines.push(line);
        line = w;
      } else line = line ? `${line} ${w}` : w;
    }
    lines.push(line);
  }
  return lines;
}

function defaultText(s: Setting): string {
  if (s.defaultHelp !== undefined) return s.defaultHelp;
  const v: unknown = s.kind.record ? s.kind.record(s.default) : s.default;
  if (v === null || v === undefined || v === false || v === '') return '';
  const shown =
    typeof v === 'number' && v !== 0 && Math.abs(v) < 1e-3
      ? v.toExponential()
      : Array.isArray(v)
        ? v.join(', ')
        : String(v);
  return `default ${shown}`;
}

/** A flag as --help writes it: "--steps <n>", "--flip", or "--[no-]flip" when it is on by default. */
export function flagHead(s: Table[number]): string {
  // a yes/no flag that is on by default is there to be turned off, so its help shows the --no- form
  const flag = s.kind.negatable && s.default === true ? `[no-]${s.flag}` : s.flag;
  return `--${flag}${s.kind.flagType === 'boolean' ? '' : ` ${s.placeholder ?? '<x>'}`}`;
}

/** One flag's --help entry: the flag left, its help (and default) wrapped at a fixed column. */
export function flagHelp(s: Setting): string {
  const head = `  ${flagHead(s)}`;
  const dflt = defaultText(s);
  const body = wrap(dflt ? `${s.help} (${dflt})` : s.help, HELP_WIDTH - HELP_COLUMN);
  const pad = ' '.repeat(HELP_COLUMN);
  const first =
    head.length < HELP_COLUMN - 1
      ? `${head.padEnd(HELP_COLUMN)}${body[0]}`
      : `${head}\n${pad}${body[0]}`;
  return [first, ...body.slice(1).map((l) => `${pad}${l}`)].join('\n');
}

/** --help's option sections: each group's flags under its heading, in table order. */
export function helpSections(...tables: Table[]): string {
  const groups = new Map<string, string[]>();
  for (const s of tables.flat()) {
    if (!s.flag) continue;
    if (!groups.has(s.group)) groups.set(s.group, []);
    groups.get(s.group)!.push(flagHelp(s));
  }
  return [...groups].map(([g, lines]) => `${g}:\n${lines.join('\n')}`).join('\n');
}
