import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Generator, Tensor, memory, ops, zeros, tidy } from '../../src/index.js';
import { ModelLoadError } from '../../src/models/loading.js';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { DDIMScheduler, PNDMScheduler } from '../../src/schedulers/index.js';
import { StableDiffusionPipeline, denoise } from '../../src/pipelines/index.js';
import { fixturePath } from '../helpers/paths.js';
import { assertClose, maxAbsDiff } from '../helpers/tensors.js';

const root = fixturePath('tiny-sd');
const ref = SafetensorsFile.open(join(root, 'reference.safetensors'));
const PROMPT = 'a photo of sks dog in the snow';
const GENERATION = { atol: 1e-3, rtol: 1e-3 };
const EMBEDS = { atol: 1e-4, rtol: 1e-4 };

const ddim = StableDiffusionPipeline.fromPretrained(root, { scheduler: 'ddim' });
const pndm = StableDiffusionPipeline.fromPretrained(root); // SD 1.5's config: PNDM
const tmp = mkdtempSync(join(tmpdir(), 'p3s-sd-'));
after(() => {
  ddim.dispose();
  pndm.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

function expected(name: string): { shape: readonly number[]; data: number[] } {
  const t = ref.tensor(name);
  const out = { shape: [...t.shape], data: t.toArray() };
  t.dispose();
  return out;
}

function check(label: string, actual: Tensor, name: string, tol: { atol: number; rtol: number }) {
  const e = expected(name);
  console.log(`${label}: max abs error ${maxAbsDiff(actual.toArray(), e.data).toExponential(2)}`);
  assertClose(actual, e, { ...tol, label });
}

test('fromPretrained picks the scheduler: from-config is PNDM, ddim converts the config', () => {
  assert.ok(pndm.scheduler instanceof PNDMScheduler);
  assert.ok(ddim.scheduler instanceof DDIMScheduler);
  assert.equal(ddim.scheduler.config.steps_offset, 1);
  assert.equal(ddim.scheduler.config.beta_schedule, 'scaled_linear');
  assert.equal(ddim.vaeScaleFactor, 8);
});

test('encodePrompt matches diffusers encode_prompt (prompt and the empty negative)', () => {
  const before = memory().liveTensors;
  const { promptEmbeds, negativePromptEmbeds } = ddim.encodePrompt(PROMPT);
  check('prompt embeds', promptEmbeds, 'pipeline_prompt_embeds', EMBEDS);
  check('negative embeds', negativePromptEmbeds!, 'pipeline_negative_prompt_embeds', EMBEDS);
  promptEmbeds.dispose();
  negativePromptEmbeds!.dispose();
  const none = ddim.encodePrompt([PROMPT, 'x'], null, { numImagesPerPrompt: 2 });
  assert.deepEqual([...none.promptEmbeds.shape], [4, 77, 32]);
  assert.equal(none.negativePromptEmbeds, null);
  // rows repeat per prompt: [p0, p0, p1, p1]
  const rows = none.promptEmbeds.chunk(4, 0);
  assert.equal(maxAbsDiff(rows[0]!.toArray(), rows[1]!.toArray()), 0);
  assert.ok(maxAbsDiff(rows[1]!.toArray(), rows[2]!.toArray()) > 0);
  for (const t of [...rows, none.promptEmbeds]) t.dispose();
  assert.throws(() => ddim.encodePrompt(['a', 'b'], ['c', 'd', 'e']), /one per prompt/);
  assert.equal(memory().liveTensors, before);
});

for (const [name, pipe] of [
  ['ddim', ddim],
  ['pndm', pndm],
] as const) {
  test(`10-step ${name.toUpperCase()} generation at guidance 7.5 matches diffusers`, async () => {
    const latents = ref.tensor('pipeline_latents');
    const before = memory().liveTensors;
    const steps: number[] = [];
    const out = await pipe.generate({
      prompt: PROMPT,
      steps: 10,
      guidanceScale: 7.5,
      latents,
      height: 64,
      width: 64,
      onStep: (i, total) => {
        steps.push(i);
        assert.equal(total, name === 'pndm' ? 11 : 10);
      },
    });
    assert.equal(steps.length, name === 'pndm' ? 11 : 10);
    check(`${name} final latents`, out.latents, `pipeline_${name}_final_latents`, GENERATION);
    const pixels = pipe.decodeLatents(out.latents);
    check(`${name} image`, pixels, `pipeline_${name}_image`, GENERATION);
    // the 8-bit image is diffusers' numpy_to_pil of that tensor: round(x·255)
    const e = expected(`pipeline_${name}_image`);
    assert.equal(out.images.length, 1);
    const img = out.images[0]!;
    assert.deepEqual([img.width, img.height], [64, 64]);
    let worst = 0;
    for (let c = 0; c < 3; c++) {
      for (let i = 0; i < 64 * 64; i++) {
        worst = Math.max(
          worst,
          Math.abs(img.data[i * 3 + c]! - Math.round(e.data[c * 4096 + i]! * 255)),
        );
      }
    }
    assert.ok(worst <= 1, `8-bit image differs by ${worst}`);
    pixels.dispose();
    out.latents.dispose();
    assert.equal(memory().liveTensors, before, 'generate leaves only its returned latents');
    latents.dispose();
  });
}

test('the same seed gives the same images, another seed other images', async () => {
  const run = async (seed: number) => {
    const out = await ddim.generate({ prompt: PROMPT, steps: 3, seed, height: 32, width: 32 });
    out.latents.dispose();
    return out.images[0]!.data;
  };
  const a = await run(7);
  const b = await run(7);
  const c = await run(8);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
});

test('negative prompts change the output; guidance 1 ignores them', async () => {
  const run = async (negativePrompt: string | undefined, guidanceScale = 7.5) => {
    const out = await ddim.generate({
      prompt: PROMPT,
      negativePrompt,
      guidanceScale,
      steps: 3,
      seed: 3,
      height: 32,
      width: 32,
    });
    const l = out.latents.toArray();
    out.latents.dispose();
    return l;
  };
  const plain = await run(undefined);
  assert.deepEqual(await run(''), plain);
  assert.ok(maxAbsDiff(await run('blurry, low quality'), plain) > 1e-3);
  assert.deepEqual(await run('blurry', 1), await run(undefined, 1));
});

test('numImages and a batch of prompts give one image each', async () => {
  const out = await ddim.generate({
    prompt: [PROMPT, 'a sks backpack'],
    numImages: 2,
    steps: 2,
    seed: 1,
    height: 16,
    width: 24,
  });
  assert.equal(out.images.length, 4);
  assert.deepEqual([out.images[0]!.width, out.images[0]!.height], [24, 16]);
  assert.deepEqual([...out.latents.shape], [4, 4, 2, 3]);
  out.latents.dispose();
  await assert.rejects(
    ddim.generate({ prompt: PROMPT, height: 60, width: 64, steps: 1 }),
    /positive multiples of 8/,
  );
  await assert.rejects(ddim.generate({ prompt: PROMPT, steps: 0 }), /positive integer for steps/);
  await assert.rejects(
    ddim.generate({ prompt: PROMPT, seed: 1, generator: new Generator(1) }),
    /not both/,
  );
});

test('DDIM eta > 0 adds noise drawn from the same generator, reproducibly', async () => {
  const run = async (eta: number) => {
    const out = await ddim.generate({
      prompt: PROMPT,
      steps: 3,
      seed: 5,
      height: 16,
      width: 16,
      eta,
    });
    const l = out.latents.toArray();
    out.latents.dispose();
    return l;
  };
  const deterministic = await run(0);
  const a = await run(1);
  assert.deepEqual(await run(1), a);
  assert.ok(maxAbsDiff(a, deterministic) > 1e-3);
});

test('fromPretrained names a missing or unsupported component', () => {
  const make = (name: string, edit: (index: Record<string, unknown>) => void, skip?: string) => {
    const dir = join(tmp, name);
    mkdirSync(dir);
    const index = JSON.parse(readFileSync(join(root, 'model_index.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    edit(index);
    writeFileSync(join(dir, 'model_index.json'), JSON.stringify(index));
    for (const c of ['tokenizer', 'text_encoder', 'unet', 'vae', 'scheduler']) {
      if (c !== skip) symlinkSync(join(root, c), join(dir, c));
    }
    return dir;
  };
  assert.throws(
    () => StableDiffusionPipeline.fromPretrained(make('no-vae', () => {}, 'vae')),
    (e: Error) => e instanceof ModelLoadError && /Missing vae\/ folder/.test(e.message),
  );
  assert.throws(
    () => StableDiffusionPipeline.fromPretrained(make('no-unet-entry', (i) => delete i.unet)),
    (e: Error) => e instanceof ModelLoadError && /lists no unet/.test(e.message),
  );
  assert.throws(
    () =>
      StableDiffusionPipeline.fromPretrained(
        make('t5-te', (i) => (i.text_encoder = ['transformers', 'T5EncoderModel'])),
      ),
    /Unsupported text_encoder class "T5EncoderModel"/,
  );
  // CLIPTextModelWithProjection is accepted (the toy models use it); plain CLIPTextModel weights
  // then lack its projection, and the error names the key
  assert.throws(
    () =>
      StableDiffusionPipeline.fromPretrained(
        make(
          'with-projection',
          (i) => (i.text_encoder = ['transformers', 'CLIPTextModelWithProjection']),
        ),
      ),
    /Cannot load text_encoder\/ .* does not fit CLIPTextModelWithProjection: missing keys: text_projection\.weight/,
  );
  assert.throws(
    () => StableDiffusionPipeline.fromPretrained(join(tmp, 'nowhere')),
    /does not exist/,
  );
  // a component that fails to load is named, with the loader's own message
  const broken = make('broken-vae', () => {}, 'vae');
  mkdirSync(join(broken, 'vae'));
  writeFileSync(join(broken, 'vae', 'config.json'), readFileSync(join(root, 'vae', 'config.json')));
  const before = memory().liveTensors;
  assert.throws(
    () => StableDiffusionPipeline.fromPretrained(broken),
    (e: Error) =>
      e instanceof ModelLoadError &&
      /Cannot load vae\/ of/.test(e.message) &&
      /No weights in/.test(e.message),
  );
  assert.equal(memory().liveTensors, before, 'the text encoder and U-Net loaded before are freed');
});

test('denoise: guidance pairs [uncond; cond] and combines ε_∅ + w(ε_c − ε_∅)', async () => {
  const scheduler = DDIMScheduler.fromPretrained(root);
  const x = zeros([1, 4, 2, 2]);
  const seen: number[] = [];
  // ε_∅ = 0 and ε_c = 1 everywhere, so the guided ε is w.
  const guided = await denoise({
    scheduler,
    latents: x,
    steps: 1,
    guidanceScale: 3,
    predict: (input) => {
      seen.push(input.shape[0]!);
      return tidy(() => {
        const [u, c] = input.chunk(2, 0);
        return ops.cat([u!.mul(0), c!.mul(0).add(1)], 0);
      });
    },
  });
  assert.deepEqual(seen, [2]);
  // one DDIM step from x = 0 with ε = 3: x₀ = −√(1−ᾱ)·3/√ᾱ, x_prev = √ᾱ_prev x₀ + √(1−ᾱ_prev)·3
  const t = scheduler.timesteps[0]!;
  const a = scheduler.alphasCumprod[t]!;
  const ap = scheduler.finalAlphaCumprod;
  const want = Math.sqrt(ap) * ((-Math.sqrt(1 - a) * 3) / Math.sqrt(a)) + Math.sqrt(1 - ap) * 3;
  for (const v of guided.toArray()) assert.ok(Math.abs(v - want) < 1e-5, `${v} vs ${want}`);
  guided.dispose();
  const plain = await denoise({
    scheduler,
    latents: x,
    steps: 2,
    guidanceScale: 1,
    predict: (input) => {
      seen.push(input.shape[0]!);
      return input.mul(0);
    },
  });
  assert.deepEqual(seen, [2, 1, 1]);
  plain.dispose();
  x.dispose();
});
