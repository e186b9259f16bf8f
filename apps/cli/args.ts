// Small helpers shared by the CLI commands: flag parsing with clear errors, and progress.
import { parseArgs, type ParseArgsConfig } from 'node:util';

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

/** A one-line progress display on a terminal; plain lines otherwise (logs, CI). */
export class Progress {
  private readonly tty = process.stderr.isTTY === true;
  private readonly started = Date.now();
  constructor(
    private readonly label: string,
    private readonly total: number,
  ) {}
  update(done: number, detail = ''): void {
    const elapsed = (Date.now() - this.started) / 1000;
    const eta = done > 0 ? (elapsed / done) * (this.total - done) : NaN;
    const width = 24;
    const filled = Math.round((done / Math.max(1, this.total)) * width);
    const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
    const time = `${formatSeconds(elapsed)}${Number.isFinite(eta) && done < this.total ? ` < ${formatSeconds(eta)}` : ''}`;
    const line = `${this.label} ${bar} ${done}/${this.total} ${time}${detail ? ` ${detail}` : ''}`;
    if (this.tty) process.stderr.write(`\r\x1b[2K${line}${done >= this.total ? '\n' : ''}`);
    else process.stderr.write(`${line}\n`);
  }
}

export function formatSeconds(s: number): string {
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  return `${m}m${String(Math.round(s - 60 * m)).padStart(2, '0')}s`;
}
