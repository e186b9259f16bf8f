// The order a run visits its N training items in: epoch e = ⌊i/N⌋ visits a permutation of
// 0..N−1 drawn from (seed, e) alone, so the step count restores it on resume and it is
// independent of the tensor generator's stream.

/** mulberry32: a tiny seeded PRNG. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class DataOrder {
  private readonly perms = new Map<number, number[]>();
  constructor(
    readonly seed: number,
    readonly n: number,
  ) {}

  permutation(epoch: number): number[] {
    let p = this.perms.get(epoch);
    if (!p) {
      const next = mulberry32((this.seed * 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca6b));
      p = Array.from({ length: this.n }, (_, i) => i);
      for (let i = this.n - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [p[i], p[j]] = [p[j]!, p[i]!];
      }
      if (this.perms.size > 4) this.perms.clear();
      this.perms.set(epoch, p);
    }
    return p;
  }

  /** The item of the i-th sample and its epoch. */
  at(sample: number): { item: number; epoch: number } {
    const epoch = Math.floor(sample / this.n);
    return { item: this.permutation(epoch)[sample % this.n]!, epoch };
  }
}
