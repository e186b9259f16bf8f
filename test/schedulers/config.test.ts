// Scheduler configs: defaults, from_config's treatment of other schedulers' keys, the factory,
// and errors that name the key and the values allowed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DDIMScheduler,
  DDPMScheduler,
  PNDMScheduler,
  SchedulerBase,
  SchedulerConfigError,
  schedulerFromConfig,
  schedulerFromPretrained,
} from '../../src/schedulers/index.js';

const SD15_PNDM = {
  _class_name: 'PNDMScheduler',
  _diffusers_version: '0.6.0',
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  beta_start: 0.00085,
  num_train_timesteps: 1000,
  set_alpha_to_one: false,
  skip_prk_steps: true,
  steps_offset: 1,
  trained_betas: null,
  clip_sample: false,
};

function throwsNaming(fn: () => unknown, key: string, allowed: RegExp): void {
  assert.throws(fn, (err: Error) => {
    assert.ok(err instanceof SchedulerConfigError, `${err.name}: ${err.message}`);
    assert.ok(err.message.includes(`"${key}"`), `names ${key}: ${err.message}`);
    assert.match(err.message, allowed);
    return true;
  });
}

test('unsupported values name the key and the allowed values', () => {
  throwsNaming(
    () => new DDIMScheduler({ timestep_spacing: 'even' as never }),
    'timestep_spacing',
    /allowed: "leading", "trailing", "linspace"/,
  );
  throwsNaming(
    () => DDIMScheduler.fromConfig({ beta_schedule: 'cosine' }),
    'beta_schedule',
    /allowed: "linear", "scaled_linear", "squaredcos_cap_v2"/,
  );
  throwsNaming(
    () => DDPMScheduler.fromConfig({ beta_schedule: 'exp' }),
    'beta_schedule',
    /"sigmoid"/,
  );
  throwsNaming(
    () => DDIMScheduler.fromConfig({ prediction_type: 'flow' }),
    'prediction_type',
    /allowed: "epsilon", "v_prediction", "sample"/,
  );
  throwsNaming(
    () => PNDMScheduler.fromConfig({ ...SD15_PNDM, prediction_type: 'sample' }),
    'prediction_type',
    /allowed: "epsilon", "v_prediction"$/,
  );
  throwsNaming(
    () => DDIMScheduler.fromConfig({ num_train_timesteps: '1000' }),
    'num_train_timesteps',
    /a positive integer/,
  );
  throwsNaming(
    () => new DDIMScheduler({ num_train_timesteps: 0 }),
    'num_train_timesteps',
    /positive/,
  );
  throwsNaming(() => DDIMScheduler.fromConfig({ clip_sample: 'no' }), 'clip_sample', /true, false/);
  throwsNaming(
    () => DDIMScheduler.fromConfig({ steps_offset: -1 }),
    'steps_offset',
    /non-negative/,
  );
  throwsNaming(() => DDIMScheduler.fromConfig({ thresholding: true }), 'thresholding', /false/);
  throwsNaming(
    () => DDPMScheduler.fromConfig({ variance_type: 'learned_range' }),
    'variance_type',
    /"fixed_small", "fixed_small_log", "fixed_large"/,
  );
  throwsNaming(
    () => DDIMScheduler.fromConfig({ trained_betas: [0.1, 'x'] }),
    'trained_betas',
    /null/,
  );
});

test('PNDM without skip_prk_steps (diffusers default false) is refused, naming the key', () => {
  throwsNaming(() => new PNDMScheduler(), 'skip_prk_steps', /true \(PLMS only/);
  throwsNaming(
    () => PNDMScheduler.fromConfig({ ...SD15_PNDM, skip_prk_steps: false }),
    'skip_prk_steps',
    /PRK/,
  );
});

test('constructors refuse unknown keys; fromConfig ignores them and keeps them aside', () => {
  assert.throws(
    () => new DDIMScheduler({ skip_prk_steps: true } as never),
    /DDIMScheduler: unknown config key "skip_prk_steps"; known keys: num_train_timesteps/,
  );
  const ddim = DDIMScheduler.fromConfig({ ...SD15_PNDM, some_future_key: 3 });
  assert.deepEqual(ddim.ignoredConfig, { skip_prk_steps: true, some_future_key: 3 });
  // "_" keys are the file's metadata, not config
  assert.ok(!('_class_name' in ddim.ignoredConfig));
  // missing keys take DDIM's own defaults
  assert.equal(ddim.config.prediction_type, 'epsilon');
  assert.equal(ddim.config.timestep_spacing, 'leading');
  assert.equal(ddim.config.rescale_betas_zero_snr, false);
  // overrides win over the file
  const trailing = DDIMScheduler.fromConfig(SD15_PNDM, { timestep_spacing: 'trailing' });
  assert.equal(trailing.config.timestep_spacing, 'trailing');
  // PNDM's config has no clip_sample: loading SD 1.5's file into PNDM ignores it
  const pndm = PNDMScheduler.fromConfig(SD15_PNDM);
  assert.deepEqual(pndm.ignoredConfig, { clip_sample: false });
});

test('DDIM defaults are diffusers 0.27.2 defaults', () => {
  const ddim = new DDIMScheduler();
  assert.deepEqual(ddim.config, {
    num_train_timesteps: 1000,
    beta_start: 0.0001,
    beta_end: 0.02,
    beta_schedule: 'linear',
    trained_betas: null,
    clip_sample: true,
    set_alpha_to_one: true,
    steps_offset: 0,
    prediction_type: 'epsilon',
    thresholding: false,
    dynamic_thresholding_ratio: 0.995,
    clip_sample_range: 1.0,
    sample_max_value: 1.0,
    timestep_spacing: 'leading',
    rescale_betas_zero_snr: false,
  });
  assert.equal(ddim.finalAlphaCumprod, 1);
  assert.equal(ddim.timesteps.length, 1000);
  assert.equal(ddim.timesteps[0], 999);
});

test('trained_betas must have num_train_timesteps values', () => {
  assert.throws(
    () => new DDIMScheduler({ num_train_timesteps: 4, trained_betas: [0.1, 0.2] }),
    /trained_betas has 2 values but num_train_timesteps is 4/,
  );
  const s = new DDIMScheduler({ num_train_timesteps: 2, trained_betas: [0.1, 0.5] });
  assert.deepEqual([...s.betas], [Math.fround(0.1), 0.5]);
  assert.deepEqual([...s.alphasCumprod], [Math.fround(0.9), Math.fround(0.45)]);
});

test('the factory picks the class from _class_name, or the one asked for', () => {
  assert.ok(schedulerFromConfig(SD15_PNDM) instanceof PNDMScheduler);
  const ddim = schedulerFromConfig(SD15_PNDM, { className: 'DDIMScheduler' });
  assert.ok(ddim instanceof DDIMScheduler);
  ddim.setTimesteps(50);
  assert.equal(ddim.timesteps[0], 981);
  assert.ok(
    schedulerFromConfig({ ...SD15_PNDM, _class_name: 'DDIMScheduler' }) instanceof DDIMScheduler,
  );
  throwsNaming(
    () => schedulerFromConfig({ ...SD15_PNDM, _class_name: 'EulerDiscreteScheduler' }),
    '_class_name',
    /allowed: "DDPMScheduler", "DDIMScheduler", "PNDMScheduler"/,
  );
  throwsNaming(
    () => schedulerFromConfig({ beta_start: 0.001 }),
    '_class_name',
    /or pass options.className/,
  );
});

test('fromPretrained reads scheduler_config.json from a scheduler folder or a pipeline folder', () => {
  const root = mkdtempSync(join(tmpdir(), 'p3s-sched-'));
  const schedulerDir = join(root, 'scheduler');
  writeFileSync(join(root, 'model_index.json'), '{}');
  // a pipeline folder: root/scheduler/scheduler_config.json
  mkdirSync(schedulerDir);
  writeFileSync(join(schedulerDir, 'scheduler_config.json'), JSON.stringify(SD15_PNDM));
  const a = DDIMScheduler.fromPretrained(root);
  const b = DDIMScheduler.fromPretrained(schedulerDir);
  assert.deepEqual(a.config, b.config);
  assert.equal(a.config.steps_offset, 1);
  assert.ok(schedulerFromPretrained(root) instanceof PNDMScheduler);
  assert.throws(
    () => DDIMScheduler.fromPretrained(join(root, 'nothing')),
    /nothing does not exist/,
  );
  assert.throws(
    () => DDIMScheduler.fromPretrained(mkdtempSync(join(tmpdir(), 'p3s-empty-'))),
    /No scheduler_config\.json in .* or in .*scheduler/,
  );
});

test('the schedulers share one base: errors name the class, statics build the class', () => {
  const ddpm = DDPMScheduler.fromConfig(SD15_PNDM, { variance_type: 'fixed_large' });
  const pndm = PNDMScheduler.fromConfig(SD15_PNDM);
  assert.ok(ddpm instanceof DDPMScheduler && ddpm instanceof SchedulerBase);
  assert.ok(pndm instanceof PNDMScheduler && pndm instanceof SchedulerBase);
  assert.equal(ddpm.config.variance_type, 'fixed_large');
  // DDPM has no set_alpha_to_one: past the last step ᾱ is 1, as diffusers' DDPM uses
  assert.equal(ddpm.finalAlphaCumprod, 1);
  // PNDM has no timesteps until setTimesteps; DDPM and DDIM start with all T
  assert.deepEqual(pndm.timesteps, []);
  assert.equal(ddpm.timesteps.length, 1000);
  assert.throws(
    () => pndm.step(null as never, 901, null as never),
    /^Error: PNDMScheduler\.step needs setTimesteps/,
  );
  assert.throws(
    () =>
      ddpm.step(null as never, 901, null as never, {
        generator: {} as never,
        varianceNoise: {} as never,
      }),
    /DDPMScheduler\.step takes a generator or varianceNoise, not both/,
  );
  throwsNaming(
    () => new DDPMScheduler({ set_alpha_to_one: true } as never),
    'set_alpha_to_one',
    /known keys/,
  );
});
