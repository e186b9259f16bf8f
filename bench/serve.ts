// The web app's live mask (issue 21: "within 1 s on the toy models on 2 CPU cores"): the time
// from a click to new masks for every photo of the server's toy subject, through the HTTP API
// (points saved, masks recomputed in the mask worker from cached CLIP features, PNGs written).
// Reference in the same run: `p3s mask` on the same photos, clicks and mask settings, which
// loads CLIP and encodes every photo each time.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Subject } from '../apps/serve/api.js';
import { liveMaskSettings } from '../apps/serve/mask_settings.js';
import { createServer } from '../apps/serve/server.js';
import { SHIPPED_TOY_MODELS } from '../apps/demo/settings.js';
import { LocalJobQueue } from '../src/jobs/local_queue.js';
import type { BenchLine } from './mask.js';

const CLICKS = 5;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export async function benchServe(): Promise<BenchLine[]> {
  const dataDir = mkdtempSync(join(tmpdir(), 'p3s-bench-serve-'));
  const queue = await LocalJobQueue.open({ dataDir });
  const clip = join(SHIPPED_TOY_MODELS, 'image_encoder');
  const app = createServer({
    dataDir,
    baseModel: SHIPPED_TOY_MODELS,
    clipModel: clip,
    queue,
    host: '127.0.0.1',
  });
  try {
    await app.ready();
    const [subject] = (await app.inject({ url: '/api/subjects' })).json<Subject[]>();
    const sid = subject!.id;
    const photo = subject!.photos[0]!;
    const masks = async (): Promise<number> => {
      const t0 = performance.now();
      const r = await app.inject({ method: 'POST', url: `/api/subjects/${sid}/masks` });
      if (r.statusCode !== 200) throw new Error(`masks: ${r.statusCode} ${r.body}`);
      return performance.now() - t0;
    };
    const first = await masks(); // CLIP loaded, every photo encoded
    const clicks: number[] = [];
    for (let k = 0; k < CLICKS; k++) {
      const t0 = performance.now();
      const [x, y] = photo.positive[0]!;
      const points = { positive: [[x + (k % 2), y]], negative: photo.negative };
      const url = `/api/subjects/${sid}/photos/${photo.id}/points`;
      const put = await app.inject({ method: 'PUT', url, payload: points });
      if (put.statusCode !== 200) throw new Error(`points: ${put.statusCode} ${put.body}`);
      await masks();
      clicks.push(performance.now() - t0);
    }
    const cli = await cliMaskMillis(dataDir, sid, clip);
    const click = median(clicks);
    return [
      {
        name: 'serve.live_mask_first',
        value: Math.round(first),
        unit: 'ms',
        photos: subject!.photos.length,
      },
      {
        name: 'serve.live_mask_after_click',
        value: Math.round(click),
        unit: 'ms',
        target_ms: 1000,
        ratio_vs_target: Number((click / 1000).toFixed(2)),
        ratio_vs_p3s_mask: Number((click / cli).toFixed(2)),
        p3s_mask_ms: Math.round(cli),
      },
    ];
  } finally {
    await app.close();
    await queue.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** `p3s mask` (runMaskJob: CLIP loaded, every photo encoded) on the subject's photos and clicks. */
async function cliMaskMillis(dataDir: string, sid: string, clip: string): Promise<number> {
  const { readFileSync, writeFileSync } = await import('node:fs');
  const { runMaskJob } = await import('../src/p3s/supervision/mask_job.js');
  const subject = JSON.parse(
    readFileSync(join(dataDir, 'subjects', sid, 'subject.json'), 'utf8'),
  ) as Subject;
  const annotation = join(dataDir, 'annotation.json');
  writeFileSync(
    annotation,
    JSON.stringify({
      classWord: subject.classWord,
      images: subject.photos.map((p) => ({
        path: join(dataDir, 'subjects', sid, 'photos', `${p.id}.png`),
        positive: p.positive,
        negative: p.negative,
      })),
    }),
  );
  const { layer, dense } = liveMaskSettings(SHIPPED_TOY_MODELS, clip); // as the server's
  const t0 = performance.now();
  const outDir = join(dataDir, 'cli-masks');
  await runMaskJob({ annotationPath: annotation, clipFolder: clip, outDir, layer, dense });
  return performance.now() - t0;
}
