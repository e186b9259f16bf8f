// The loss log: one JSON line per optimizer step ({ step, loss, ...parts, epoch?, seconds }),
// appended as the run goes. A resumed run first drops the lines past its checkpoint, so the log
// holds each step once however often the run was killed.
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';

export interface LossLine {
  /** Optimizer steps done after this one (1-based). */
  step: number;
  loss: number;
  /** Wall-clock seconds of this step. */
  seconds: number;
  [part: string]: number;
}

/** The log's lines with step ≤ upTo. */
export function readLossLog(path: string, upTo = Infinity): LossLine[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as LossLine)
    .filter((l) => l.step <= upTo);
}

/** Rewrites the log with only the steps a run resumed at `step` has done. */
export function truncateLossLog(path: string, step: number): LossLine[] {
  const kept = readLossLog(path, step);
  writeFileSync(path, kept.map((l) => `${JSON.stringify(l)}\n`).join(''));
  return kept;
}

export function appendLossLine(path: string, line: LossLine): void {
  appendFileSync(path, `${JSON.stringify(line)}\n`);
}
