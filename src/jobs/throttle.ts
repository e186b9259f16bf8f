// At most one call per interval, and never a value lost for good: a value that comes too soon
// waits, replaced by any newer one, until the interval has passed. Progress events (5 a second
// at most per job) go through one.

export class Throttle<T> {
  private last = -Infinity;
  private pending: { value: T } | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly intervalMs: number,
    private readonly emit: (value: T) => void,
  ) {}

  push(value: T): void {
    const wait = this.last + this.intervalMs - Date.now();
    if (wait <= 0 && this.timer === null) {
      this.fire(value);
      return;
    }
    this.pending = { value };
    if (this.timer !== null) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      const p = this.pending;
      this.pending = null;
      if (p) this.fire(p.value);
    }, wait);
  }

  /** Stops; returns the newest value not emitted yet, if any. */
  stop(): T | undefined {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const p = this.pending;
    this.pending = null;
    return p?.value;
  }

  private fire(value: T): void {
    this.last = Date.now();
    this.emit(value);
  }
}
