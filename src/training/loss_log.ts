// The loss log: one JSON line per optimizer step ({ step, loss, ...parts, epoch?, seconds }),
// appended as the run goes. A resumed run first drops the lines past its checkpoint (and a line
// torn by a kill during its write), so the log holds each step once however often the run was
// killed.
import { appendFileSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';

export interface LossLine {
  /** Optimizer steps done after this one (1-based). */
  step: number;
  loss: number;
  /** Wall-clock seconds of this step. */
  seconds: number;
  [part: string]: number;
}

/** One line of the log, or null for a line torn by a kill. */
function parseLine(line: string): LossLine | null {
  try {
    const parsed = JSON.parse(line) as LossLine;
    return typeof parsed?.step === 'number' ? parsed : null;
  } catch {
    return null;
  }
}

/** The log's lines with step ≤ upTo. */
export function readLossLog(path: string, upTo = Infinity): LossLine[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .map(parseLine)
    .filter((l): l is LossLine => l !== null && l.step <= upTo);
}

/** Rewrites the log (atomically) with only the steps a run resumed at `step` has done. */
export function truncateLossLog(path: string, step: number): LossLine[] {
  const kept = readLossLog(path, step);
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, kept.map((l) => `${JSON.stringify(l)}\n`).join(''));
  renameSync(tmp, path);
  return kept;
}

export function appendLossLine(path: string, line: LossLine): void {
  appendFileSync(path, `${JSON.stringify(line)}\n`);
}
