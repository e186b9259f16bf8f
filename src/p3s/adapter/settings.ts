// The settings of the injection itself (λ of Eq. 7, ε_t of Eq. 10, the injection mode): chosen
// when training, stored in the adapter, and overridable when generating. Declared once here for
// both tables; generation's default for each is the adapter's own (null).
import { fail, type Kind } from '../../settings/kinds.js';
import { choice, anyNumber, nullable } from '../../settings/kinds.js';
import { setting, type Setting } from '../../settings/table.js';
import { INJECTION_MODES } from './injection.js';
import {
  formatWeightCurve,
  parseWeightCurve,
  PAPER_CURVE,
  type WeightCurve,
} from './weight_schedule.js';

/** ε_t's curve, given as a curve or its text form ("paper:0.5,0.2,2", "fixed:1" ...). */
export const weightCurveKind: Kind<WeightCurve, WeightCurve | string> = {
  expected:
    'a weight curve: paper[:α,β,k], fixed:<w>, cutoff:<w>,<share>, quadratic-increasing or quadratic-decreasing',
  flagType: 'string',
  parse: (v) => weightCurveKind.check(v),
  check(v) {
    if (typeof v === 'string') {
      try {
        return parseWeightCurve(v);
      } catch {
        return fail(v);
      }
    }
    if (v !== null && typeof v === 'object' && 'kind' in v) return v as WeightCurve;
    return fail(v);
  },
  record: (c) => formatWeightCurve(c),
};

const GROUP_TRAIN = 'P3S settings (stored in the adapter; generate can override them)';
const GROUP_GENERATE = "P3S settings (default: the adapter's)";

const INJECTION_HELP =
  "decoupled, joint (Eq. 8 as written) or aligned (decoupled plus the copy's feature at its own position; not in the paper, a stronger adapter on small U-Nets; see docs/p3s.md)";
const CURVE_HELP =
  'ε_t of Eq. 10: paper[:α,β,k], fixed:<w> (fixed:0 = the plain base model), cutoff:<w>,<share> (w, then 0 for the last share of denoising), quadratic-increasing, quadratic-decreasing';

/** λ, ε_t and the injection mode as training declares them (the paper's defaults). */
export const TRAIN_INJECTION_SETTINGS = [
  setting({
    key: 'lambda',
    kind: anyNumber,
    default: 0.2,
    flag: 'lambda',
    group: GROUP_TRAIN,
    help: 'λ of Eq. 7',
    identity: true,
  }),
  setting({
    key: 'weightCurve',
    kind: weightCurveKind,
    default: PAPER_CURVE,
    flag: 'weight-curve',
    placeholder: '<c>',
    group: GROUP_TRAIN,
    help: CURVE_HELP,
    identity: true,
  }),
  setting({
    key: 'injectionMode',
    kind: choice(INJECTION_MODES),
    default: 'decoupled',
    flag: 'injection',
    placeholder: '<mode>',
    group: GROUP_TRAIN,
    help: INJECTION_HELP,
    identity: true,
  }),
] as const;

/** A training setting as generation declares it: not set (null) means the adapter's own. */
function fromAdapter<const K extends string, T, G>(
  s: Setting<K, T, G>,
): Setting<K, T | null, G | null> {
  return {
    key: s.key,
    kind: nullable(s.kind),
    default: null,
    flag: s.flag,
    placeholder: s.placeholder,
    group: GROUP_GENERATE,
    help: s.help,
    defaultHelp: '',
  };
}

/** The same three as generation declares them: each defaults to the adapter's own. */
export const GENERATE_INJECTION_SETTINGS = [
  fromAdapter(TRAIN_INJECTION_SETTINGS[0]),
  fromAdapter(TRAIN_INJECTION_SETTINGS[1]),
  fromAdapter(TRAIN_INJECTION_SETTINGS[2]),
] as const;
