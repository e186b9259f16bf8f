// Progress on a terminal: a one-line bar that redraws itself when stderr is a terminal, plain
// lines otherwise (logs, CI); and the same bar as an observer of a training run.
import type { StepReport, TrainingObserver } from '../../src/training/observer.js';

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
  const window = options.window ?? 1;
  return {
    onStep(r) {
      bar ??= new Progress(label, r.totalSteps - r.startStep);
      recent = [...recent.slice(-(window - 1)), r.loss];
      const mean = recent.reduce((a, b) => a + b, 0) / recent.length;
      const detail = options.detail ? options.detail(r) : `loss ${mean.toFixed(4)}`;
      bar.update(r.step - r.startStep, detail);
    },
  };
}
