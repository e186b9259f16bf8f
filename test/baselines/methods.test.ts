// The baselines as fine-tuning methods on the tiny fixture model (tiny-sd) with toy-world
// reference latents: a few optimizer steps lower each one's fixed evaluation loss, they change
// only the parameters they should (every other tensor of U-Net, text encoder and VAE stays
// bit-identical), and they write the files diffusers reads.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setNumThreads } from '../../src/engine/index.js';
import { Generator } from '../../src/engine/random.js';
import { noGrad } from '../../src/engine/autograd.js';
import { ones, zeros } from '../../src/engine/creation.js';
import * as ops from '../../src/engine/ops.generated.js';
import type { Tensor } from '../../src/engine/tensor.js';
import { disposeAll, tidy } from '../../src/engine/scope.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { Adam } from '../../src/optim/adam.js';
import { encodeLatents } from '../../src/p3s/references.js';
import { StableDiffusionPipeline } from '../../src/pipelines/stable_diffusion.js';
import type { DDPMScheduler } from '../../src/schedulers/scheduling_ddpm.js';
import { makeSubjectReferenceSet } from '../../src/toyworld/pairs.js';
import { DataOrder } from '../../src/training/data_order.js';
import {
  evaluationBatch,
  evaluationLoss,
  fineTuningStep,
  type FineTuningData,
} from '../../src/training/fine_tuning.js';
import type { TrainingMethodName } from '../../src/p3s/train_settings.js';
import {
  applyArtifact,
  baselineArtifact,
  createBaseline,
  subjectToken,
  type BaselineMethod,
} from '../../src/baselines/index.js';
import { fixturePath } from '../helpers/paths.js';

setNumThreads(1);

const BASE = fixturePath('tiny-sd');
let root = '';

before(() => {
  root = mkdtempSync(join(tmpdir(), 'p3s-baselines-'));
});

after(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

type Baseline = Exclude<TrainingMethodName, 'p3s'>;

interface Setup {
  pipeline: StableDiffusionPipeline;
  method: BaselineMethod;
  data: FineTuningData;
  owned: Tensor[];
}

/** A frozen tiny-sd, two toy references, and the method as the trainer would build it. */
async function setup(
  name: Baseline,
  outDir: string,
  over: {
    backgroundLossWeight?: number;
    priorLossWeight?: number;
    trainTextEncoder?: boolean;
  } = {},
): Promise<Setup> {
  mkdirSync(outDir, { recursive: true }); // the trainer's output folder exists before the method
  const pipeline = StableDiffusionPipeline.fromPretrained(BASE, { scheduler: 'ddpm' });
  for (const m of [pipeline.unet, pipeline.vae, pipeline.textEncoder]) m.freeze().eval();
  const scheduler = pipeline.scheduler as DDPMScheduler;
  const set = makeSubjectReferenceSet(11, { count: 2, size: 64 });
  const latents = encodeLatents(
    set.images.map(({ scene }) => ({ width: scene.size, height: scene.size, data: scene.rgb })),
    pipeline.vae,
  );
  const prompt = `a ${subjectToken(name, 'sks')} toy`;
  const { promptEmbeds: both } = pipeline.encodePrompt([prompt, ''], null);
  const contexts = { prompt: both.slice(0, 0, 1), empty: both.slice(0, 1, 2) };
  const method = await createBaseline({
    method: name,
    pipeline,
    scheduler,
    prompt,
    identifier: 'sks',
    classWord: 'toy',
    resolution: 64,
    settings: {
      baseModel: BASE,
      outDir,
      seed: 0,
      backgroundLossWeight: 1,
      classImages: 2,
      priorLossWeight: 1,
      trainTextEncoder: false,
      ...over,
    },
    baseFingerprint: 'test',
    log: () => {},
  });
  const data: FineTuningData = {
    references: { latents, subjectMasks: null, variants: [] },
    contexts,
    scheduler,
    settings: { batchSize: 2, gradientAccumulation: 1, conditionDropout: 0.25 },
    order: new DataOrder(0, 2),
    generator: new Generator(0),
  };
  return { pipeline, method, data, owned: [latents, both, contexts.prompt, contexts.empty] };
}

/** Every tensor of the pipeline's models as bytes, by "model/key". */
function snapshot(pipeline: StableDiffusionPipeline): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const models = { unet: pipeline.unet, text: pipeline.textEncoder, vae: pipeline.vae };
  for (const [name, model] of Object.entries(models)) {
    for (const [key, t] of model.stateDict()) {
      const a = t.contiguous().toTypedArray();
      out.set(
        `${name}/${key}`,
        Buffer.from(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength)),
      );
    }
  }
  return out;
}

const changedKeys = (a: Map<string, Buffer>, b: Map<string, Buffer>): string[] =>
  [...a.keys()].filter((k) => !a.get(k)!.equals(b.get(k)!));

/** Trains `steps` optimizer steps; returns the evaluation loss before and after. */
function train(s: Setup, steps: number, lr: number): { before: number; after: number } {
  // prints `# <method>: evaluation loss a → b` with the test's output
  const optimizer = new Adam(s.method.trainable.parameters(), { lr });
  const before = evaluationLoss(s.data, s.method);
  for (let step = 0; step < steps; step++) {
    const loss = fineTuningStep(s.data, s.method, step);
    assert.ok(Number.isFinite(loss.loss));
    optimizer.step();
    optimizer.zeroGrad();
  }
  const after = evaluationLoss(s.data, s.method);
  optimizer.dispose();
  console.log(`${s.method.name}: evaluation loss ${before.toFixed(5)} → ${after.toFixed(5)}`);
  return { before, after };
}

function dispose(s: Setup): void {
  s.method.dispose();
  disposeAll(s.owned);
  s.pipeline.dispose();
}

const keysOf = (path: string): string[] => SafetensorsFile.open(path).keys();

test('DreamBooth trains the U-Net only, draws its class images once, and saves a unet folder', async () => {
  const out = join(root, 'dreambooth');
  const s = await setup('dreambooth', out);
  try {
    assert.ok(existsSync(join(out, 'class-images', '0001.png')));
    const was = snapshot(s.pipeline);
    const loss = train(s, 4, 1e-3);
    assert.ok(loss.after < loss.before, `evaluation loss ${loss.before} → ${loss.after}`);
    const changed = changedKeys(was, snapshot(s.pipeline));
    assert.ok(changed.length > 0 && changed.every((k) => k.startsWith('unet/')), changed.join());
    const dir = s.method.save(out, 4);
    assert.ok(existsSync(join(dir, 'config.json')));
    const saved = keysOf(join(dir, 'diffusion_pytorch_model.safetensors'));
    assert.deepEqual(saved.sort(), [...s.pipeline.unet.stateDict().keys()].sort());
  } finally {
    dispose(s);
  }
});

test('DreamBooth with its text encoder trains both, and generation puts both back as saved', async () => {
  const out = join(root, 'dreambooth-te');
  const s = await setup('dreambooth', out, { trainTextEncoder: true });
  try {
    const was = snapshot(s.pipeline);
    const loss = train(s, 4, 1e-3);
    assert.ok(loss.after < loss.before, `evaluation loss ${loss.before} → ${loss.after}`);
    const changed = changedKeys(was, snapshot(s.pipeline));
    const models = new Set(changed.map((k) => k.split('/')[0]));
    assert.deepEqual([...models].sort(), ['text', 'unet'], 'the VAE stays as it was');
    const dir = s.method.save(out, 4);
    const te = join(out, 'text_encoder');
    assert.ok(existsSync(join(te, 'config.json')));
    const saved = keysOf(join(te, 'model.safetensors'));
    assert.deepEqual(saved.sort(), [...s.pipeline.textEncoder.stateDict().keys()].sort());
    // a fresh base model with the artifact on it encodes the prompt as the trained one does
    const trained = noGrad(() => s.pipeline.encodePrompt(['a sks toy'], null).promptEmbeds);
    const fresh = StableDiffusionPipeline.fromPretrained(BASE);
    try {
      applyArtifact(fresh, baselineArtifact(dir)!);
      const loaded = noGrad(() => fresh.encodePrompt(['a sks toy'], null).promptEmbeds);
      assert.equal(
        tidy(() => loaded.sub(trained).abs().max().item()),
        0,
      );
      disposeAll([loaded, trained]);
    } finally {
      fresh.dispose();
    }
  } finally {
    dispose(s);
  }
});

test('Textual Inversion trains one token embedding; every model weight stays bit-identical', async () => {
  const out = join(root, 'ti');
  const s = await setup('textual-inversion', out);
  try {
    assert.ok(!existsSync(join(out, 'class-images')), 'no class images without a prior');
    const was = snapshot(s.pipeline);
    const token = tidy(() => s.method.trainable.parameters()[0]!.clone());
    const loss = train(s, 4, 5e-2);
    assert.ok(loss.after < loss.before, `evaluation loss ${loss.before} → ${loss.after}`);
    assert.deepEqual(changedKeys(was, snapshot(s.pipeline)), []);
    const now = s.method.trainable.parameters()[0]!;
    assert.ok(tidy(() => now.sub(token).abs().max().item()) > 0, 'the token embedding moved');
    const path = s.method.save(out, 4);
    const file = SafetensorsFile.open(path);
    assert.deepEqual(file.keys(), ['<sks>']);
    assert.deepEqual(file.info('<sks>').shape, [1, 32]);
    assert.equal(file.metadata.p3s_method, 'textual-inversion');
    token.dispose();
  } finally {
    dispose(s);
  }
  // the tokenizer is left as loaded
  assert.equal(s.pipeline.tokenizer.encode('<sks>').length > 1, true);
});

test('Custom Diffusion trains cross-attention K/V and a token only, saved under diffusers keys', async () => {
  const out = join(root, 'cd');
  const s = await setup('custom-diffusion', out);
  try {
    const was = snapshot(s.pipeline);
    const loss = train(s, 4, 1e-3);
    assert.ok(loss.after < loss.before, `evaluation loss ${loss.before} → ${loss.after}`);
    const changed = changedKeys(was, snapshot(s.pipeline));
    assert.ok(changed.length > 0);
    for (const k of changed) assert.match(k, /^unet\/.*\.attn2\.to_[kv]\.weight$/);
    const path = s.method.save(out, 4);
    const keys = keysOf(path);
    const attn2 = [...s.pipeline.unet.stateDict().keys()].filter((k) =>
      /\.attn2\.to_[kv]\.weight$/.test(k),
    );
    assert.equal(keys.length, attn2.length);
    for (const k of keys) assert.match(k, /\.attn2\.processor\.to_[kv]_custom_diffusion\.weight$/);
    assert.deepEqual(keysOf(join(out, 'learned_embeds.safetensors')), ['<sks>']);
  } finally {
    dispose(s);
  }
});

test("--background-loss-weight 0 weighs any method's error inside the subject mask only", async () => {
  const s = await setup('dreambooth', join(root, 'masked'), {
    backgroundLossWeight: 0,
    priorLossWeight: 0,
  });
  try {
    const loss = (mask: Tensor | null, target: (t: Tensor) => Tensor): number =>
      noGrad(() =>
        tidy(() => {
          const batch = evaluationBatch(s.data, 0, 2, new Generator(1));
          const changed = { ...batch, target: target(batch.target), subjectMasks: mask };
          return s.method.loss(changed, null).loss.item();
        }),
      );
    // the subject is the left half of the latent; the right half's target is thrown off
    const mask = tidy(() => ops.cat([ones([2, 1, 8, 4]), zeros([2, 1, 8, 4])], 3));
    const offRight = (t: Tensor): Tensor => ops.cat([t.slice(3, 0, 4), t.slice(3, 4, 8).add(5)], 3);
    assert.equal(
      loss(mask, offRight),
      loss(mask, (t) => t),
    );
    assert.ok(loss(null, offRight) > loss(null, (t) => t) + 1, 'without masks it counts');
    mask.dispose();
  } finally {
    dispose(s);
  }
});
