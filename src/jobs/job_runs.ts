// What a job's child process runs: the library call of each kind, its progress as a JobProgress
// and its result as plain JSON. The result names files relative to the job's folder (what the
// HTTP API serves as /api/jobs/:id/files/:name) and leaves out tensors and pixels.
import { readdirSync } from 'node:fs';
import { basename, isAbsolute, relative } from 'node:path';
import { generateP3S, type GenerateP3SResult } from '../p3s/generate.js';
import { runMaskJob, type MaskJobResult } from '../p3s/supervision/mask_job.js';
import { trainP3S, type TrainP3SResult } from '../p3s/train.js';
import type { StepReport } from '../training/observer.js';
import type { JobInput, JobProgress } from './job.js';

export interface JobHooks {
  progress(progress: JobProgress): void;
  /** A note for the job's log (references found, checkpoint written ...). */
  log(message: string): void;
  /** Training stops after the current step, with a checkpoint. */
  signal: AbortSignal;
  memoryBudget?: number;
}

/** `path` relative to the job's folder when inside it, else unchanged. */
export function inFolder(dir: string, path: string): string {
  const r = relative(dir, path);
  return r === '' || r.startsWith('..') || isAbsolute(r) ? path : r;
}

/** Runs the job (its config's outDir is the job's folder) and returns its plain-JSON result. */
export async function runJob(input: JobInput, dir: string, hooks: JobHooks): Promise<unknown> {
  switch (input.kind) {
    case 'mask':
      return maskResult(dir, await runMask(input.config, hooks));
    case 'train':
      return trainResult(dir, await runTrain(input.config, dir, hooks));
    case 'generate':
      return generateResult(dir, await runGenerate(input.config, dir, hooks));
    default:
      throw new RangeError(
        `Expected a job of kind mask, train or generate but received ${JSON.stringify((input as { kind: unknown }).kind)}`,
      );
  }
}

// ---------------------------------------------------------------------------------------------
// mask

function runMask(config: Extract<JobInput, { kind: 'mask' }>['config'], hooks: JobHooks) {
  return runMaskJob(config, {
    onProgress: (done, total, name) =>
      hooks.progress({ done, total, message: `photo ${done}/${total}: ${basename(name)}` }),
  });
}

function maskResult(dir: string, result: MaskJobResult) {
  return plain({ summary: result.summary, summaryPath: inFolder(dir, result.summaryPath) });
}

// ---------------------------------------------------------------------------------------------
// train

/** How SampleWriter (p3s/samples.ts) announces a sheet it wrote. */
const SHEET_RE = /^Samples (.+\.png)$/;

function trainProgress(report: StepReport, files: string[]): JobProgress {
  const { step, totalSteps: total } = report;
  return {
    done: step,
    total,
    message: `step ${step}/${total}, loss ${report.loss.toFixed(4)}`,
    etaSeconds: report.etaSeconds,
    loss: report.loss,
    files: [...files],
  };
}

function runTrain(
  config: Extract<JobInput, { kind: 'train' }>['config'],
  dir: string,
  hooks: JobHooks,
) {
  const sheets: string[] = [];
  let last: StepReport | null = null;
  return trainP3S(config, {
    signal: hooks.signal,
    memoryBudget: hooks.memoryBudget,
    observers: [
      {
        onLog: (message) => {
          hooks.log(message);
          const sheet = SHEET_RE.exec(message)?.[1];
          if (sheet === undefined) return;
          sheets.push(inFolder(dir, sheet));
          if (last) hooks.progress(trainProgress(last, sheets));
        },
        onStep: (report) => {
          last = report;
          hooks.progress(trainProgress(report, sheets));
        },
      },
    ],
  });
}

function trainResult(dir: string, r: TrainP3SResult) {
  return plain({
    ...r,
    adapterPath: inFolder(dir, r.adapterPath),
    lastCheckpoint: inFolder(dir, r.lastCheckpoint),
    sampleSheets: r.sampleSheets.map((s) => inFolder(dir, s)),
  });
}

// ---------------------------------------------------------------------------------------------
// generate

/** The images generateP3S has written so far: `<prompt index>-<slug>-seed<n>.png`, in order. */
function imagesIn(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => /^\d{3}-.*-seed\d+\.png$/.test(f))
    .sort();
}

function runGenerate(
  config: Extract<JobInput, { kind: 'generate' }>['config'],
  dir: string,
  hooks: JobHooks,
) {
  let files: string[] = [];
  return generateP3S(config, {
    memoryBudget: hooks.memoryBudget,
    onWarning: hooks.log,
    onProgress: (p) => {
      if (p.done !== files.length) files = imagesIn(dir);
      const image = Math.min(p.done + 1, p.total);
      hooks.progress({
        done: p.done,
        total: p.total,
        message: `image ${image}/${p.total}, step ${p.step}/${p.steps}: ${p.prompt}`,
        files,
      });
    },
  });
}

function generateResult(dir: string, r: GenerateP3SResult) {
  return plain({
    images: r.images.map((i) => ({
      file: inFolder(dir, i.path),
      prompt: i.prompt,
      seed: i.seed,
      reference: i.reference,
    })),
    contactSheet: r.contactSheetPath === null ? null : inFolder(dir, r.contactSheetPath),
    warnings: r.warnings,
    metadata: r.metadata,
  });
}

/** The value as JSON carries it (no undefined, NaN as null), so the record holds what it reads back. */
function plain(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value)) as unknown;
}
