// `npm run train:toy` at a few steps per stage: the output is a diffusers Stable Diffusion folder
// (fp16 weights, SD 1.5's file names and keys) that the pipeline loads and samples from, a
// finished run only re-exports, and the same seed writes byte-identical weights.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setNumThreads } from '../../../src/engine/index.js';
import { equal } from '../../../src/engine/ops.generated.js';
import { SafetensorsFile } from '../../../src/io/safetensors.js';
import { CheckpointError } from '../../../src/training/checkpoint.js';
import { StableDiffusionPipeline } from '../../../src/pipelines/stable_diffusion.js';
import { CLIPVisionModelWithProjection } from '../../../src/models/clip/clip_vision_model.js';
import { AttributeProbe } from '../../../apps/toymodels/probe.js';
import {
  checkNeeds,
  readTrainingReport,
  trainToyModels,
  type ToyStage,
} from '../../../apps/toymodels/train_toy.js';
import { PRETRAINED_ADAPTER_FILE } from '../../../apps/toymodels/adapter_stage.js';
import { sceneImage } from '../../../apps/toymodels/data.js';
import { trainP3S } from '../../../src/p3s/train.js';
import { writePng } from '../../../src/io/image.js';
import { makeSubjectReferenceSet } from '../../../src/toyworld/index.js';
import { fixturePath } from '../../helpers/paths.js';

setNumThreads(1);
let root = '';
const STEPS = { vae: 2, clip: 2, probe: 2, unet: 2, adapter: 2 };

before(() => {
  root = mkdtempSync(join(tmpdir(), 'p3s-train-toy-'));
});
after(() => rmSync(root, { recursive: true, force: true }));

test('train:toy writes a diffusers folder that the SD pipeline loads and samples from', async () => {
  const out = join(root, 'a');
  const reports = await trainToyModels({
    out,
    work: join(root, 'work-a'),
    seed: 0,
    stages: ['vae', 'clip', 'probe', 'unet', 'adapter'],
    tokenizer: fixturePath('clip-tokenizer'),
    steps: STEPS,
    progress: false,
  });
  assert.deepEqual(
    reports.map((r) => [r.stage, r.ran]),
    [
      ['vae', 2],
      ['clip', 2],
      ['probe', 2],
      ['unet', 2],
      ['adapter', 2],
    ],
  );
  for (const file of [
    'model_index.json',
    'unet/diffusion_pytorch_model.safetensors',
    'vae/diffusion_pytorch_model.safetensors',
    'text_encoder/model.safetensors',
    'image_encoder/model.safetensors',
    'image_encoder/preprocessor_config.json',
    'tokenizer/vocab.json',
    'tokenizer/LICENSE',
    'scheduler/scheduler_config.json',
    'probe/probe.safetensors',
    PRETRAINED_ADAPTER_FILE,
    'README.md',
    'training.json',
  ]) {
    assert.ok(existsSync(join(out, file)), file);
  }
  const unetFile = SafetensorsFile.open(join(out, 'unet/diffusion_pytorch_model.safetensors'));
  assert.equal(unetFile.info('conv_in.weight').dtype, 'float16');
  const vaeConfig = JSON.parse(readFileSync(join(out, 'vae/config.json'), 'utf8')) as {
    scaling_factor: number;
  };
  assert.ok(vaeConfig.scaling_factor > 0 && vaeConfig.scaling_factor !== 0.18215);

  const pipe = StableDiffusionPipeline.fromPretrained(out, { scheduler: 'ddim' });
  try {
    const { images } = await pipe.generate({
      prompt: 'a red star on the beach',
      steps: 2,
      seed: 1,
    });
    assert.equal(images[0]!.width, 64);
    assert.equal(images[0]!.height, 64);
  } finally {
    pipe.dispose();
  }
  CLIPVisionModelWithProjection.fromPretrained(join(out, 'image_encoder')).dispose();
  // the pretrained adapter: fp16 weights for this U-Net, which p3s train can start from
  const adapterFile = join(out, PRETRAINED_ADAPTER_FILE);
  assert.equal(SafetensorsFile.open(adapterFile).info('copy.conv_in.weight').dtype, 'float16');
  const logs: string[] = [];
  mkdirSync(join(root, 'a-refs'));
  for (const [k, im] of makeSubjectReferenceSet(4, { count: 2 }).images.entries())
    await writePng(join(root, 'a-refs', `ref-${k}.png`), sceneImage(im.scene));
  const fineTuned = await trainP3S(
    {
      baseModel: out,
      clipModel: join(out, 'image_encoder'),
      outDir: join(root, 'a-fine-tune'),
      references: [join(root, 'a-refs')],
      classWord: 'star',
      maxSteps: 1,
      initAdapter: adapterFile,
      evaluate: false,
    },
    { observers: [{ onLog: (m) => logs.push(m) }] },
  );
  assert.ok(existsSync(fineTuned.adapterPath));
  assert.match(
    readFileSync(join(out, 'README.md'), 'utf8'),
    /\n\| adapter \| P3S adapter on subject pairs/,
  );
  assert.equal(readTrainingReport(out).clip?.hardNegatives, 0, 'training.json records k');
  assert.ok(
    logs.some((m) => m.startsWith('Adapter starts from')),
    logs.join('\n'),
  );
  AttributeProbe.load(join(out, 'probe')).dispose();

  // A finished stage only re-exports: nothing runs, the weights stay the same bytes.
  const before = readFileSync(join(out, 'vae/diffusion_pytorch_model.safetensors'));
  const again = await trainToyModels({
    out,
    work: join(root, 'work-a'),
    seed: 0,
    stages: ['vae'],
    steps: STEPS,
    progress: false,
  });
  assert.equal(again[0]!.ran, 0);
  assert.ok(before.equals(readFileSync(join(out, 'vae/diffusion_pytorch_model.safetensors'))));
});

test('the decoder stage trains the decoder only: encoder, latents and scaling stay exact', async () => {
  const out = join(root, 'd');
  const work = join(root, 'work-d');
  const common = { out, work, seed: 0, steps: STEPS, progress: false };
  await trainToyModels({
    ...common,
    stages: ['vae'],
    tokenizer: fixturePath('clip-tokenizer'),
  });
  const file = join(out, 'vae/diffusion_pytorch_model.safetensors');
  const config = () => readFileSync(join(out, 'vae/config.json'), 'utf8');
  const load = () => SafetensorsFile.open(file).loadAll();
  const base = load();
  const baseConfig = config();
  const reports = await trainToyModels({
    ...common,
    stages: ['decoder'],
    steps: { ...STEPS, decoder: 10 },
    decoderObjectWeight: 4,
  });
  assert.deepEqual(
    reports.map((r) => [r.stage, r.ran, r.objectWeight]),
    [['decoder', 10, 4]],
  );
  assert.equal(
    readTrainingReport(out).decoder?.objectWeight,
    4,
    'training.json records the weight',
  );
  const tuned = load();
  let changed = 0;
  for (const [key, tensor] of base) {
    const same = equal(tensor, tuned.get(key)!);
    if (key.startsWith('encoder.') || key.startsWith('quant_conv.')) assert.ok(same, key);
    else if (!same) changed++;
  }
  assert.ok(changed > 10, `${changed} decoder tensors changed`);
  assert.equal(config(), baseConfig, 'same config, scaling factor included');
  for (const t of [...base.values(), ...tuned.values()]) t.dispose();
  // Run again: it restarts from the VAE stage's export and re-exports the same bytes.
  const first = readFileSync(file);
  const decoderRun = { ...common, stages: ['decoder'] as const, steps: { ...STEPS, decoder: 10 } };
  const again = await trainToyModels({ ...decoderRun, decoderObjectWeight: 4 });
  assert.equal(again[0]!.ran, 0);
  assert.ok(first.equals(readFileSync(file)));
  // Another weight is another recipe: the stage's checkpoints are refused, not mixed.
  await assert.rejects(
    trainToyModels(decoderRun),
    (err: unknown) =>
      err instanceof CheckpointError &&
      /differs in objectWeight \(checkpoint 4, now 0\)/.test(err.message) &&
      err.message.includes(`delete ${join(work, 'decoder')} to start the decoder stage afresh`),
  );
});

test('a stage missing what earlier stages make names it and them before anything runs', async () => {
  const out = join(root, 'n');
  const work = join(root, 'work-n');
  const run = (stages: ToyStage[]) =>
    trainToyModels({ out, work, seed: 0, stages, tokenizer: fixturePath('clip-tokenizer') });
  await assert.rejects(run(['probe', 'unet', 'adapter']), {
    message: `The unet stage needs ${join(out, 'vae')} and ${join(out, 'text_encoder')}: run the vae and clip stages first`,
  });
  await assert.rejects(run(['clip', 'eval']), {
    message: `The eval stage needs ${join(out, 'vae')}, ${join(out, 'unet')} and ${join(out, 'probe')}: run the vae, unet and probe stages first`,
  });
  assert.ok(!existsSync(work), 'no stage ran');
});

test('the clip stage alone is refused where the U-Net learnt with the text encoder it would replace', () => {
  const out = join(root, 'paired');
  for (const part of ['unet', 'vae']) {
    mkdirSync(join(out, part), { recursive: true });
    writeFileSync(join(out, part, 'config.json'), '{}');
  }
  const report = (trainTextEncoder: boolean) =>
    writeFileSync(
      join(out, 'training.json'),
      JSON.stringify({ unet: { trainTextEncoder: Number(trainTextEncoder) } }),
    );
  report(true);
  assert.throws(() => checkNeeds(['clip'], out), {
    message: `The clip stage would replace ${join(out, 'text_encoder')}, which ${join(out, 'unet')} was trained with (its text encoder learnt along with the U-Net): run the unet stage after it (--stages clip,unet), or give another --out`,
  });
  assert.throws(() => checkNeeds(['clip', 'probe'], out), /would replace/);
  checkNeeds(['clip', 'unet'], out); // the U-Net is trained again on the new one
  report(false);
  checkNeeds(['clip'], out); // a frozen text encoder is the clip stage's own
});

test('the same seed writes byte-identical weights', async () => {
  const run = async (name: string) => {
    await trainToyModels({
      out: join(root, name),
      work: join(root, `work-${name}`),
      seed: 3,
      stages: ['vae', 'probe'],
      tokenizer: fixturePath('clip-tokenizer'),
      steps: STEPS,
      progress: false,
    });
    return [
      readFileSync(join(root, name, 'vae/diffusion_pytorch_model.safetensors')),
      readFileSync(join(root, name, 'probe/probe.safetensors')),
    ];
  };
  const [a, b] = [await run('x'), await run('y')];
  assert.ok(a[0]!.equals(b[0]!));
  assert.ok(a[1]!.equals(b[1]!));
});

test('--unet-train-text-encoder trains the text encoder with the U-Net and exports it; frozen, it stays', async () => {
  const shipped = join(root, 'a'); // the first test's folder
  assert.ok(existsSync(join(shipped, 'text_encoder')), 'run with the first test');
  const textBytes = (folder: string) =>
    readFileSync(join(folder, 'text_encoder', 'model.safetensors'));
  const run = async (name: string, trainTextEncoder: boolean) => {
    const out = join(root, name);
    cpSync(shipped, out, { recursive: true });
    await trainToyModels({
      out,
      work: join(root, `work-${name}`),
      seed: 0,
      stages: ['unet'],
      tokenizer: fixturePath('clip-tokenizer'),
      steps: STEPS,
      unetTrainTextEncoder: trainTextEncoder,
      progress: false,
    });
    return out;
  };
  const frozen = await run('frozen-text', false);
  assert.ok(textBytes(frozen).equals(textBytes(shipped)), 'a frozen text encoder is not rewritten');
  const joint = await run('joint-text', true);
  assert.ok(!textBytes(joint).equals(textBytes(shipped)), 'the trained text encoder is exported');
  assert.equal(readTrainingReport(joint).unet?.trainTextEncoder, 1);
  assert.equal(readTrainingReport(frozen).unet?.trainTextEncoder, 0);
});

test('--unet-noise-schedule zero-snr-v writes a DDIM v-prediction config the pipeline samples with from pure noise', async () => {
  const shipped = join(root, 'a'); // the first test's folder
  assert.ok(existsSync(join(shipped, 'unet')), 'run with the first test');
  const out = join(root, 'zero-snr');
  cpSync(shipped, out, { recursive: true });
  const [report] = await trainToyModels({
    out,
    work: join(root, 'work-zero-snr'),
    seed: 0,
    stages: ['unet'],
    tokenizer: fixturePath('clip-tokenizer'),
    steps: STEPS,
    unetNoiseSchedule: 'zero-snr-v',
    progress: false,
  });
  assert.equal(report!.ran, 2);
  const config = JSON.parse(readFileSync(join(out, 'scheduler', 'scheduler_config.json'), 'utf8'));
  assert.equal(config._class_name, 'DDIMScheduler');
  assert.equal(config.prediction_type, 'v_prediction');
  assert.equal(config.rescale_betas_zero_snr, true);
  assert.equal(config.timestep_spacing, 'trailing');
  const index = JSON.parse(readFileSync(join(out, 'model_index.json'), 'utf8'));
  assert.deepEqual(index.scheduler, ['diffusers', 'DDIMScheduler']);
  const pipeline = StableDiffusionPipeline.fromPretrained(out, { scheduler: 'ddim' });
  try {
    const scheduler = pipeline.scheduler;
    scheduler.setTimesteps(4);
    assert.equal(Array.from(scheduler.timesteps)[0], 999, 'sampling starts at pure noise');
    assert.equal(scheduler.alphasCumprod[999], 0);
    const { images } = await pipeline.generate({ prompt: 'a red star', steps: 2, seed: 1 });
    assert.equal(images.length, 1);
  } finally {
    pipeline.dispose();
  }
  // the shipped schedule's checkpoints are another run: not resumed into this one
  const sd15 = JSON.parse(
    readFileSync(join(shipped, 'scheduler', 'scheduler_config.json'), 'utf8'),
  );
  assert.equal(sd15.prediction_type, 'epsilon');
});
