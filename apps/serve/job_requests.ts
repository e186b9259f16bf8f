// The train and generate requests of the API, validated into job inputs: the request says only
// what a person may choose (settings, prompts, counts); every path — models, references, the
// adapter, the output folder — is the server's. Settings go through the library's own tables
// (TRAIN_SETTINGS, GENERATE_SETTINGS), so the API refuses exactly what `p3s train` would, in the
// same words, naming the setting by its API key.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { JobInput, JobQueue, JobRecord } from '../../src/jobs/job.js';
import { GENERATE_SETTINGS, type GenerateP3SConfig } from '../../src/p3s/generate_settings.js';
import { TRAIN_SETTINGS } from '../../src/p3s/train_settings.js';
import { closestName } from '../../src/settings/closest.js';
import { resolveSettings } from '../../src/settings/table.js';
import { LIMITS, type ModelsInfo, type Subject } from './api.js';
import { badRequest, conflict, notFound } from './errors.js';
import { checkId } from './ids.js';

/** The queue puts every job's output in its own folder; this only fills the required field. */
const OUT_DIR_PLACEHOLDER = '(the job folder)';
export const ADAPTER_FILE = 'adapter.safetensors';

/**
 * Train settings a request may not give: paths (which could name any file on the server), the
 * subject's own words (from the subject), and the run-folder controls the queue owns.
 */
export const SERVER_TRAIN_KEYS: readonly string[] = [
  'baseModel',
  'clipModel',
  'outDir',
  'references',
  'annotation',
  'initAdapter',
  'resumeFrom',
  'classWord',
  'identifier',
  'resume',
  'branch',
  'overwrite',
];

/** The train settings a request may give, in table order. */
export const REQUEST_TRAIN_KEYS: readonly string[] = TRAIN_SETTINGS.map(
  (s) => s.key as string,
).filter((k) => !SERVER_TRAIN_KEYS.includes(k));

function checkObject(body: unknown, what: string): Record<string, unknown> {
  if (body === undefined || body === null) return {};
  if (typeof body !== 'object' || Array.isArray(body))
    throw badRequest(`Expected a JSON object for ${what}`);
  return body as Record<string, unknown>;
}

function refuseUnknown(obj: Record<string, unknown>, known: readonly string[], what: string): void {
  for (const key of Object.keys(obj)) {
    if (known.includes(key)) continue;
    const meant = closestName(key, known);
    throw badRequest(
      `Unknown field ${JSON.stringify(key)} in ${what}${meant ? `; did you mean ${JSON.stringify(meant)}?` : ''}`,
    );
  }
}

/** The settings of a TrainRequest, checked against TRAIN_SETTINGS (a SettingError is a 400). */
export function checkTrainSettings(body: unknown): Record<string, unknown> {
  const request = checkObject(body, 'a train request');
  refuseUnknown(request, ['settings'], 'a train request');
  const settings = checkObject(request.settings, 'settings');
  for (const key of Object.keys(settings)) {
    if (SERVER_TRAIN_KEYS.includes(key))
      throw badRequest(
        `settings.${key} is set by the server (the models, the subject's photos and words, the job's folder), not by a request`,
      );
  }
  refuseUnknown(settings, REQUEST_TRAIN_KEYS, 'settings');
  resolveSettings(TRAIN_SETTINGS, { ...settings, baseModel: '-', clipModel: '-', outDir: '-' });
  return settings;
}

export function trainInput(
  body: unknown,
  server: {
    baseModel: string;
    clipModel: string;
    references: string;
    subject: Subject;
    models: ModelsInfo;
  },
): JobInput {
  const settings = checkTrainSettings(body);
  return {
    kind: 'train',
    config: {
      ...server.models.trainDefaults,
      ...settings,
      baseModel: server.baseModel,
      clipModel: server.clipModel,
      outDir: OUT_DIR_PLACEHOLDER,
      references: [server.references],
      classWord: server.subject.classWord,
      identifier: server.subject.identifier,
    },
  };
}

/** The finished training job of this subject whose adapter a generate request names. */
export function adapterOf(queue: JobQueue, sid: string, trainJob: unknown): string {
  const id = checkId(trainJob, 'training job');
  let job: JobRecord;
  try {
    job = queue.get(id);
  } catch {
    throw notFound(`No training job ${id}`);
  }
  if (job.input.kind !== 'train' || job.owner !== sid)
    throw notFound(`No training job ${id} for subject ${sid}`);
  if (job.state !== 'succeeded')
    throw conflict(`Training job ${id} is ${job.state}: generating needs one that succeeded`);
  const adapter = join(job.dir, ADAPTER_FILE);
  if (!existsSync(adapter)) throw conflict(`Training job ${id} has no ${ADAPTER_FILE}`);
  return adapter;
}

function checkPrompts(value: unknown): string[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > LIMITS.maxPrompts)
    throw badRequest(`Expected 1 to ${LIMITS.maxPrompts} prompts, such as ["a {} on the beach"]`);
  return value.map((p: unknown, i) => {
    const prompt = typeof p === 'string' ? p.trim() : '';
    if (!prompt || prompt.length > LIMITS.maxPromptLength)
      throw badRequest(
        `Expected prompts[${i}] to be a text of 1 to ${LIMITS.maxPromptLength} characters but received ${JSON.stringify(p)}`,
      );
    return prompt;
  });
}

function checkCount(value: unknown, key: string, max: number): void {
  if (
    value !== undefined &&
    !(Number.isSafeInteger(value) && (value as number) >= 1 && (value as number) <= max)
  )
    throw badRequest(
      `Expected an integer in [1, ${max}] for ${key} but received ${JSON.stringify(value)}`,
    );
}

const GENERATE_KEYS = ['trainJob', 'prompts', 'numImages', 'seed', 'guidanceScale', 'steps'];

export function generateInput(
  body: unknown,
  server: { baseModel: string; queue: JobQueue; sid: string; models: ModelsInfo },
): JobInput {
  const request = checkObject(body, 'a generate request');
  refuseUnknown(request, GENERATE_KEYS, 'a generate request');
  const prompts = checkPrompts(request.prompts);
  checkCount(request.numImages, 'numImages', LIMITS.maxImages);
  checkCount(request.steps, 'steps', LIMITS.maxSteps);
  const chosen: Record<string, unknown> = { ...server.models.generateDefaults, prompts };
  for (const key of ['numImages', 'seed', 'guidanceScale', 'steps'])
    if (request[key] !== undefined) chosen[key] = request[key];
  const adapter = adapterOf(server.queue, server.sid, request.trainJob);
  const config = { ...chosen, baseModel: server.baseModel, adapter, outDir: OUT_DIR_PLACEHOLDER };
  resolveSettings(GENERATE_SETTINGS, config);
  return { kind: 'generate', config: config as GenerateP3SConfig };
}
