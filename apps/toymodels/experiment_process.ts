// One selective-subject experiment in a child Node process, so that independent experiments
// (the demo's run with the negative click and its positive-only baseline) use one core each at
// the same time. At the toy models' size an op on 1 libtorch thread is about as fast as on 2, so
// two 1-thread processes finish both runs in about the time of one 2-thread run.
//
// The child loads the models and the probe itself; the parent sees progress and the result
// (plain data) over Node's IPC channel. The child never shares native state with the parent.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { GenerateProgress } from '../../src/p3s/generate.js';
import type { StepReport } from '../../src/training/observer.js';
import type { ExperimentOptions, ExperimentResult } from './experiment.js';

/** What a child needs: the experiment's options without the probe and the callbacks. */
export type ChildExperimentOptions = Omit<
  ExperimentOptions,
  'probe' | 'onTrainProgress' | 'onGenerateProgress'
>;

/** Messages from the child (experiment_worker.ts) to the parent. */
export type WorkerMessage =
  | { kind: 'train'; progress: StepReport }
  | { kind: 'generate'; progress: GenerateProgress }
  | { kind: 'result'; result: ExperimentResult }
  | { kind: 'error'; name: string; message: string };

export interface ChildRunOptions {
  /** libtorch threads in the child (P3S_NUM_THREADS there). */
  threads: number;
  onTrainProgress?: (p: StepReport) => void;
  onGenerateProgress?: (p: GenerateProgress) => void;
  /** Kills the child (SIGTERM) and rejects. */
  signal?: AbortSignal;
}

export class ExperimentProcessError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExperimentProcessError';
  }
}

const WORKER = fileURLToPath(new URL('./experiment_worker.js', import.meta.url));

/** Runs runSubjectExperiment(options) in a child process and resolves with its result. */
export function runExperimentInChild(
  options: ChildExperimentOptions,
  run: ChildRunOptions,
): Promise<ExperimentResult> {
  if (!Number.isSafeInteger(run.threads) || run.threads < 1)
    throw new RangeError(`Expected a positive thread count but received ${run.threads}`);
  return new Promise((resolvePromise, reject) => {
    const child = fork(WORKER, [], {
      env: { ...process.env, P3S_NUM_THREADS: String(run.threads) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      signal: run.signal,
    });
    let settled: { ok: true; result: ExperimentResult } | { ok: false; error: Error } | null = null;
    child.on('message', (raw) => {
      const m = raw as WorkerMessage;
      if (m.kind === 'train') run.onTrainProgress?.(m.progress);
      else if (m.kind === 'generate') run.onGenerateProgress?.(m.progress);
      else if (m.kind === 'result') settled = { ok: true, result: m.result };
      else {
        const error = new Error(m.message);
        error.name = m.name;
        settled = { ok: false, error };
      }
    });
    child.on('error', (err) => {
      settled ??= { ok: false, error: err };
    });
    // 'exit' can come before the last message is read; 'close' comes after both.
    child.on('close', (code, signal) => {
      if (settled?.ok) resolvePromise(settled.result);
      else if (settled) reject(settled.error);
      else
        reject(
          new ExperimentProcessError(
            `The experiment process for ${options.outDir} stopped without a result (${
              signal ? `signal ${signal}` : `exit code ${code}`
            })`,
          ),
        );
    });
    child.send({ kind: 'run', options });
  });
}
