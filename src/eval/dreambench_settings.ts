// Every setting of the DreamBench driver (`p3s dreambench`, runDreamBench), declared once: the
// CLI's flags, --help and the one validation derive from this table (settings/table.ts).
import { int, nullable, path, positiveInt, positiveNumber, texts } from '../settings/kinds.js';
import { setting, settingOf, type GivenOf, type ValuesOf } from '../settings/table.js';
import { TRAIN_SETTINGS } from '../p3s/train_settings.js';
import { EVAL_SETTINGS } from './eval_settings.js';
import { DREAMBENCH_PHOTOS } from './dreambench.js';

const INPUTS = 'Inputs and output';
const PROTOCOL = 'Protocol';
const TRAINING = 'Training (each method keeps its own defaults unless given)';

export const DREAMBENCH_SETTINGS = [
  settingOf(TRAIN_SETTINGS, 'baseModel', INPUTS),
  settingOf(TRAIN_SETTINGS, 'clipModel', INPUTS),
  setting({
    key: 'outDir',
    kind: path,
    default: '',
    required: true,
    flag: 'out',
    placeholder: '<folder>',
    group: INPUTS,
    help: 'one folder per subject and method (training, images, eval.json), and dreambench.json with the means',
  }),
  setting({
    key: 'photos',
    kind: path,
    default: DREAMBENCH_PHOTOS,
    flag: 'photos',
    placeholder: '<folder>',
    group: INPUTS,
    help: "DreamBench's dataset folder: one folder of photos per subject, named as in the benchmark",
    defaultHelp: 'default: data/dreambench',
  }),
  setting({
    key: 'annotations',
    kind: nullable(path),
    default: null,
    flag: 'annotations',
    placeholder: '<folder>',
    group: INPUTS,
    help: "your clicks for P3S: <folder>/<subject>.json, an annotation file (docs/annotations.md) over the subject's photos. A subject without one gets a positive click at the centre of its first photo",
    defaultHelp: 'default: centre clicks',
  }),
  setting({
    key: 'evalClip',
    kind: nullable(path),
    default: null,
    flag: 'eval-clip',
    placeholder: '<folder>',
    group: INPUTS,
    help: "CLIP for CLIP-I and CLIP-T (as p3s eval --clip; DreamBench's is openai/clip-vit-large-patch14)",
    defaultHelp: "default: p3s eval's, the toy CLIP",
  }),
  settingOf(EVAL_SETTINGS, 'dinoModel', INPUTS),
  setting({
    key: 'methods',
    kind: texts,
    default: ['p3s'],
    flag: 'method',
    placeholder: '<name>',
    group: PROTOCOL,
    help: 'p3s, dreambooth, custom-diffusion or textual-inversion; repeatable, one table row each',
    defaultHelp: 'default: p3s',
  }),
  setting({
    key: 'subjects',
    kind: texts,
    default: [],
    flag: 'subject',
    placeholder: '<name>',
    group: PROTOCOL,
    help: 'a DreamBench subject (dog, backpack, ...); repeatable',
    defaultHelp: 'default: every subject with a folder in --photos',
  }),
  setting({
    key: 'promptsPerSubject',
    kind: int(1, 25),
    default: 25,
    flag: 'prompts',
    placeholder: '<n>',
    group: PROTOCOL,
    help: "the first n of the subject's 25 prompts",
  }),
  setting({
    key: 'imagesPerPrompt',
    kind: positiveInt,
    default: 4,
    flag: 'images',
    placeholder: '<n>',
    group: PROTOCOL,
    help: 'images per prompt (the protocol: 4)',
  }),
  setting({
    key: 'sampleSteps',
    kind: positiveInt,
    default: 50,
    flag: 'sample-steps',
    placeholder: '<n>',
    group: PROTOCOL,
    help: 'DDIM steps per image',
  }),
  settingOf(TRAIN_SETTINGS, 'seed', PROTOCOL),
  settingOf(TRAIN_SETTINGS, 'maxSteps', TRAINING),
  setting({
    key: 'learningRate',
    kind: nullable(positiveNumber),
    default: null,
    flag: 'lr',
    placeholder: '<x>',
    group: TRAINING,
    help: 'learning rate of every method',
    defaultHelp: "default: each method's",
  }),
  settingOf(TRAIN_SETTINGS, 'resolution', TRAINING),
] as const;

/** The resolved settings of a DreamBench run. */
export type DreamBenchSettings = ValuesOf<typeof DREAMBENCH_SETTINGS>;
/** What runDreamBench's caller gives: any subset of the table, the inputs required. */
export type DreamBenchConfig = GivenOf<typeof DREAMBENCH_SETTINGS> & {
  baseModel: string;
  clipModel: string;
  outDir: string;
};
