// Every setting of P3S generation (`p3s generate`, generateP3S), declared once: the CLI's flags,
// --help and the one validation derive from this table (settings/table.ts). Checks that need
// the loaded models (a reference index against the adapter's count, sizes against the VAE's
// factor) stay in generate.ts.
import { PRECISIONS } from '../models/precision.js';
import {
  anyNumber,
  bool,
  choice,
  fail,
  nonNegativeNumber,
  nullable,
  number,
  offFlag,
  path,
  positiveInt,
  seed,
  text,
  texts,
  type Kind,
} from '../settings/kinds.js';
import { setting, type GivenOf, type ValuesOf } from '../settings/table.js';
import { GENERATE_INJECTION_SETTINGS } from './adapter/settings.js';
import { isDdimEta } from '../pipelines/stable_diffusion.js';

/** Seeds given as a list: through the API an array, on the command line "1,2,3". */
export const seedList: Kind<number[]> = {
  expected: `a comma-separated list of seeds (each ${seed.expected})`,
  flagType: 'string',
  parse(v) {
    if (typeof v !== 'string') return fail(v);
    const parts = v
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    const numbers = parts.map((s) => (/^\d+$/.test(s) ? Number(s) : NaN));
    return numbers.length > 0 && numbers.every(isSeed) ? distinct(numbers, v) : fail(v);
  },
  check: (v) =>
    Array.isArray(v) && v.length > 0 && v.every(isSeed) ? distinct([...v], v) : fail(v),
  record: (v) => v.join(','),
};

/** Each seed once: a seed names its image's file, so a repeat would overwrite the first. */
function distinct(seeds: number[], given: unknown): number[] {
  const repeated = seeds.find((s, i) => seeds.indexOf(s) !== i);
  return repeated === undefined
    ? seeds
    : fail(given, `seed ${repeated} appears twice (each seed gives one image file, named by it)`);
}

function isSeed(v: unknown): v is number {
  try {
    seed.check(v);
    return true;
  } catch {
    return false;
  }
}

/**
 * Which reference's condition an image gets: a fixed index, image k of a prompt → k mod N
 * (cycle), or the one whose images look most like the other references (best:
 * reference_ranking.ts).
 */
export type ReferenceChoice = number | 'cycle' | 'best';

/** An index into the adapter's references (checked against their count once it is loaded), cycle or best. */
export const referenceChoice: Kind<ReferenceChoice> = {
  expected: 'a reference index (a non-negative integer), cycle or best',
  flagType: 'string',
  parse(v) {
    if (v === 'cycle' || v === 'best') return v;
    const index = typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v) : NaN;
    return Number.isSafeInteger(index) ? index : fail(v); // a refusal quotes the text given
  },
  check: (v) =>
    v === 'cycle' || v === 'best' || (Number.isSafeInteger(v) && (v as number) >= 0)
      ? (v as ReferenceChoice)
      : fail(v),
};

/**
 * DDIM's η (Song et al. 2021, Eq. 16): 0 is deterministic DDIM, 1 DDPM's variance. Above 1 the
 * step's noise exceeds 1 − ᾱ_{t−1} and its square root is NaN: all-black images.
 */
export const ddimEta: Kind<number> = number('a DDIM η in [0, 1]', isDdimEta);

const INPUTS = 'Inputs and output';
const PROMPTS = 'Prompts';
const SAMPLING = 'Sampling';

export const GENERATE_SETTINGS = [
  setting({
    key: 'baseModel',
    kind: path,
    default: '',
    required: true,
    flag: 'base',
    placeholder: '<folder>',
    group: INPUTS,
    help: 'the base model (diffusers layout) the adapter was trained on',
  }),
  setting({
    key: 'adapter',
    kind: path,
    default: '',
    required: true,
    flag: 'adapter',
    placeholder: '<file>',
    group: INPUTS,
    help: 'adapter.safetensors written by `p3s train`',
  }),
  setting({
    key: 'outDir',
    kind: path,
    default: '',
    required: true,
    flag: 'out',
    placeholder: '<folder>',
    group: INPUTS,
    help: 'where the PNGs go',
  }),
  setting({
    key: 'contactSheet',
    kind: offFlag,
    default: true,
    flag: 'no-contact-sheet',
    group: INPUTS,
    help: 'skip contact-sheet.png (every image, a row per prompt)',
    defaultHelp: '',
  }),
  setting({
    key: 'prompts',
    kind: nullable(texts),
    default: null,
    flag: 'prompt',
    placeholder: '<text>',
    group: PROMPTS,
    help: 'a prompt (repeatable); {} or [V] stand for "<identifier> <class>", e.g. --prompt "a {} on the beach" -> "a sks dog on the beach". A prompt without the identifier gets a warning: the text then does not name the subject',
    defaultHelp: '',
  }),
  setting({
    key: 'promptFile',
    kind: nullable(path),
    default: null,
    flag: 'prompts',
    placeholder: '<file>',
    group: PROMPTS,
    help: 'one prompt per line (blank lines and # comments skipped), after those of --prompt',
  }),
  setting({
    key: 'negativePrompt',
    kind: text,
    default: '',
    flag: 'negative',
    placeholder: '<text>',
    group: PROMPTS,
    help: 'negative prompt',
    defaultHelp: 'default: none, the empty prompt',
  }),
  setting({
    key: 'numImages',
    kind: positiveInt,
    default: 4,
    flag: 'images',
    placeholder: '<n>',
    group: SAMPLING,
    help: 'images per prompt',
  }),
  setting({
    key: 'seed',
    kind: seed,
    default: 0,
    flag: 'seed',
    placeholder: '<n>',
    group: SAMPLING,
    help: 'image k of every prompt uses seed n + k',
  }),
  setting({
    key: 'seeds',
    kind: nullable(seedList),
    default: null,
    flag: 'seeds',
    placeholder: '<list>',
    group: SAMPLING,
    help: 'explicit seeds, comma-separated (one image each for every prompt; overrides --images and --seed)',
  }),
  setting({
    key: 'steps',
    kind: positiveInt,
    default: 50,
    flag: 'steps',
    placeholder: '<n>',
    group: SAMPLING,
    help: 'DDIM steps, as in Sec. IV-A',
  }),
  setting({
    key: 'guidanceScale',
    kind: anyNumber,
    default: 7.5,
    flag: 'guidance',
    placeholder: '<w>',
    group: SAMPLING,
    help: 'classifier-free guidance scale; ≤ 1 turns it off',
  }),
  setting({
    key: 'eta',
    kind: ddimEta,
    default: 0,
    flag: 'eta',
    placeholder: '<η>',
    group: SAMPLING,
    help: 'DDIM η in [0, 1]: 1 adds the noise of DDPM',
    defaultHelp: 'default 0: deterministic',
  }),
  setting({
    key: 'latentBias',
    kind: nonNegativeNumber,
    default: 0,
    flag: 'latent-bias',
    placeholder: '<s>',
    group: SAMPLING,
    help: 'add s × the reference\'s latent to the starting noise: Sec. III\'s "latent bias towards the subject"',
    defaultHelp: 'default 0: none',
  }),
  setting({
    key: 'subjectGuidance',
    kind: bool,
    default: false,
    flag: 'subject-guidance',
    group: SAMPLING,
    help: 'subject condition in the conditional half of the guidance batch only, so guidance amplifies the subject as well as the text',
    defaultHelp: 'default: both halves; see docs/p3s.md',
  }),
  setting({
    key: 'subjectGuidanceScale',
    kind: nullable(anyNumber),
    default: null,
    flag: 'subject-guidance-scale',
    placeholder: '<w>',
    group: SAMPLING,
    help: "with --subject-guidance, the subject's own guidance scale: a third batch part, the text without the subject, so the subject is amplified apart from the text (one more frozen U-Net pass a step); not in the paper, docs/p3s.md",
    defaultHelp: 'default: the guidance scale, two parts',
  }),
  setting({
    key: 'localInjection',
    kind: nullable(number('a share in (0, 1]', (x) => x > 0 && x <= 1)),
    default: null,
    flag: 'local-injection',
    placeholder: '<share>',
    group: SAMPLING,
    help: "the subject only where the base model draws it: the copy's features weighted by the base U-Net's cross-attention to the identifier and class word at the previous step, full from <share> of its range up (0.3 is a start); not in the paper, docs/p3s.md",
    defaultHelp: 'default: off, everywhere',
  }),
  setting({
    key: 'reference',
    kind: referenceChoice,
    default: 'cycle',
    flag: 'reference',
    placeholder: '<i|cycle|best>',
    group: SAMPLING,
    help: 'which reference conditions the images: index i; cycle (image k uses reference k mod N); or best: the reference whose own images (3 seeds in the snow and on the beach, drawn first) look most like the other references by CLIP-I, kept beside the adapter in <adapter>.ranking.json for later runs with the same settings (docs/p3s.md)',
  }),
  setting({
    key: 'clipModel',
    kind: nullable(path),
    default: null,
    flag: 'clip-model',
    placeholder: '<folder>',
    group: SAMPLING,
    help: 'the CLIP vision tower the adapter was trained with, with its projection (a CLIPVisionModelWithProjection folder): --reference best scores images with it',
    defaultHelp:
      "default: the folder of the adapter's CLIP model name inside --base, else --base's image_encoder/",
  }),
  setting({
    key: 'size',
    kind: nullable(positiveInt),
    default: null,
    flag: 'size',
    placeholder: '<px>',
    group: SAMPLING,
    help: 'image width and height',
    defaultHelp: "default: the adapter's training resolution",
  }),
  setting({
    key: 'height',
    kind: nullable(positiveInt),
    default: null,
    group: SAMPLING,
    help: 'image height in pixels (default: size)',
  }),
  setting({
    key: 'width',
    kind: nullable(positiveInt),
    default: null,
    group: SAMPLING,
    help: 'image width in pixels (default: size)',
  }),
  setting({
    key: 'batchSize',
    kind: nullable(positiveInt),
    default: null,
    flag: 'batch-size',
    placeholder: '<n>',
    group: SAMPLING,
    help: 'images per forward pass',
    defaultHelp: 'default: all images of a prompt',
  }),
  setting({
    key: 'precision',
    kind: choice(PRECISIONS),
    default: 'float32',
    flag: 'precision',
    placeholder: '<p>',
    group: SAMPLING,
    help: 'float32, or half: the U-Net and the adapter held in bfloat16 on CPU (float16 on CUDA), half their memory; text encoder, VAE, latents and sampler stay float32 (docs/p3s.md, "Memory-lean mode")',
  }),
  ...GENERATE_INJECTION_SETTINGS,
] as const;

/** The resolved settings of a generation. */
export type GenerateSettings = ValuesOf<typeof GENERATE_SETTINGS>;
/** What generateP3S's caller gives: any subset of the table, the inputs required. */
export type GenerateP3SConfig = GivenOf<typeof GENERATE_SETTINGS> & {
  baseModel: string;
  adapter: string;
  outDir: string;
};
