// Small helpers shared by the CLI commands: flag parsing with clear errors.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { SettingError } from '../../src/settings/kinds.js';
import { valuesFromFlags, type GivenOf, type Table } from '../../src/settings/table.js';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export type Options = NonNullable<ParseArgsConfig['options']>;

export function parse(
  argv: string[],
  options: Options,
): { values: Record<string, string | boolean | string[] | undefined>; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    });
    return {
      values: values as Record<string, string | boolean | string[] | undefined>,
      positionals,
    };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export function numberFlag(
  values: Record<string, unknown>,
  name: string,
  fallback: number,
  check: (v: number) => boolean = Number.isFinite,
  what = 'a number',
): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const v = Number(raw);
  if (!check(v)) throw new UsageError(`Expected ${what} for --${name} but received ${String(raw)}`);
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

export function intFlag(
  values: Record<string, unknown>,
  name: string,
  fallback: number,
  min = 0,
): number {
  return numberFlag(
    values,
    name,
    fallback,
    (v) => Number.isInteger(v) && v >= min,
    min > 0 ? 'a positive integer' : 'a non-negative integer',
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
