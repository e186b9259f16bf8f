// End to end on the shipped toy models: a reference set where every photo shows the subject next
// to a look-alike, a positive click on the subject and a negative one on the look-alike, RNGR
// masks, a short P3S fine-tune and generation in new contexts — then the probe reads what the
// generated images show. Measured on these models (models/toy/README.md, docs/toy.md): with the
// paper's adapter the prompted context comes out and the subject's look does not; with p3s
// demo's recipe the subject's look comes out more often with the negative click than without
// (the floors below are what the current models reach; raise them as the models improve).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setNumThreads } from '../../../src/engine/index.js';
import { AttributeProbe } from '../../../apps/toymodels/probe.js';
import {
  EXPERIMENT_CONTEXTS,
  runSubjectExperiment,
  type ExperimentResult,
} from '../../../apps/toymodels/experiment.js';
import { recipeExperimentSettings, TOY_RECIPE } from '../../../apps/toymodels/recipes.js';
import { repoRoot } from '../../helpers/paths.js';

setNumThreads(2);
const MODELS = join(repoRoot(), 'models', 'toy');
let root = '';
let probe: AttributeProbe;

before(() => {
  root = mkdtempSync(join(tmpdir(), 'p3s-selective-'));
  probe = AttributeProbe.load(join(MODELS, 'probe'));
});
after(() => {
  probe.dispose();
  rmSync(root, { recursive: true, force: true });
});

test('after a short P3S fine-tune the generated images show the prompted new contexts', async (t) => {
  const r = await runSubjectExperiment({
    modelFolder: MODELS,
    outDir: root,
    subjectSeed: SUBJECT,
    steps: STEPS,
    learningRate: 1e-4,
    imagesPerPrompt: 2,
    maskLayer: MASK_LAYER,
    maskDense: MASK_DENSE,
    probe,
  });
  t.diagnostic(
    JSON.stringify({
      subject: r.subject,
      fidelity: r.fidelity,
      lookalikeRate: r.lookalikeRate,
      shape: r.shapeAccuracy,
      background: r.backgroundAccuracy,
      iou: r.masks.map((m) => m.subjectIoU),
      seen: r.generated.map((g) => g.seen),
    }),
  );
  assert.equal(r.generated.length, 2 * EXPERIMENT_CONTEXTS.length);
  assert.ok(r.losses.length === STEPS && r.losses.every(Number.isFinite));
  assert.ok(
    r.backgroundAccuracy >= BACKGROUND_FLOOR,
    `context as prompted in ${r.backgroundAccuracy}`,
  );
  // The selection itself: the clicked object's mask in every reference photo.
  const iou = r.masks.reduce((a, m) => a + m.subjectIoU, 0) / r.masks.length;
  assert.ok(iou >= MASK_IOU_FLOOR, `mean reference-mask IoU ${iou}`);
});

test("with p3s demo's recipe, the subject's look comes out, and only with the negative click", async (t) => {
  const run = (negativePoint: boolean): Promise<ExperimentResult> =>
    runSubjectExperiment({
      modelFolder: MODELS,
      outDir: join(root, negativePoint ? 'recipe-selective' : 'recipe-baseline'),
      subjectSeed: RECIPE_SUBJECT,
      negativePoint,
      imagesPerPrompt: RECIPE_IMAGES,
      maskLayer: MASK_LAYER,
      maskDense: MASK_DENSE,
      probe,
      ...recipeExperimentSettings(TOY_RECIPE),
    });
  // one thread: faster than two for these small tensors, and the thread count the floor was
  // measured with (results move by an image or two with the thread count)
  setNumThreads(1);
  let selective: ExperimentResult;
  let baseline: ExperimentResult;
  try {
    selective = await run(true);
    baseline = await run(false);
  } finally {
    setNumThreads(2);
  }
  t.diagnostic(
    JSON.stringify({
      withNegative: { fidelity: selective.fidelity, lookalike: selective.lookalikeRate },
      positiveOnly: { fidelity: baseline.fidelity, lookalike: baseline.lookalikeRate },
      seen: selective.generated.map((g) => `${g.seen.colour} ${g.seen.pattern} ${g.seen.shape}`),
    }),
  );
  // the subject is a red striped square; its look-alikes differ from it in one attribute:
  // colour, pattern and shape together single it out
  assert.ok(
    selective.fidelity >= RECIPE_FIDELITY_FLOOR,
    `subject's colour, pattern and shape in ${selective.fidelity} of images`,
  );
  assert.ok(
    selective.fidelity >= baseline.fidelity + RECIPE_GAIN_FLOOR,
    `the negative click bought too little: ${selective.fidelity} vs ${baseline.fidelity}`,
  );
  assert.ok(
    selective.lookalikeRate < baseline.lookalikeRate,
    `a look-alike's look ${selective.lookalikeRate} vs ${baseline.lookalikeRate} without the click`,
  );
});

const SUBJECT = 0;
const STEPS = 100;
// The CLIP layer and grid density quality.json measured best (the demo's choice).
const MASK_LAYER = 2;
const MASK_DENSE = 4;
// Measured 1.0 (12 of 12 images; chance 0.167).
const BACKGROUND_FLOOR = 0.75;
// Measured 0.86 (0.91, 0.75, 0.97, 0.79) with the default masks (compare rule, guided, clicks
// 0.625 patches around): this subject (an orange checkered cross next to green, yellow and solid
// orange crosses) was among the hardest for the tiny CLIP with the clicked patch alone (0.44).
const MASK_IOU_FLOOR = 0.7;
// The recipe test: the evaluation subject where the eval stage saw the clearest difference both
// ways (the mean over all eight is 48.6 % with the click against 43.8 % without), 3 images per
// context as there. Measured with one thread (the eval stage's run, since references are
// mirrored at random): the subject's look in 12 of 18 images with the negative click, 5 of 18
// without; a look-alike's in 0 of 18 against 2 of 18.
const RECIPE_SUBJECT = 102;
const RECIPE_IMAGES = 3;
const RECIPE_FIDELITY_FLOOR = 0.6;
const RECIPE_GAIN_FLOOR = 0.25;
