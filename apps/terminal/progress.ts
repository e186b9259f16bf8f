// Progress on a terminal: a one-line bar that redraws itself when stderr is a terminal, plain
// lines otherwise (logs, CI); and the same bar as an observer of a training run.
import type { StepReport, TrainingObserver } from '../../src/training/observer.js';

/** Where a Progress writes and how it tells time; tests pass their own. */
export interface ProgressOutput {
  write(text: string): void;
  isTTY: boolean;
  now(): number;
}

const STDERR: ProgressOutput = {
  write: (text) => process.stderr.write(text),
  get isTTY() {
    return process.stderr.isTTY === true;
  },
  now: () => Date.now(),
};

/** A log (not a terminal) gets a line at most this often, and always the first and last. */
export const LOG_INTERVAL_MS = 5000;

/** A one-line progress display on a terminal; plain lines otherwise (logs, CI). */
export class Progress {
  private lastLogged = -Infinity;
  /** started: when the work began (default now), in out.now()'s milliseconds. */
  constructor(
    private readonly label: string,
    private total: number,
    private readonly out: ProgressOutput = STDERR,
    private readonly started = out.now(),
  ) {}
  /** The work turned out to be this much in all (an estimate made before it began was off). */
  setTotal(total: number): void {
    this.total = total;
  }
  update(done: number, detail = ''): void {
    const now = this.out.now();
    const finished = done >= this.total;
    const line = this.line(done, (now - this.started) / 1000, detail);
    if (this.out.isTTY) {
      this.out.write(`\r\x1b[2K${line}${finished ? '\n' : ''}`);
    } else if (finished || now - this.lastLogged >= LOG_INTERVAL_MS) {
      this.lastLogged = now;
      this.out.write(`${line}\n`);
    }
  }
  private line(done: number, elapsed: number, detail: string): string {
    const eta = done > 0 ? (elapsed / done) * (this.total - done) : NaN;
    const width = 24;
    const filled = Math.round((Math.min(done, this.total) / Math.max(1, this.total)) * width);
    const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
    const left = Number.isFinite(eta) && done < this.total ? ` < ${formatSeconds(eta)}` : '';
    return `${this.label} ${bar} ${done}/${this.total} ${formatSeconds(elapsed)}${left}${detail ? ` ${detail}` : ''}`;
  }
}

/** 4.2s, 1m05s, 2h03m: rounded once, so a minute never shows 60 seconds. */
export function formatSeconds(s: number): string {
  if (s < 59.95) return `${s.toFixed(1)}s`;
  const total = Math.round(s);
  if (total < 3600) return `${Math.floor(total / 60)}m${pad2(total % 60)}s`;
  const minutes = Math.round(s / 60);
  return `${Math.floor(minutes / 60)}h${pad2(minutes % 60)}m`;
}

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/**
 * A training run's progress as a bar over this session's steps, showing the mean loss of the
 * last `window` steps (1: the step's own loss) and `detail` of each report.
 */
export function trainingProgress(
  label: string,
  options: { window?: number; detail?: (r: StepReport) => string } = {},
): TrainingObserver {
  let bar: Progress | null = null;
  let recent: number[] = [];
  let started = Date.now();
  const window = options.window ?? 1;
  return {
    onStart() {
      // the first step's time counts, so the first line's time left is already an estimate
      started = Date.now();
    },
    onStep(r) {
      bar ??= new Progress(label, r.totalSteps - r.startStep, undefined, started);
      recent = [...recent.slice(-(window - 1)), r.loss];
      const mean = recent.reduce((a, b) => a + b, 0) / recent.length;
      const detail = options.detail ? options.detail(r) : `loss ${mean.toFixed(4)}`;
      bar.update(r.step - r.startStep, detail);
    },
  };
}
