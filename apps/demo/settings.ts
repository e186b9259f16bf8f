// The settings of `p3s demo`, declared once: its flags, --help and validation derive from this
// table. A flag that sets what `p3s train` or `p3s generate` also sets is that command's setting,
// taken from its table with the demo's default (the recipe in apps/toymodels/recipes.ts) and
// help, so its kind and flag are declared in one place.
import { fileURLToPath } from 'node:url';
import { bool, nonNegativeInt, offFlag, path } from '../../src/settings/kinds.js';
import {
  setting,
  type GivenOf,
  type Setting,
  type Table,
  type ValuesOf,
} from '../../src/settings/table.js';
import { TRAIN_SETTINGS } from '../../src/p3s/train_settings.js';
import { GENERATE_SETTINGS } from '../../src/p3s/generate_settings.js';
import { parseWeightCurve } from '../../src/p3s/adapter/weight_schedule.js';
import { PAPER_RECIPE, TOY_RECIPE } from '../toymodels/recipes.js';

/** The models shipped in the repository (models/toy), found from this file's location. */
export const SHIPPED_TOY_MODELS = fileURLToPath(new URL('../../../models/toy', import.meta.url));

/**
 * The demo's subject: the tuning subject on which the negative click bought the most with the
 * recipe when it was chosen (docs/toy.md), an orange checkered cross beside a green or yellow
 * checkered cross or a plain orange one.
 */
export const DEMO_SUBJECT_SEED = 0;

const OPTIONS = 'Options';
const ADAPTER =
  'Adapter settings (defaults: a recipe that draws the subject on the toy models, docs/toy.md)';

/** A table's setting by its key. */
function byKey<T extends Table, K extends T[number]['key']>(
  table: T,
  key: K,
): Extract<T[number], { key: K }> {
  const found = table.find((s) => s.key === key);
  if (!found) throw new Error(`No setting ${key}`);
  return found as Extract<T[number], { key: K }>;
}

/** Another command's setting as the demo declares it: its key, kind and flag; the demo's default and help. */
function asDemo<const K extends string, T, G>(
  s: Setting<K, T, G>,
  own: { default: NoInfer<T>; help: string; defaultHelp?: string; group?: string },
): Setting<K, T, G> {
  return {
    key: s.key,
    kind: s.kind,
    flag: s.flag,
    placeholder: s.placeholder,
    group: own.group ?? ADAPTER,
    default: own.default,
    help: own.help,
    defaultHelp: own.defaultHelp,
  };
}

const train = <K extends (typeof TRAIN_SETTINGS)[number]['key']>(key: K) =>
  byKey(TRAIN_SETTINGS, key);
const generate = <K extends (typeof GENERATE_SETTINGS)[number]['key']>(key: K) =>
  byKey(GENERATE_SETTINGS, key);
const onOff = (b: boolean): string => (b ? 'on' : 'off');

export const DEMO_SETTINGS = [
  setting({
    key: 'outDir',
    kind: path,
    default: 'p3s-demo',
    flag: 'out',
    placeholder: '<folder>',
    group: OPTIONS,
    help: 'where everything goes',
    defaultHelp: 'default ./p3s-demo',
  }),
  setting({
    key: 'modelFolder',
    kind: path,
    default: SHIPPED_TOY_MODELS,
    flag: 'model',
    placeholder: '<folder>',
    group: OPTIONS,
    help: 'toy model folder',
    defaultHelp: 'default: the shipped models/toy',
  }),
  setting({
    key: 'subjectSeed',
    kind: nonNegativeInt,
    default: DEMO_SUBJECT_SEED,
    flag: 'subject',
    placeholder: '<n>',
    group: OPTIONS,
    help: `which subject, by seed: ${DEMO_SUBJECT_SEED} is an orange checkered cross (the model card reports subjects 100–107, which no setting was tuned on)`,
  }),
  asDemo(generate('numImages'), {
    default: 3,
    help: 'images per context',
    group: OPTIONS,
  }),
  setting({
    key: 'baseline',
    kind: offFlag,
    default: true,
    flag: 'no-baseline',
    group: OPTIONS,
    help: 'skip the positive-point-only run',
    defaultHelp: '',
  }),
  setting({
    key: 'sequential',
    kind: bool,
    default: false,
    flag: 'sequential',
    group: OPTIONS,
    help: 'run the two experiments one after the other in this process (by default they run side by side in two processes, one core each, when there are at least 2 cores: about half the wall time on 2 cores)',
  }),
  setting({
    key: 'paperSettings',
    kind: bool,
    default: false,
    flag: 'paper-settings',
    group: ADAPTER,
    help: `the paper's adapter instead: ${PAPER_RECIPE.injectionMode} injection, whole references, lr ${PAPER_RECIPE.learningRate}, ${PAPER_RECIPE.steps} steps, the paper's ε_t curve, subject on both guidance halves (on the toy models it barely changes the base model's images); the flags below still override it`,
  }),
  asDemo(train('identifier'), {
    default: TOY_RECIPE.identifier,
    help: 'the rare token that names the subject in prompts',
  }),
  asDemo(train('maxSteps'), { default: TOY_RECIPE.steps, help: 'fine-tuning steps per run' }),
  asDemo(train('learningRate'), {
    default: TOY_RECIPE.learningRate,
    help: 'fine-tuning learning rate',
  }),
  asDemo(train('batchSize'), {
    default: TOY_RECIPE.batchSize,
    help: 'reference samples per fine-tuning step',
  }),
  asDemo(train('injectionMode'), {
    default: TOY_RECIPE.injectionMode,
    help: 'decoupled, joint or aligned',
    defaultHelp: `default ${TOY_RECIPE.injectionMode}; see p3s train --help`,
  }),
  asDemo(train('subjectCrop'), {
    default: TOY_RECIPE.subjectCrop,
    help: "fine-tune on references cut to x times the subject mask's box",
  }),
  asDemo(train('weightCurve'), {
    default: parseWeightCurve(TOY_RECIPE.weightCurve),
    help: 'ε_t at generation',
    defaultHelp: `default ${TOY_RECIPE.weightCurve}; see p3s generate --help`,
  }),
  asDemo(generate('subjectGuidance'), {
    default: TOY_RECIPE.subjectGuidance,
    help: 'guidance amplifies the subject as well as the text',
    defaultHelp: `default ${onOff(TOY_RECIPE.subjectGuidance)}; see p3s generate --help`,
  }),
  asDemo(generate('subjectGuidanceScale'), {
    default: TOY_RECIPE.subjectGuidanceScale,
    help: "the subject's own guidance scale, apart from the text's",
    defaultHelp: `default ${TOY_RECIPE.subjectGuidanceScale ?? 'the guidance scale'}; see p3s generate --help`,
  }),
  asDemo(generate('guidanceScale'), {
    default: TOY_RECIPE.guidanceScale,
    help: 'classifier-free guidance scale',
    defaultHelp: `default ${TOY_RECIPE.guidanceScale}; see p3s generate --help`,
  }),
  asDemo(generate('localInjection'), {
    default: TOY_RECIPE.localInjection,
    help: "the subject only where the base model draws it, from <share> of its attention's range up",
    defaultHelp: `default ${TOY_RECIPE.localInjection ?? 'off'}; see p3s generate --help`,
  }),
  asDemo(generate('reference'), {
    default: TOY_RECIPE.reference,
    help: 'which reference conditions the images: i, cycle, or best (drawn and scored by CLIP-I first)',
    defaultHelp: `default ${TOY_RECIPE.reference}; see p3s generate --help`,
  }),
  asDemo(train('subjectOnlyCondition'), {
    default: TOY_RECIPE.subjectOnlyCondition,
    help: "the adapter's condition shows the subject alone, the rest of each reference grey",
    defaultHelp: `default ${onOff(TOY_RECIPE.subjectOnlyCondition)}; see p3s train --help`,
  }),
  asDemo(train('backgroundLossWeight'), {
    default: TOY_RECIPE.backgroundLossWeight,
    help: 'weight of the denoising error outside the subject mask',
    defaultHelp: `default ${TOY_RECIPE.backgroundLossWeight}; see p3s train --help`,
  }),
  asDemo(train('flip'), {
    default: TOY_RECIPE.flip,
    help: 'mirror each fine-tuning sample left-right at random',
    defaultHelp: `default ${onOff(TOY_RECIPE.flip)}; see p3s train --help`,
  }),
  asDemo(train('cropJitter'), {
    default: TOY_RECIPE.cropJitter,
    help: 'fine-tune on copies of each subject crop scaled by 1 ± j and moved by j/2 of its side',
    defaultHelp: `default ${TOY_RECIPE.cropJitter}; see p3s train --help`,
  }),
  asDemo(train('lrSchedule'), {
    default: TOY_RECIPE.lrSchedule,
    help: 'the fine-tuning learning rate held (constant) or decayed along a cosine',
    defaultHelp: `default ${TOY_RECIPE.lrSchedule}; see p3s train --help`,
  }),
  asDemo(train('timestepShift'), {
    default: TOY_RECIPE.timestepShift,
    help: 'fine-tuning timesteps shifted towards noise by this factor (1: uniform)',
    defaultHelp: `default ${TOY_RECIPE.timestepShift}; see p3s train --help`,
  }),
  asDemo(generate('latentBias'), {
    default: 0,
    help: 'add s × the reference latent to the starting noise; on the toy models it trades the prompted context away (docs/toy.md; see p3s generate --help)',
  }),
] as const;

/** The demo's resolved settings. */
export type DemoSettings = ValuesOf<typeof DEMO_SETTINGS>;
/** What runDemo's caller gives: any subset of the table. */
export type DemoOptions = GivenOf<typeof DEMO_SETTINGS>;
