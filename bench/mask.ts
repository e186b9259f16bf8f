// Point-supervision benchmarks: the Eq. (2) post-processing alone, and the whole mask job for
// five 512-px photos with a ViT-L/14-sized CLIP (random weights) on CPU.
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { readImage, resizeImage, type RgbImage } from '../src/io/image.js';
import { manualSeed } from '../src/engine/random.js';
import { CLIPVisionModel } from '../src/models/clip/clip_vision_model.js';
import { VIT_L_14 } from './clip.js';
import { ClipPatchExtractor } from '../src/p3s/supervision/clip_features.js';
import { buildSubjectMasks } from '../src/p3s/supervision/rngr.js';
import { benchMaskPostprocess } from './mask_postprocess.js';

export interface BenchLine {
  name: string;
  value: number;
  unit: string;
  [key: string]: unknown;
}

export async function benchMask(dreambenchDir: string): Promise<BenchLine[]> {
  const post = benchMaskPostprocess(50);
  const guided = benchMaskPostprocess(20, 'default');
  manualSeed(0);
  const model = new CLIPVisionModel(VIT_L_14).eval();
  const photos: RgbImage[] = [];
  for (const name of ['dog/00.jpg', 'dog/01.jpg', 'dog5/00.jpg', 'cat/00.jpg', 'backpack/00.jpg']) {
    photos.push(resizeImage(await readImage(join(dreambenchDir, name)), 512, 512));
  }
  const extractor = new ClipPatchExtractor(model);
  const t0 = performance.now();
  await buildSubjectMasks(
    photos.map((image, i) => ({
      name: `photo${i}`,
      image,
      positive: i === 0 ? [[150, 256]] : [],
      negative: i === 0 ? [[380, 256]] : [],
    })),
    extractor,
  );
  const seconds = (performance.now() - t0) / 1000;
  model.dispose();
  return [
    { name: 'mask.postprocess_16x16_to_512', value: post.value, unit: post.unit },
    {
      name: 'mask.postprocess_16x16_to_512_compare_guided',
      value: guided.value,
      unit: guided.unit,
      ratio_vs_eq2_as_written: Number((guided.value / post.value).toFixed(2)),
    },
    {
      name: 'mask.job_5x512px_vit_l14_cpu',
      value: Number(seconds.toFixed(2)),
      unit: 's',
      peak_rss_mib: Math.round(process.resourceUsage().maxRSS / 1024),
    },
  ];
}
