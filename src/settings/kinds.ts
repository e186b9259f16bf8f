// What a setting's values may be: how a value given through the API is checked, how a flag's
// text becomes one, and how a value is written into a run's identity or a file's metadata.
// Each kind says in words what it expects, so every error reads the same:
//   Expected a positive integer for --steps but received -1

/** `Given` is what the API accepts (e.g. a curve or its text), `T` what it is checked into. */
export interface Kind<T, Given = T> {
  /** What the kind expects, for errors and help: "a positive integer". */
  readonly expected: string;
  /** A flag's type for node:util parseArgs. */
  readonly flagType: 'string' | 'boolean';
  /** The flag may be given several times (its values form a list). */
  readonly multiple?: boolean;
  /** A boolean flag that also has a --no- form, which sets it to false. */
  readonly negatable?: boolean;
  /** The value from a flag's text; throws a RangeError saying what was expected. */
  parse(text: string | boolean | string[]): T;
  /** The value given through the API, checked; returns it as T or throws. */
  check(value: unknown): T;
  /** The value as JSON for a run's identity or a file's metadata (default: as it is). */
  record?(value: T): unknown;
  /** Type-level only: what the API accepts. */
  readonly given?: Given;
}

/** What a SettingError says besides the three parts every error has. */
export interface SettingErrorDetails {
  /** The setting's API key, so a command line can name its flag instead (see inFlagTerms). */
  readonly key?: string;
  /** Why the value is refused when the expectation alone does not say: "not a finite number". */
  readonly note?: string;
}

/** The error every kind throws: what was expected, for which name, and what was received. */
export class SettingError extends RangeError {
  readonly key?: string;
  readonly note?: string;

  constructor(
    readonly expected: string,
    readonly setting: string,
    readonly received: unknown,
    details: SettingErrorDetails = {},
  ) {
    const note = details.note ? `, ${details.note}` : '';
    super(`Expected ${expected} for ${setting} but received ${show(received)}${note}`);
    this.name = 'SettingError';
    this.key = details.key;
    this.note = details.note;
  }

  /** The same refusal naming the setting otherwise (its flag: "--steps" for "steps"). */
  renamed(setting: string): SettingError {
    return new SettingError(this.expected, setting, this.received, this);
  }
}

/** A value as the user wrote it: text quoted, numbers as JavaScript writes them (Infinity, not null). */
export function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number') return String(v);
  if (Array.isArray(v)) return `[${v.map(show).join(',')}]`;
  return (
    JSON.stringify(v, (_, x: unknown) =>
      typeof x === 'number' && !Number.isFinite(x) ? String(x) : x,
    ) ?? String(v)
  );
}

/** The note for a number that is ±Infinity, or text that JavaScript reads so ("1e999"). */
export function finiteNote(given: unknown): string | undefined {
  const v = typeof given === 'string' ? Number(given) : given;
  return v === Infinity || v === -Infinity ? 'not a finite number' : undefined;
}

/** A kind's refusal of a value; the table turns it into a SettingError naming the setting. */
export class KindError extends Error {
  constructor(
    readonly received: unknown,
    readonly note?: string,
  ) {
    super(`Refused ${show(received)}${note ? `, ${note}` : ''}`);
  }
}

/** Refuses a value (for kinds defined elsewhere, e.g. the weight curve). */
export function fail(received: unknown, note?: string): never {
  throw new KindError(received, note);
}

function numeric(expected: string, ok: (x: number) => boolean): Kind<number> {
  const check = (v: unknown): number =>
    typeof v === 'number' && Number.isFinite(v) && ok(v) ? v : fail(v, finiteNote(v));
  return {
    expected,
    flagType: 'string',
    // a refused flag is reported as the user typed it
    parse(text) {
      const v = typeof text === 'string' && text.trim() !== '' ? Number(text) : NaN;
      return Number.isFinite(v) && ok(v) ? v : fail(text, finiteNote(text));
    },
    check,
  };
}

export function int(min: number, max = Number.MAX_SAFE_INTEGER): Kind<number> {
  const words =
    max < Number.MAX_SAFE_INTEGER
      ? `an integer in [${min}, ${max}]`
      : min === 1
        ? 'a positive integer'
        : min === 0
          ? 'a non-negative integer'
          : `an integer of at least ${min}`;
  return numeric(words, (x) => Number.isSafeInteger(x) && x >= min && x <= max);
}

export const positiveInt = int(1);
export const nonNegativeInt = int(0);
/** Seeds: what Generator takes. */
export const seed = int(0, 2 ** 32 - 1);

export function number(expected: string, ok: (x: number) => boolean = () => true): Kind<number> {
  return numeric(expected, ok);
}

export const anyNumber = number('a number');
export const positiveNumber = number('a positive number', (x) => x > 0);
export const nonNegativeNumber = number('a non-negative number', (x) => x >= 0);
export const probability = number('a probability in [0, 1]', (x) => x >= 0 && x <= 1);
export const unitWeight = number('a weight in [0, 1]', (x) => x >= 0 && x <= 1);

/** A boolean flag that turns a setting off (--no-eval for evaluate). */
export const offFlag: Kind<boolean> = {
  expected: 'true or false',
  flagType: 'boolean',
  parse: (v) => v !== true,
  check: (v) => (typeof v === 'boolean' ? v : fail(v)),
};

export const bool: Kind<boolean> = {
  expected: 'true or false',
  flagType: 'boolean',
  negatable: true,
  parse: (v) => v === true,
  check: (v) => (typeof v === 'boolean' ? v : fail(v)),
};

export function choice<T extends string>(choices: readonly T[]): Kind<T> {
  const check = (v: unknown): T =>
    typeof v === 'string' && (choices as readonly string[]).includes(v) ? (v as T) : fail(v);
  return {
    expected: `one of ${choices.join(', ')}`,
    flagType: 'string',
    parse: check,
    check,
  };
}

export const text: Kind<string> = {
  expected: 'a text',
  flagType: 'string',
  parse: (v) => (typeof v === 'string' ? v : fail(v)),
  check: (v) => (typeof v === 'string' ? v : fail(v)),
};

/** One word without spaces (identifiers). */
export const word: Kind<string> = {
  expected: 'one word',
  flagType: 'string',
  parse: (v) => word.check(v),
  check: (v) => (typeof v === 'string' && /^\S+$/.test(v) ? v : fail(v)),
};

/** A file or folder path (existence is checked where it is used). */
export const path: Kind<string> = {
  expected: 'a path',
  flagType: 'string',
  parse: (v) => path.check(v),
  check: (v) => (typeof v === 'string' && v !== '' ? v : fail(v)),
};

/** A repeatable flag: each time it is given adds one text. */
export const texts: Kind<string[]> = {
  expected: 'a list of texts',
  flagType: 'string',
  multiple: true,
  parse: (v) => (Array.isArray(v) ? v.map(String) : fail(v)),
  check: (v) => (Array.isArray(v) && v.every((x) => typeof x === 'string') ? v : fail(v)),
};

/** The kind, or null ("not set": no clipping, the whole photo ...). */
export function nullable<T, G>(kind: Kind<T, G>): Kind<T | null, G | null> {
  return {
    expected: kind.expected,
    flagType: kind.flagType,
    multiple: kind.multiple,
    parse: (v) => kind.parse(v),
    check: (v) => (v === null ? null : kind.check(v)),
    record: (v) => (v === null ? null : kind.record ? kind.record(v) : v),
  };
}
