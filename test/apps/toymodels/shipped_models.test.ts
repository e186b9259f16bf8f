// The shipped toy models (models/toy) on held-out scenes: each quality number of the model card,
// recomputed on a smaller sample, stays above a floor set from measurement (the measured value on
// exactly this sample, less a margin for thread-count rounding differences).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { setNumThreads } from '../../../src/engine/index.js';
import { CLIPTextModelWithProjection } from '../../../src/models/clip/clip_text_model.js';
import { CLIPVisionModelWithProjection } from '../../../src/models/clip/clip_vision_model.js';
import { AutoencoderKL } from '../../../src/models/vae/autoencoder_kl.js';
import { DensePatchExtractor } from '../../../src/p3s/supervision/dense_features.js';
import { loadClipExtractor } from '../../../src/p3s/supervision/mask_job.js';
import { StableDiffusionPipeline } from '../../../src/pipelines/stable_diffusion.js';
import { CLIPTokenizer } from '../../../src/tokenizers/clip_tokenizer.js';
import { AttributeProbe } from '../../../apps/toymodels/probe.js';
import {
  clipRetrieval,
  generationAccuracy,
  probeAccuracy,
  rngrQuality,
  vaeRoundTripAccuracy,
} from '../../../apps/toymodels/quality.js';
import { repoRoot } from '../../helpers/paths.js';

setNumThreads(2);
const MODELS = join(repoRoot(), 'models', 'toy');
let probe: AttributeProbe;

before(() => {
  probe = AttributeProbe.load(join(MODELS, 'probe'));
});
after(() => probe.dispose());

test('the tiny CLIP retrieves the true caption of held-out scenes', (t) => {
  const tokenizer = CLIPTokenizer.fromPretrained(join(MODELS, 'tokenizer'));
  const text = CLIPTextModelWithProjection.fromPretrained(join(MODELS, 'text_encoder')).eval();
  const vision = CLIPVisionModelWithProjection.fromPretrained(join(MODELS, 'image_encoder')).eval();
  try {
    const r = clipRetrieval(text, vision, tokenizer, 100);
    t.diagnostic(JSON.stringify(r));
    assert.ok(r.accuracy >= FLOORS.retrieval, `retrieval ${r.accuracy}`);
    assert.ok(r.hardAccuracy >= FLOORS.hardRetrieval, `hard retrieval ${r.hardAccuracy}`);
  } finally {
    text.dispose();
    vision.dispose();
  }
});

test('the probe reads held-out scenes', (t) => {
  const r = probeAccuracy(probe, 256);
  t.diagnostic(JSON.stringify(r));
  for (const k of ['colour', 'shape', 'pattern', 'background'] as const) {
    assert.ok(r[k] >= FLOORS.probe[k], `${k} ${r[k]}`);
  }
});

test('VAE round trips keep the colour and pattern the probe reads', (t) => {
  const vae = AutoencoderKL.fromPretrained(join(MODELS, 'vae')).eval();
  try {
    const r = vaeRoundTripAccuracy(vae, probe, 256);
    t.diagnostic(JSON.stringify(r));
    assert.ok(r.colourAndPattern >= FLOORS.roundTrip, `colour + pattern ${r.colourAndPattern}`);
  } finally {
    vae.dispose();
  }
});

test('text-to-image: generated objects carry the prompted attributes', async (t) => {
  const pipe = StableDiffusionPipeline.fromPretrained(MODELS, { scheduler: 'ddim' });
  try {
    const r = await generationAccuracy(pipe, probe, { count: 32, steps: 20 });
    t.diagnostic(
      JSON.stringify({
        colour: r.colour,
        shape: r.shape,
        pattern: r.pattern,
        background: r.background,
      }),
    );
    for (const k of ['colour', 'shape', 'pattern', 'background'] as const) {
      assert.ok(r[k] >= FLOORS.generation[k], `${k} ${r[k]}`);
    }
  } finally {
    pipe.dispose();
  }
});

test('RNGR masks select the clicked object of a look-alike pair', async (t) => {
  const extractor = loadClipExtractor(join(MODELS, 'image_encoder'), FLOORS.maskLayer);
  try {
    const r = await rngrQuality(new DensePatchExtractor(extractor, FLOORS.maskDense), 50);
    t.diagnostic(JSON.stringify(r));
    assert.ok(r.subjectIoU >= FLOORS.rngrIoU, `IoU ${r.subjectIoU}`);
    assert.ok(r.distractorLeak <= FLOORS.rngrLeak, `leak ${r.distractorLeak}`);
    assert.ok(r.distractorIoU >= FLOORS.rngrDistractorIoU, `look-alike IoU ${r.distractorIoU}`);
    // Eq. (2) as the paper writes it, on the same pairs: what the default masks improve on.
    const paper = await rngrQuality(new DensePatchExtractor(extractor, FLOORS.maskDense), 50, {
      rule: 'product',
      refine: 'none',
      clickRadius: 0,
    });
    t.diagnostic(`Eq. (2) as written: ${JSON.stringify(paper)}`);
    assert.ok(r.subjectIoU > paper.subjectIoU + 0.2, `${r.subjectIoU} vs ${paper.subjectIoU}`);
    // Eq. (1)'s query the clicked patch alone: the circle around the click finds patterned
    // subjects whole
    const alone = await rngrQuality(new DensePatchExtractor(extractor, FLOORS.maskDense), 50, {
      clickRadius: 0,
    });
    t.diagnostic(`clicked patch alone: ${JSON.stringify(alone)}`);
    assert.ok(r.subjectIoU > alone.subjectIoU + 0.1, `${r.subjectIoU} vs ${alone.subjectIoU}`);
  } finally {
    extractor.model.dispose();
  }
});

// Measured on exactly these samples (2 threads): retrieval 0.91 / hard 0.28 (chance 0.125; the
// text encoder is the one trained with the U-Net, not the CLIP stage's); probe 1 on every head;
// VAE round trips colour + pattern 0.969 (colour 0.969, shape 0.980, pattern 1); generation
// colour 0.969, shape 0.906, pattern 0.938, background 1 (chance 0.167, 0.2, 0.33, 0.167); RNGR
// (after layer 2, dense 4, compare rule, guided, clicks 0.625 patches around, spread masks cut
// back): subject IoU 0.894, leak 0.006, look-alike IoU 0.880 (the clicked patch alone: 0.654;
// Eq. 2 as written: 0.398); the rest in quality.json.
const FLOORS = {
  retrieval: 0.85,
  hardRetrieval: 0.22,
  probe: { colour: 0.95, shape: 0.95, pattern: 0.95, background: 0.95 },
  roundTrip: 0.9,
  generation: { colour: 0.9, shape: 0.84, pattern: 0.87, background: 0.9 },
  maskLayer: 2,
  maskDense: 4,
  rngrIoU: 0.86,
  rngrLeak: 0.02,
  rngrDistractorIoU: 0.83,
};
