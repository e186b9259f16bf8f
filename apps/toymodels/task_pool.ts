// A fixed number of tasks running at once, the rest waiting their turn in order: how the eval
// stage spreads its P3S runs over one-thread child processes, one per core.

export class TaskPool {
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly controller = new AbortController();

  constructor(readonly size: number) {
    if (!Number.isSafeInteger(size) || size < 1)
      throw new RangeError(`Expected a positive pool size but received ${size}`);
  }

  /** Runs task once a slot is free; it gets the pool's abort signal to stop on. */
  async run<T>(task: (signal: AbortSignal) => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      this.controller.signal.throwIfAborted();
      return await task(this.controller.signal);
    } finally {
      this.release();
    }
  }

  /** Signals the running tasks to stop; the waiting ones reject without starting. */
  abort(): void {
    this.controller.abort();
  }

  private async acquire(): Promise<void> {
    if (this.running < this.size) this.running++;
    else await new Promise<void>((resolve) => this.waiting.push(resolve)); // the slot is handed over
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.running--;
  }
}
