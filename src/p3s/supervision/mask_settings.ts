// Every setting of the mask job (`p3s mask`, runMaskJob), declared once: the CLI's flags, --help
// and the one validation derive from this table (settings/table.ts). The annotation file is the
// command's one positional argument.
import {
  choice,
  nonNegativeInt,
  nonNegativeNumber,
  number,
  offFlag,
  path,
  positiveInt,
  positiveNumber,
} from '../../settings/kinds.js';
import { setting, type GivenOf, type ValuesOf } from '../../settings/table.js';
import type { SuppressionRule } from './mask/index.js';
import { CLICK_RADIUS, type MaskRefinement } from './rngr.js';

export const SUPPRESSION_RULES = [
  'compare',
  'product',
] as const satisfies readonly SuppressionRule[];
export const MASK_REFINEMENTS = ['guided', 'none'] as const satisfies readonly MaskRefinement[];

const OPTIONS = 'Options';

export const MASK_SETTINGS = [
  setting({
    key: 'annotationPath',
    kind: path,
    default: '',
    required: true,
    group: OPTIONS,
    help: 'reference photos and clicks (docs/annotations.md)',
  }),
  setting({
    key: 'clipFolder',
    kind: path,
    default: '',
    required: true,
    flag: 'clip',
    placeholder: '<folder>',
    group: OPTIONS,
    help: 'CLIP vision weights (transformers layout: config.json + model.safetensors), or a full CLIP model',
  }),
  setting({
    key: 'outDir',
    kind: path,
    default: '',
    required: true,
    flag: 'out',
    placeholder: '<folder>',
    group: OPTIONS,
    help: 'where to write masks, overlays, filled photos and summary.json',
  }),
  setting({
    key: 'layer',
    kind: number('an integer', Number.isSafeInteger),
    default: -1,
    flag: 'layer',
    placeholder: '<n>',
    group: OPTIONS,
    help: 'CLIP hidden state to compare: -1 the last, -2 the penultimate, i the one after layer i',
  }),
  setting({
    key: 'dense',
    kind: positiveInt,
    default: 1,
    flag: 'dense',
    placeholder: '<f>',
    group: OPTIONS,
    help: 'run CLIP on f×f sub-patch shifts of each photo for an f× finer patch grid: helps small subjects, costs f² forward passes',
  }),
  setting({
    key: 'rule',
    kind: choice(SUPPRESSION_RULES),
    default: 'compare',
    flag: 'rule',
    placeholder: '<r>',
    group: OPTIONS,
    help: "how the negative click removes the look-alike: compare (a patch is the subject's if it is more like the positive click than the negative) or product (Eq. 2 as the paper writes it, M_P·(1 − M_N))",
  }),
  setting({
    key: 'refine',
    kind: choice(MASK_REFINEMENTS),
    default: 'guided',
    flag: 'refine',
    placeholder: '<m>',
    group: OPTIONS,
    help: "guided: refine the masks along the photo's edges with a guided filter one patch wide; none: the patch-level masks alone",
  }),
  setting({
    key: 'clickRadius',
    kind: nonNegativeNumber,
    default: CLICK_RADIUS,
    flag: 'click-radius',
    placeholder: '<patches>',
    group: OPTIONS,
    help: "Eq. 1's query for a click: its patch and eight points this many patches around it, so a patterned subject is found whole; 0: the clicked patch alone, as the paper",
  }),
  setting({
    key: 'sigma',
    kind: positiveNumber,
    default: 1,
    flag: 'sigma',
    placeholder: '<s>',
    group: OPTIONS,
    help: 'Gaussian σ of Ψ (Eq. 2) in patches',
  }),
  setting({
    key: 'dilate',
    kind: nonNegativeInt,
    default: 0,
    flag: 'dilate',
    placeholder: '<px>',
    group: OPTIONS,
    help: 'grow the masks by this many pixels',
  }),
  setting({
    key: 'propagate',
    kind: offFlag,
    default: true,
    flag: 'no-propagate',
    group: OPTIONS,
    help: 'require clicks on every photo (by default photos without clicks get them from the annotated ones)',
    defaultHelp: '',
  }),
] as const;

/** The resolved settings of a mask job. */
export type MaskSettings = ValuesOf<typeof MASK_SETTINGS>;
/** What runMaskJob's caller gives: any subset of the table, the inputs required. */
export type MaskJob = GivenOf<typeof MASK_SETTINGS> & {
  annotationPath: string;
  /** A CLIP vision (or full CLIP) model folder in the transformers layout. */
  clipFolder: string;
  outDir: string;
};
