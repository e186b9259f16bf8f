// `npm run train:toy` on a machine with several cores: each stage in a child process of its own
// with one thread (at these sizes two one-thread jobs beat one two-thread job), as many at once as
// there are cores, each started once the stages it depends on (stageDependencies) have finished.
// The children's progress lines are passed on with the stage's name in front.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { ToyStage } from './train_toy.js';

export interface SideBySideOptions {
  /** The entry point to run for each stage, and its arguments besides --stages. */
  script: string;
  args: readonly string[];
  dependencies: ReadonlyMap<ToyStage, readonly ToyStage[]>;
  /** Children at once. */
  workers: number;
  /** Threads of a stage that runs while nothing else can (the eval stage's P3S runs use them). */
  threadsAlone: number;
  log?: (line: string) => void;
}

/** Runs every stage of `dependencies`; rejects, stopping the others, when one fails. */
export async function runSideBySide(o: SideBySideOptions): Promise<void> {
  const log = o.log ?? ((line: string) => console.error(line));
  const waiting = [...o.dependencies.keys()];
  const done = new Set<ToyStage>();
  const running = new Map<ToyStage, ChildProcess>();
  return new Promise<void>((resolve, reject) => {
    let failed = false;
    const ready = (s: ToyStage) => o.dependencies.get(s)!.every((d) => done.has(d));
    const startReady = (): void => {
      while (!failed && running.size < o.workers) {
        const next = waiting.find(ready);
        if (next === undefined) break;
        waiting.splice(waiting.indexOf(next), 1);
        const alone = running.size === 0 && waiting.length === 0;
        running.set(next, start(next, alone ? o.threadsAlone : 1));
      }
      if (running.size === 0 && !failed) resolve();
    };
    const start = (stage: ToyStage, threads: number): ChildProcess => {
      log(`[${stage}] started (${threads} thread${threads > 1 ? 's' : ''})`);
      const child = spawn(process.execPath, [o.script, ...o.args, '--stages', stage], {
        env: { ...process.env, P3S_NUM_THREADS: String(threads) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      for (const stream of [child.stdout!, child.stderr!]) {
        createInterface({ input: stream }).on('line', (line) => log(`[${stage}] ${line}`));
      }
      child.on('exit', (code, signal) => {
        running.delete(stage);
        if (code === 0) {
          done.add(stage);
          startReady();
          return;
        }
        if (failed) return;
        failed = true;
        for (const other of running.values()) other.kill('SIGTERM');
        const how = signal ?? `exit code ${code}`;
        reject(
          new Error(`The ${stage} stage failed (${how}); run the same command again to resume`),
        );
      });
      return child;
    };
    startReady();
  });
}
