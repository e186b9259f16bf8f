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
    if (this.wait() <= 0 && this.timer === null) {
      this.fire(value);
      return;
    }
    this.pending = { value };
    if (this.timer === null) this.arm();
  }

  private wait(): number {
    return this.last + this.intervalMs - performance.now();
  }

  /**
   * Fires the pending value once the interval has passed. Node's timers count from the event
   * loop's cached time, which can be a few ms old, so a timer may fire early: it re-arms then.
   */
  private arm(): void {
    this.timer = setTimeout(
      () => {
        if (this.wait() > 0) return this.arm();
        this.timer = null;
        const p = this.pending;
        this.pending = null;
        if (p) this.fire(p.value);
      },
      Math.max(1, Math.ceil(this.wait())),
    );
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
    this.last = performance.now();
    this.emit(value);
  }
}
