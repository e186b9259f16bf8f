// Reading an image processor's preprocessor_config.json: each value checked, and a value p3s does
// not implement refused by name rather than ignored (the processors must give the reference
// implementation's pixels exactly).

export interface ProcessorConfigReader {
  fail(key: string, allowed: string, value: unknown): never;
  positiveInt(key: string, v: unknown): number;
  bool(key: string, v: unknown, fallback: boolean): boolean;
  /** A per-channel value: a number for all three channels, or a list of three. */
  triple(key: string, v: unknown, fallback: readonly number[]): [number, number, number];
}

/** The readers for one processor class, whose name the errors carry. */
export function processorConfigReader(processor: string): ProcessorConfigReader {
  const fail = (key: string, allowed: string, value: unknown): never => {
    throw new Error(
      `Unsupported ${processor} config ${key}=${JSON.stringify(value)}: expected ${allowed}`,
    );
  };
  return {
    fail,
    positiveInt(key, v) {
      if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1)
        fail(key, 'a positive integer', v);
      return v as number;
    },
    bool(key, v, fallback) {
      if (v === undefined) return fallback;
      if (typeof v !== 'boolean') fail(key, 'true or false', v);
      return v as boolean;
    },
    triple(key, v, fallback) {
      if (v === undefined) return [...fallback] as [number, number, number];
      if (typeof v === 'number') return [v, v, v];
      if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === 'number'))
        fail(key, 'a number or a list of 3 numbers', v);
      return v as [number, number, number];
    },
  };
}
