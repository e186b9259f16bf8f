// The messages between the server (masks.ts) and its mask worker thread (mask_worker.ts): plain
// JSON-able objects, since tensors cannot cross threads.
import type { Point } from './api.js';

/** The RNGR settings the worker masks with (mask_settings.ts's, as `p3s mask` takes them). */
export interface MaskWorkerSettings {
  clipFolder: string;
  layer: number;
  dense: number;
}

export interface MaskWorkerRequest {
  id: number;
  settings: MaskWorkerSettings;
  /** Only load CLIP (at the server's start), so the first click does not wait for it. */
  warmUp?: boolean;
  /** The mask folder to write (mask_outputs.ts's layout and summary.json). */
  outDir: string;
  /** What summary.json records about the subject. */
  identifier: string;
  classWord: string;
  /** Each photo's file, its name (<pid>.png, so the outputs are <pid>.*.png) and its clicks. */
  photos: { path: string; name: string; positive: Point[]; negative: Point[] }[];
}

export interface MaskWorkerPhoto {
  propagated: boolean;
  /** Share of the photo's pixels in the subject mask. */
  subjectShare: number;
  /** The files written, by role (mask_outputs.ts: subjectMask, distractorMask, overlay, filled). */
  files: Record<string, string>;
}

export type MaskWorkerReply =
  | {
      id: number;
      ok: true;
      photos: MaskWorkerPhoto[];
      millis: number;
      /** Photos whose CLIP features were computed for this request (the rest were cached). */
      encoded: number;
    }
  | { id: number; ok: false; error: { name: string; message: string } };
