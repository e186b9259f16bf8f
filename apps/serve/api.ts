// The HTTP API of `p3s serve`: every route, and the JSON each takes and returns. The page uses
// exactly this (apps/serve/page/), the OpenAPI description (openapi.ts) is generated from the
// same facts, and the routes (routes/) implement it. All paths are under /api; ids are
// server-made ([a-z0-9-]{1,64}) and validated on every request.
//
//   GET    /api/health                                  -> { ok: true, version }
//   GET    /api/openapi.json                            -> OpenAPI 3.1 description
//   GET    /api/models                                  -> ModelsInfo
//   GET    /api/subjects                                -> Subject[]
//   POST   /api/subjects            NewSubject          -> Subject (201)
//   GET    /api/subjects/:sid                           -> Subject
//   PATCH  /api/subjects/:sid       Partial<NewSubject> -> Subject
//   DELETE /api/subjects/:sid                           -> 204 (refused 409 while a job runs)
//   POST   /api/subjects/:sid/photos   multipart "photos" (1..8 files) -> Subject (201)
//   GET    /api/subjects/:sid/photos/:pid               -> image/png (as stored: EXIF applied,
//                                                          scaled to ≤ MAX_PHOTO_SIDE)
//   DELETE /api/subjects/:sid/photos/:pid               -> Subject
//   PUT    /api/subjects/:sid/photos/:pid/points  Points -> Subject
//   POST   /api/subjects/:sid/masks                     -> MaskPreview (live, in ≤ 1 s on toy)
//   GET    /api/subjects/:sid/masks/:pid/:layer.png     -> image/png; layer: MaskLayer
//   POST   /api/subjects/:sid/train     TrainRequest    -> JobRecord (202)
//   POST   /api/subjects/:sid/generate  GenerateRequest -> JobRecord (202)
//   GET    /api/jobs?subject=:sid                       -> JobRecord[] (newest first)
//   GET    /api/jobs/:jid                               -> JobRecord
//   POST   /api/jobs/:jid/cancel                        -> JobRecord (409 when finished)
//   GET    /api/jobs/:jid/files/:name                   -> a file the job wrote (PNG, safetensors)
//   GET    /api/jobs/:jid/archive.zip                   -> every image of a generate job
//   GET    /api/events                                  -> text/event-stream of JobEvent
//
// Errors: 4xx/5xx with ApiError. With --token (required off 127.0.0.1), every /api request
// carries "Authorization: Bearer <token>" (or ?token= for EventSource and <img> URLs).
import type { JobEvent, JobRecord } from '../../src/jobs/job.js';

export type { JobEvent, JobRecord };

/** Every error response's body. */
export interface ApiError {
  error: string;
  /** HTTP status, repeated for clients that only see the body. */
  statusCode: number;
}

export interface ModelsInfo {
  /** Base model folder's name and whether it is the shipped toy model. */
  base: string;
  clip: string;
  toy: boolean;
  /** Default training resolution in px (the U-Net's sample_size × the VAE's factor). */
  resolution: number;
  /** Contexts one click away on the generate form: "{} on the beach", ... */
  exampleContexts: string[];
  /**
   * Settings a train or generate request starts from, by API key, before its own: on the toy
   * models the recipe that draws the subject there (`p3s demo`'s), else none (the library's).
   */
  trainDefaults: Record<string, unknown>;
  generateDefaults: Record<string, unknown>;
}

export interface NewSubject {
  name: string;
  /** The class word, "dog"; one lowercase word. */
  classWord: string;
}

export type Point = [number, number];

/** Clicks on a photo, in its pixels (as stored): positive on the subject, negative on a look-alike. */
export interface Points {
  positive: Point[];
  negative: Point[];
}

export interface Photo extends Points {
  id: string;
  /** The uploaded file's name, for display only. */
  name: string;
  width: number;
  height: number;
}

export interface Subject extends NewSubject {
  id: string;
  /** The rare token that names it in prompts ("sks"). */
  identifier: string;
  createdAt: string;
  photos: Photo[];
}

export type MaskLayer = 'subject' | 'distractor' | 'overlay' | 'filled';

export interface PhotoMask {
  photoId: string;
  /** Whether its mask came from another photo's clicks (it has none of its own). */
  propagated: boolean;
  /** Share of the photo's pixels in the subject mask. */
  subjectShare: number;
  /** URLs of the layers, each with a version so the browser refetches after a new click. */
  layers: Partial<Record<MaskLayer, string>>;
}

export interface MaskPreview {
  photos: PhotoMask[];
  /** Milliseconds the masks took (the server's measure). */
  millis: number;
  /** Photos whose CLIP features were computed for these masks; the others came from the cache. */
  encoded: number;
}

/** `p3s train`'s settings by their API key (TRAIN_SETTINGS), all optional: defaults apply. */
export interface TrainRequest {
  settings?: Record<string, unknown>;
}

export interface GenerateRequest {
  /** The training job whose adapter to use. */
  trainJob: string;
  /** Prompts with "{}" where the subject goes. */
  prompts: string[];
  numImages?: number;
  seed?: number;
  guidanceScale?: number;
  steps?: number;
}

export const LIMITS = {
  /** Photos per subject. */
  maxPhotos: 8,
  /** Bytes per uploaded file. */
  maxUploadBytes: 20 * 1024 * 1024,
  /** Longer side of a stored photo; larger uploads are scaled down on arrival. */
  maxPhotoSide: 1024,
  /** Shorter side of a photo at least: smaller ones cannot be masked or trained on. */
  minPhotoSide: 32,
  /** Points per photo and kind. */
  maxPoints: 16,
  /** Prompts per generate request, images per prompt. */
  maxPrompts: 16,
  maxImages: 16,
  /** Characters per prompt. */
  maxPromptLength: 300,
  /** DDIM steps of a generate request. */
  maxSteps: 1000,
} as const;
