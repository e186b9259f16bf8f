// Small helpers shared by the CLI commands: flag parsing with clear errors.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { finiteNote, SettingError } from '../../src/settings/kinds.js';
import { closestName } from '../../src/settings/closest.js';
import { valuesFromFlags, type GivenOf, type Table } from '../../src/settings/table.js';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export type Options = NonNullable<ParseArgsConfig['options']>;

/** A negative number: node:util parseArgs takes "-2" for an option unless it is joined on. */
const NEGATIVE_NUMBER = /^-(\d|\.\d|Infinity$)/;

/**
 * The arguments with a negative number after a value-taking flag joined to it ("--layer -2" ->
 * "--layer=-2"), as the help writes such values; arguments after "--" are left as they are.
 */
export function joinNegativeValues(argv: readonly string[], options: Options): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') return [...out, ...argv.slice(i)];
    const next = argv[i + 1];
    const takesValue = arg.startsWith('--') && options[arg.slice(2)]?.type === 'string';
    if (takesValue && next !== undefined && NEGATIVE_NUMBER.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else out.push(arg);
  }
  return out;
}

export function parse(
  argv: string[],
  options: Options,
): { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({
      args: joinNegativeValues(argv, options),
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
    return {
      values: values as Record<string, string | boolean | string[] | undefined>,
      positionals,
    };
  } catch (err) {
    throw new UsageError(unknownOption(err as Error, options) ?? (err as Error).message);
  }
}

/** For a mistyped flag: which it is and the flag it was probably meant to be. */
function unknownOption(err: Error, options: Options): string | undefined {
  const given = /^Unknown option '(--?[^'=]+)/.exec(err.message)?.[1];
  if ((err as { code?: string }).code !== 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || !given) return;
  const meant = closestName(given.replace(/^-+/, ''), [...Object.keys(options), 'help']);
  return `Unknown option ${given}${meant ? `; did you mean --${meant}?` : ''}`;
}

/** A number flag's value, or `fallback` where it is not given (undefined: leave it unset). */
export function numberFlag<F extends number | undefined = number>(
  values: Record<string, unknown>,
  name: string,
  fallback: F,
  check: (v: number) => boolean = Number.isFinite,
  what = 'a number',
): number | F {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (!check(v)) {
    const note = finiteNote(raw);
    throw new UsageError(
      `Expected ${what} for --${name} but received ${String(raw)}${note ? `, ${note}` : ''}`,
    );
  }
  return v;
}

/** A flag that takes one of a few words. */
export function choiceFlag<T extends string>(
  values: Record<string, unknown>,
  name: string,
  choices: readonly T[],
  fallback: T,
): T {
  const raw = values[name];
  if (raw === undefined) return fallback;
  if (!choices.includes(raw as T)) {
    throw new UsageError(
      `Expected one of ${choices.join(', ')} for --${name} but received ${String(raw)}`,
    );
  }
  return raw as T;
}

export function intFlag<F extends number | undefined = number>(
  values: Record<string, unknown>,
  name: string,
  fallback: F,
  min = 0,
): number | F {
  return numberFlag(
    values,
    name,
    fallback,
    (v) => Number.isInteger(v) && v >= min,
    min === 1 ? 'a positive integer' : min === 0 ? 'a non-negative integer' : `an integer ≥ ${min}`,
  );
}

/**
 * A table's settings from parsed flags: each flag's text checked and converted (a bad value is
 * a UsageError naming the flag), and every required input present.
 */
export function settingsFromFlags<T extends Table>(
  table: T,
  values: Record<string, unknown>,
): GivenOf<T> {
  let given: GivenOf<T>;
  try {
    given = valuesFromFlags(table, values);
  } catch (err) {
    if (err instanceof SettingError) throw new UsageError(err.message);
    throw err;
  }
  for (const s of table) {
    if (s.required && s.flag && (given as Record<string, unknown>)[s.key] === undefined)
      throw new UsageError(`Expected --${s.flag} ${s.placeholder ?? '<x>'}`);
  }
  return given;
}
