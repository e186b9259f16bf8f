// What every route reaches: the server's options and the stores and services built from them.
import type { JobQueue } from '../../src/jobs/job.js';
import type { ModelsInfo } from './api.js';
import type { MaskService } from './masks.js';
import type { SubjectStore } from './subjects.js';

export interface ServerContext {
  dataDir: string;
  baseModel: string;
  clipModel: string;
  queue: JobQueue;
  subjects: SubjectStore;
  masks: MaskService;
  /** The models' facts, read once; their request defaults apply under each request's own. */
  models: ModelsInfo;
}
