// The DreamBench protocol in one run (DreamBooth, Ruiz et al. 2023, Sec. 4.1): for every subject
// and method, fine-tune on the subject's photos, generate its prompts, score the images against
// the photos, and average each metric over the subjects. Each stage leaves its result in the
// run's folder (run.json, eval.json), so a stopped run continues where it stopped: a finished
// stage is not done again, and a training stopped after a checkpoint resumes from it.
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readImage } from '../io/image.js';
import { writeJsonAtomic } from '../io/json_file.js';
import { DEFAULT_IDENTIFIER } from '../p3s/prompts.js';
import { resolveReferencePaths } from '../p3s/references.js';
import { trainP3S } from '../p3s/train.js';
import { TRAINING_METHODS, type TrainingMethodName } from '../p3s/train_settings.js';
import { generateWithAdapter } from '../baselines/generate.js';
import { resolveSettings } from '../settings/table.js';
import { readDreamBench, subjectProtocol, DreamBenchError, type DreamBench } from './dreambench.js';
import {
  DREAMBENCH_SETTINGS,
  type DreamBenchConfig,
  type DreamBenchSettings,
} from './dreambench_settings.js';
import { writeEvalJson } from './eval_report.js';
import { scoreImages, type MetricScores } from './score.js';

export const DREAMBENCH_FORMAT = 'p3s-dreambench-1';

/** One subject's scores under one method, and how many generated images they are over. */
interface SubjectScores {
  scores: MetricScores;
  images: number;
}

/** One subject and method: the run's stage and whether it was done now or found done. */
export interface DreamBenchStage {
  subject: string;
  method: TrainingMethodName;
  stage: 'train' | 'generate' | 'score';
  /** Runs finished so far, of `total` (subjects × methods). */
  done: number;
  total: number;
  skipped: boolean;
}

export interface DreamBenchOptions {
  onStage?: (s: DreamBenchStage) => void;
}

/** A method's scores on each subject and their means over the subjects. */
export interface MethodScores {
  method: TrainingMethodName;
  perSubject: Record<string, MetricScores>;
  mean: MetricScores;
  images: number;
}

export interface DreamBenchResult {
  subjects: string[];
  /** Benchmark subjects without a photo folder, so not run. */
  missing: string[];
  methods: MethodScores[];
  promptsPerSubject: number;
  imagesPerPrompt: number;
}

/** What a finished stage leaves in a run's folder (run.json). */
interface RunRecord {
  adapter: string;
  generated: boolean;
}

/** Runs the protocol (or continues it) and writes <out>/dreambench.json. */
export async function runDreamBench(
  config: DreamBenchConfig,
  options: DreamBenchOptions = {},
): Promise<DreamBenchResult> {
  const s = resolveSettings(DREAMBENCH_SETTINGS, config);
  const methods = checkedMethods(s.methods);
  const bench = readDreamBench();
  const { subjects, missing } = chosenSubjects(bench, s);
  const total = subjects.length * methods.length;
  let done = 0;
  const scores = new Map<TrainingMethodName, Record<string, SubjectScores>>();
  for (const subject of subjects) {
    for (const method of methods) {
      const report = (stage: DreamBenchStage['stage'], skipped: boolean) =>
        options.onStage?.({ subject, method, stage, done, total, skipped });
      const result = await runOne(bench, s, subject, method, report);
      done++;
      scores.set(method, { ...scores.get(method), [subject]: result });
    }
  }
  const result: DreamBenchResult = {
    subjects,
    missing,
    methods: methods.map((m) => methodScores(m, scores.get(m) ?? {})),
    promptsPerSubject: s.promptsPerSubject,
    imagesPerPrompt: s.imagesPerPrompt,
  };
  writeJsonAtomic(join(s.outDir, 'dreambench.json'), { format: DREAMBENCH_FORMAT, ...result });
  return result;
}

function checkedMethods(names: readonly string[]): TrainingMethodName[] {
  const known: readonly string[] = TRAINING_METHODS;
  for (const m of names)
    if (!known.includes(m))
      throw new DreamBenchError(`Unknown method "${m}"; known: ${TRAINING_METHODS.join(', ')}`);
  if (names.length === 0) throw new DreamBenchError('Give at least one method');
  return [...new Set(names as TrainingMethodName[])];
}

/** The subjects asked for (default: every benchmark subject with a photo folder). */
function chosenSubjects(
  bench: DreamBench,
  s: DreamBenchSettings,
): { subjects: string[]; missing: string[] } {
  const present = (name: string) => existsSync(join(s.photos, name));
  const all = [...bench.classes.keys()];
  const missing = all.filter((n) => !present(n));
  if (s.subjects.length === 0) {
    const subjects = all.filter(present);
    if (subjects.length === 0)
      throw new DreamBenchError(`No DreamBench subject folder in ${s.photos}`);
    return { subjects, missing };
  }
  for (const name of s.subjects) {
    subjectProtocol(bench, name); // an unknown name is refused with the known ones
    if (!present(name))
      throw new DreamBenchError(`No photos of ${name}: ${join(s.photos, name)} does not exist`);
  }
  return { subjects: [...new Set(s.subjects)], missing };
}

/** One subject with one method: train, generate and score, each unless already done. */
async function runOne(
  bench: DreamBench,
  s: DreamBenchSettings,
  subject: string,
  method: TrainingMethodName,
  report: (stage: DreamBenchStage['stage'], skipped: boolean) => void,
): Promise<SubjectScores> {
  const { classWord, prompts } = subjectProtocol(bench, subject);
  const dir = join(s.outDir, subject, method);
  const photos = join(s.photos, subject);
  mkdirSync(dir, { recursive: true });
  const recordPath = join(dir, 'run.json');
  let record = readRecord(recordPath);
  report('train', record !== null);
  if (record === null) {
    const adapter = await train(s, subject, method, classWord, photos, dir);
    record = { adapter, generated: false };
    writeJsonAtomic(recordPath, record);
  }
  const generated = join(dir, 'generated');
  report('generate', record.generated);
  if (!record.generated) {
    await generateWithAdapter({
      baseModel: s.baseModel,
      adapter: record.adapter,
      outDir: generated,
      prompts: prompts.slice(0, s.promptsPerSubject),
      numImages: s.imagesPerPrompt,
      seed: s.seed,
      steps: s.sampleSteps,
    });
    record = { ...record, generated: true };
    writeJsonAtomic(recordPath, record);
  }
  return score(s, photos, generated, join(dir, 'eval.json'), report);
}

/** Fine-tunes one method; P3S on clicks (the user's, or the centre of the first photo). */
async function train(
  s: DreamBenchSettings,
  subject: string,
  method: TrainingMethodName,
  classWord: string,
  photos: string,
  dir: string,
): Promise<string> {
  const outDir = join(dir, 'train');
  const resume = hasCheckpoint(join(outDir, 'checkpoints'));
  const inputs =
    method === 'p3s'
      ? { annotation: await annotationFor(s, subject, classWord, photos, dir) }
      : { references: [photos] };
  const result = await trainP3S({
    ...inputs,
    method,
    baseModel: s.baseModel,
    clipModel: s.clipModel,
    outDir,
    classWord,
    seed: s.seed,
    ...(s.maxSteps !== null ? { maxSteps: s.maxSteps } : {}),
    ...(s.learningRate !== null ? { learningRate: s.learningRate } : {}),
    ...(s.resolution !== null ? { resolution: s.resolution } : {}),
    evaluate: false,
    ...(resume ? { resume: true } : { overwrite: true }),
  });
  return result.adapterPath;
}

function hasCheckpoint(dir: string): boolean {
  return existsSync(dir) && readdirSync(dir).some((f) => f.endsWith('.safetensors'));
}

/** The user's annotation file for the subject, or one with a click at the first photo's centre. */
async function annotationFor(
  s: DreamBenchSettings,
  subject: string,
  classWord: string,
  photos: string,
  dir: string,
): Promise<string> {
  const given = s.annotations === null ? null : join(s.annotations, `${subject}.json`);
  if (given !== null && existsSync(given)) return given;
  const paths = resolveReferencePaths([photos]).map((p) => resolve(p));
  const first = await readImage(paths[0]!);
  const centre = [Math.floor(first.width / 2), Math.floor(first.height / 2)];
  const annotation = {
    version: 1,
    _note:
      'p3s dreambench: a positive click at the centre of the first photo, propagated to the rest',
    identifier: DEFAULT_IDENTIFIER,
    classWord,
    images: paths.map((path, i) => (i === 0 ? { path, positive: [centre] } : { path })),
  };
  const file = join(dir, 'annotation.json');
  writeJsonAtomic(file, annotation);
  return file;
}

/** The run's scores, from its eval.json when it has one. */
async function score(
  s: DreamBenchSettings,
  photos: string,
  generated: string,
  evalPath: string,
  report: (stage: DreamBenchStage['stage'], skipped: boolean) => void,
): Promise<SubjectScores> {
  if (existsSync(evalPath)) {
    report('score', true);
    const saved = JSON.parse(readFileSync(evalPath, 'utf8')) as {
      scores: MetricScores;
      counts: { images: number };
    };
    return { scores: saved.scores, images: saved.counts.images };
  }
  report('score', false);
  const result = await scoreImages({
    generated,
    real: [photos],
    clipModel: s.evalClip,
    dinoModel: s.dinoModel,
  });
  writeEvalJson(evalPath, result);
  return { scores: result.scores, images: result.counts.images };
}

function readRecord(path: string): RunRecord | null {
  if (!existsSync(path)) return null;
  const r = JSON.parse(readFileSync(path, 'utf8')) as Partial<RunRecord>;
  if (typeof r.adapter !== 'string' || !existsSync(r.adapter)) return null;
  return { adapter: r.adapter, generated: r.generated === true };
}

/** Each metric's mean over the subjects (DINO null when it was not measured). */
function methodScores(
  method: TrainingMethodName,
  bySubject: Record<string, SubjectScores>,
): MethodScores {
  const runs = Object.values(bySubject);
  const rows = runs.map((r) => r.scores);
  const mean = (pick: (r: MetricScores) => number) =>
    rows.reduce((a, r) => a + pick(r), 0) / Math.max(1, rows.length);
  const dinoMeasured = rows.length > 0 && rows.every((r) => r.dino !== null && r.dinoV !== null);
  const perSubject = Object.fromEntries(
    Object.entries(bySubject).map(([name, r]) => [name, r.scores]),
  );
  return {
    method,
    perSubject,
    mean: {
      clipI: mean((r) => r.clipI),
      clipIv: mean((r) => r.clipIv),
      clipT: mean((r) => r.clipT),
      dino: dinoMeasured ? mean((r) => r.dino!) : null,
      dinoV: dinoMeasured ? mean((r) => r.dinoV!) : null,
    },
    images: runs.reduce((a, r) => a + r.images, 0),
  };
}
