// Every setting of P3S fine-tuning (`p3s train`, trainP3S), declared once: the CLI's flags and
// --help, validation, the run's identity and the adapter's training metadata derive from this
// table (settings/table.ts). The metadata records settings in table order.
import { PRECISIONS } from '../models/precision.js';
import {
  bool,
  choice,
  nonNegativeInt,
  nonNegativeNumber,
  nullable,
  number,
  offFlag,
  path,
  positiveInt,
  positiveNumber,
  probability,
  seed,
  text,
  texts,
  unitWeight,
  word,
} from '../settings/kinds.js';
import { resolveSettings, setting, type GivenOf, type ValuesOf } from '../settings/table.js';
import { fileDigest } from '../training/identity.js';
import { LR_SCHEDULES } from '../training/lr_schedule.js';
import { basename } from 'node:path';
import { TRAIN_INJECTION_SETTINGS } from './adapter/settings.js';

const INPUTS = 'Inputs';
const SUBJECT = 'Subject and prompt';
const TRAINING = 'Training';
const RUN = 'Checkpoints and samples';
const NEEDS_MASKS = 'needs a p3s mask folder or --annotation';

/** What a run trains: P3S, or a baseline on the same trainer (src/baselines/). */
export const TRAINING_METHODS = [
  'p3s',
  'dreambooth',
  'textual-inversion',
  'custom-diffusion',
] as const;
export type TrainingMethodName = (typeof TRAINING_METHODS)[number];

const BASELINES = 'Baselines (--method)';

/**
 * What each method trains with unless --lr, --steps or --epochs are given: P3S's Sec. IV-A
 * (1e-5, 60 epochs), and for the baselines the values of diffusers' example scripts and their
 * READMEs — train_dreambooth (5e-6; 800 steps with prior preservation),
 * textual_inversion (5e-4, 3000 steps), train_custom_diffusion (1e-5, 250 steps).
 */
export const METHOD_DEFAULTS: Record<
  TrainingMethodName,
  { learningRate: number; maxSteps: number | null }
> = {
  p3s: { learningRate: 1e-5, maxSteps: null },
  dreambooth: { learningRate: 5e-6, maxSteps: 800 },
  'textual-inversion': { learningRate: 5e-4, maxSteps: 3000 },
  'custom-diffusion': { learningRate: 1e-5, maxSteps: 250 },
};

const baselineDefaults = (key: 'learningRate' | 'maxSteps'): string =>
  TRAINING_METHODS.filter((m) => m !== 'p3s')
    .map((m) => {
      const value = METHOD_DEFAULTS[m][key]!;
      return `${m} ${key === 'learningRate' ? value.toExponential() : value}`;
    })
    .join(', ');

export const CONDITION_SOURCES = ['same', 'other'] as const;
export type ConditionSource = (typeof CONDITION_SOURCES)[number];

export const TRAIN_SETTINGS = [
  setting({
    key: 'annotation',
    kind: nullable(path),
    default: null,
    flag: 'annotation',
    placeholder: '<file>',
    group: INPUTS,
    help: 'raw photos with clicks instead of filled photos (docs/annotations.md): runs the mask job first, into <out>/mask',
  }),
  setting({
    key: 'baseModel',
    kind: path,
    default: '',
    required: true,
    flag: 'base',
    placeholder: '<folder>',
    group: INPUTS,
    help: 'base model in the diffusers layout, e.g. Stable Diffusion 1.5',
  }),
  setting({
    key: 'clipModel',
    kind: path,
    default: '',
    required: true,
    flag: 'clip',
    placeholder: '<folder>',
    group: INPUTS,
    help: "CLIP vision model (transformers layout) for the subject's c_s",
  }),
  setting({
    key: 'outDir',
    kind: path,
    default: '',
    required: true,
    flag: 'out',
    placeholder: '<folder>',
    group: INPUTS,
    help: 'adapter.safetensors, checkpoints/, samples/, train-log.jsonl',
  }),
  setting({
    key: 'classWord',
    kind: nullable(word),
    default: null,
    flag: 'class',
    placeholder: '<word>',
    group: SUBJECT,
    help: 'the subject\'s class, as in "a sks dog"',
    defaultHelp: "default: the annotation's",
  }),
  setting({
    key: 'identifier',
    kind: nullable(word),
    default: null,
    flag: 'identifier',
    placeholder: '<token>',
    group: SUBJECT,
    help: 'rare token naming the subject',
    defaultHelp: "default: the annotation's, else sks",
  }),
  setting({
    key: 'promptTemplate',
    kind: text,
    default: 'a {}',
    flag: 'prompt',
    placeholder: '<template>',
    group: SUBJECT,
    help: 'training prompt; {} or [V] = "<identifier> <class>"',
    defaultHelp: 'default "a {}"',
  }),
  setting({
    key: 'method',
    kind: choice(TRAINING_METHODS),
    default: 'p3s',
    flag: 'method',
    placeholder: '<name>',
    group: SUBJECT,
    help: 'what to train: the P3S adapter, or a baseline — DreamBooth (the U-Net, prompt "a sks <class>"), Textual Inversion (a new token <sks>), Custom Diffusion (cross-attention K/V and a token <sks>); see docs/p3s.md',
    identity: true,
    olderDefault: 'p3s',
  }),
  // Training settings, in the order the adapter's metadata records them.
  setting({
    key: 'learningRate',
    kind: positiveNumber,
    default: METHOD_DEFAULTS.p3s.learningRate,
    flag: 'lr',
    group: TRAINING,
    help: "Adam's learning rate, as in Sec. IV-A",
    defaultHelp: `default 1e-5; ${baselineDefaults('learningRate')}`,
    identity: true,
    metadata: true,
  }),
  setting({
    key: 'lrSchedule',
    kind: choice(LR_SCHEDULES),
    default: 'constant',
    flag: 'lr-schedule',
    placeholder: '<s>',
    group: TRAINING,
    help: 'constant (Sec. IV-A gives one rate), or cosine: from --lr down to a tenth of it by the last step, so the final weights move less from one step to the next',
    identity: true,
    metadata: true,
    olderDefault: 'constant',
  }),
  setting({
    key: 'gamma',
    kind: nonNegativeNumber,
    default: 0.1,
    flag: 'gamma',
    group: TRAINING,
    help: 'weight γ of the attention consistency loss in Eq. 15',
    identity: true,
    metadata: true,
  }),
  setting({
    key: 'batchSize',
    kind: positiveInt,
    default: 1,
    flag: 'batch-size',
    placeholder: '<n>',
    group: TRAINING,
    help: 'samples per micro-batch',
    identity: true,
    metadata: true,
  }),
  setting({
    key: 'gradientAccumulation',
    kind: positiveInt,
    default: 1,
    flag: 'grad-accum',
    placeholder: '<n>',
    group: TRAINING,
    help: 'micro-batches per optimizer step',
    identity: true,
    metadata: true,
  }),
  setting({
    key: 'conditionDropout',
    kind: probability,
    default: 0.1,
    flag: 'dropout',
    placeholder: '<p>',
    group: TRAINING,
    help: 'probability of the empty prompt, for guidance, as in Sec. IV-A',
    identity: true,
    metadata: true,
  }),
  setting({
    key: 'timestepShift',
    kind: positiveNumber,
    default: 1,
    flag: 'timestep-shift',
    placeholder: '<s>',
    group: TRAINING,
    help: "draw training timesteps shifted towards noise by s (1: uniform, as latent diffusion trains; 3: three quarters of the draws in the noisier half), where a sample's layout and colours are decided",
    identity: true,
    metadata: true,
    olderDefault: 1,
  }),
  setting({
    key: 'conditionFrom',
    kind: choice(CONDITION_SOURCES),
    default: 'same',
    flag: 'condition-from',
    placeholder: '<s>',
    group: TRAINING,
    help: "a sample's subject condition from the same reference, or an other one (needs ≥ 2), so the copy cannot just pass x_0 through",
    identity: true,
    metadata: true,
  }),
  setting({
    key: 'backgroundLossWeight',
    kind: unitWeight,
    default: 1,
    flag: 'background-loss-weight',
    placeholder: '<w>',
    group: TRAINING,
    help: `weight of the denoising error outside the subject mask (1: the paper's loss; 0: the subject only), so the adapter has less reason to learn the references' surroundings; ${NEEDS_MASKS}`,
    identity: true,
    metadata: true,
    olderDefault: 1,
  }),
  setting({
    key: 'flip',
    kind: bool,
    default: false,
    flag: 'flip',
    group: TRAINING,
    help: 'mirror samples left-right at random',
    identity: true,
    metadata: true,
  }),
  setting({
    key: 'cropJitter',
    kind: number('a number from 0 to 0.5', (x) => x >= 0 && x <= 0.5),
    default: 0,
    flag: 'crop-jitter',
    placeholder: '<j>',
    group: TRAINING,
    help: 'also train on copies of each subject crop scaled by 1 ± j and moved by j/2 of its side left, right, up and down, drawn at random with the crops themselves (with --flip, mirrored too); needs --crop-subject',
    identity: true,
    metadata: true,
    olderDefault: 0,
  }),
  setting({
    key: 'frozenPrecision',
    kind: choice(PRECISIONS),
    default: 'float32',
    flag: 'frozen-precision',
    placeholder: '<p>',
    group: TRAINING,
    help: 'how the frozen U-Net, VAE and text encoder are held: float32, or half (bfloat16 on CPU, float16 on CUDA), which at SD 1.5 size saves about 7 GiB of a training step; whatever trains stays float32 (docs/p3s.md, "Memory-lean mode")',
    identity: true,
    olderDefault: 'float32',
  }),
  setting({
    key: 'optimizerPrecision',
    kind: choice(PRECISIONS),
    default: 'float32',
    flag: 'optimizer-precision',
    placeholder: '<p>',
    group: TRAINING,
    help: 'how Adam\'s two moments are stored: float32, or half (bfloat16, written back with stochastic rounding so small updates are not lost), which halves the optimizer\'s memory: about 1.9 GiB at SD 1.5 size (docs/p3s.md, "Memory-lean mode")',
    identity: true,
    olderDefault: 'float32',
  }),
  setting({
    key: 'maxGradNorm',
    kind: nullable(positiveNumber),
    default: null,
    flag: 'max-grad-norm',
    group: TRAINING,
    help: "clip the gradients' global norm",
    defaultHelp: 'default: no clipping',
    identity: true,
    metadata: true,
  }),
  setting({
    key: 'seed',
    kind: seed,
    default: 0,
    flag: 'seed',
    placeholder: '<n>',
    group: TRAINING,
    help: 'initialisation, data order and every draw',
    identity: true,
    metadata: true,
  }),
  setting({
    key: 'subjectCrop',
    kind: nullable(number('a number of at least 1', (x) => x >= 1)),
    default: null,
    flag: 'crop-subject',
    group: TRAINING,
    help: `cut each reference to the square x times its subject mask's box (e.g. 1.5) so the subject fills it; ${NEEDS_MASKS}`,
    defaultHelp: 'default: the whole photo',
    metadata: true,
  }),
  setting({
    key: 'subjectOnlyCondition',
    kind: bool,
    default: false,
    flag: 'subject-only-condition',
    group: TRAINING,
    help: `the adapter's condition shows the subject alone (the rest of each reference grey; the denoising target keeps the whole photo), so it does not carry the references' surroundings into new contexts; ${NEEDS_MASKS}`,
    metadata: true,
  }),
  setting({
    key: 'initAdapter',
    kind: nullable(path),
    default: null,
    flag: 'init-adapter',
    placeholder: '<file>',
    group: TRAINING,
    help: "start from this adapter's weights (e.g. one pretrained on many subjects) instead of the U-Net's copy with zero projections; it must be for the same base model",
    defaultHelp: 'default: none',
    identity: (file) => (file === null ? null : fileDigest(file)),
    metadata: (file) => (file === null ? null : basename(file)),
    olderDefault: null,
  }),
  setting({
    key: 'resolution',
    kind: nullable(positiveInt),
    default: null,
    flag: 'resolution',
    placeholder: '<px>',
    group: TRAINING,
    help: 'square training size',
    defaultHelp: "default: the U-Net's sample_size × the VAE's factor, SD 1.5: 512",
  }),
  setting({
    key: 'epochs',
    kind: positiveInt,
    default: 60,
    flag: 'epochs',
    placeholder: '<n>',
    group: TRAINING,
    help: 'passes over the references, as in Sec. IV-A',
  }),
  setting({
    key: 'maxSteps',
    kind: nullable(positiveInt),
    default: null,
    flag: 'steps',
    placeholder: '<n>',
    group: TRAINING,
    help: 'optimizer steps in all (overrides --epochs)',
    defaultHelp: `default: --epochs; ${baselineDefaults('maxSteps')}`,
  }),
  setting({
    key: 'classImages',
    kind: positiveInt,
    default: 100,
    flag: 'class-images',
    placeholder: '<n>',
    group: BASELINES,
    help: 'DreamBooth and Custom Diffusion: images of "a <class>" the base model draws once (cached in <out>/class-images) for the prior-preservation loss; 100 as diffusers\' train_dreambooth',
    identity: true,
    olderDefault: 100,
  }),
  setting({
    key: 'priorLossWeight',
    kind: nonNegativeNumber,
    default: 1,
    flag: 'prior-loss-weight',
    placeholder: '<w>',
    group: BASELINES,
    help: "DreamBooth and Custom Diffusion: weight of the class images' loss (0: no prior preservation, no class images)",
    identity: true,
    olderDefault: 1,
  }),
  setting({
    key: 'trainTextEncoder',
    kind: bool,
    default: false,
    flag: 'train-text-encoder',
    group: BASELINES,
    help: "DreamBooth: fine-tune the text encoder too, at the same learning rate (diffusers' train_dreambooth --train_text_encoder); writes text_encoder/ beside unet/",
    identity: true,
    olderDefault: false,
  }),
  ...TRAIN_INJECTION_SETTINGS,
  setting({
    key: 'checkpointEvery',
    kind: nonNegativeInt,
    default: 100,
    flag: 'checkpoint-every',
    placeholder: '<n>',
    group: RUN,
    help: 'write a checkpoint every n steps (0: only at the end)',
  }),
  setting({
    key: 'keepCheckpoints',
    kind: positiveInt,
    default: 2,
    flag: 'keep-checkpoints',
    placeholder: '<n>',
    group: RUN,
    help: 'how many checkpoints to keep',
  }),
  setting({
    key: 'resume',
    kind: bool,
    default: false,
    flag: 'resume',
    group: RUN,
    help: 'continue from the newest checkpoint in <out>/checkpoints',
  }),
  setting({
    key: 'resumeFrom',
    kind: nullable(path),
    default: null,
    flag: 'resume-from',
    placeholder: '<file>',
    group: RUN,
    help: 'continue from this checkpoint',
  }),
  setting({
    key: 'branch',
    kind: bool,
    default: false,
    flag: 'branch',
    group: RUN,
    help: 'with --resume (its newest checkpoint with fit weights) or --resume-from <file>: continue as a new run with the settings given now (e.g. a lower --lr or a --max-grad-norm after a divergence), which records the checkpoint and the run it branched from; models, references, prompt and resolution must stay the same',
  }),
  setting({
    key: 'overwrite',
    kind: bool,
    default: false,
    flag: 'overwrite',
    group: RUN,
    help: "start a new run in an --out folder that holds another run's checkpoints or adapter, deleting them (without it such a run is refused)",
  }),
  setting({
    key: 'sampleEvery',
    kind: nonNegativeInt,
    default: 0,
    flag: 'sample-every',
    placeholder: '<n>',
    group: RUN,
    help: 'write validation images every n steps to <out>/samples',
    defaultHelp: 'default: never',
  }),
  setting({
    key: 'validationPrompts',
    kind: nullable(texts),
    default: null,
    flag: 'validation-prompt',
    placeholder: '<p>',
    group: RUN,
    help: 'a validation prompt (repeatable)',
    defaultHelp: 'default: the training prompt',
  }),
  setting({
    key: 'sampleSteps',
    kind: positiveInt,
    default: 25,
    flag: 'sample-steps',
    placeholder: '<n>',
    group: RUN,
    help: 'DDIM steps of validation images',
  }),
  setting({
    key: 'sampleImages',
    kind: positiveInt,
    default: 2,
    group: RUN,
    help: 'validation images per prompt; seeds sampleSeed, sampleSeed + 1 ...',
  }),
  setting({ key: 'sampleSeed', kind: seed, default: 0, group: RUN, help: 'first validation seed' }),
  setting({
    key: 'sampleGuidanceScale',
    kind: number('a number'),
    default: 7.5,
    group: RUN,
    help: 'guidance scale of validation images',
  }),
  setting({
    key: 'evaluate',
    kind: offFlag,
    default: true,
    flag: 'no-eval',
    group: RUN,
    help: 'skip the fixed evaluation loss (every reference at 5 spread timesteps) before and after training',
    defaultHelp: '',
  }),
] as const;

/** The resolved settings of a P3S run. */
export type TrainSettings = ValuesOf<typeof TRAIN_SETTINGS>;
/** What trainP3S's caller gives: any subset of the table (inputs required), plus photos. */
export type TrainP3SConfig = GivenOf<typeof TRAIN_SETTINGS> & {
  baseModel: string;
  clipModel: string;
  outDir: string;
  /** Filled reference photos (files, folders, or a `p3s mask` output folder). */
  references?: string[];
};

/** The settings of a run: the table's, with the method's own defaults (METHOD_DEFAULTS). */
export function resolveTrainSettings(config: GivenOf<typeof TRAIN_SETTINGS>): TrainSettings {
  const settings = resolveSettings(TRAIN_SETTINGS, config);
  const defaults = METHOD_DEFAULTS[settings.method];
  // given --epochs, the method's step count does not override them (only --steps does)
  const stepsFromMethod = config.maxSteps === undefined && config.epochs === undefined;
  return {
    ...settings,
    learningRate: config.learningRate === undefined ? defaults.learningRate : settings.learningRate,
    maxSteps: stepsFromMethod ? defaults.maxSteps : settings.maxSteps,
  };
}
