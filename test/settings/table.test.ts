// Settings tables: one declaration gives validation (errors naming the flag or the key), flags,
// --help, a run's identity, metadata and older checkpoints' defaults.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  choice,
  nullable,
  offFlag,
  positiveInt,
  probability,
  SettingError,
  texts,
} from '../../src/settings/kinds.js';
import {
  flagOptions,
  helpSections,
  identityOf,
  metadataOf,
  olderDefaults,
  resolveSettings,
  setting,
  valuesFromFlags,
} from '../../src/settings/table.js';
import { TRAIN_SETTINGS } from '../../src/p3s/train_settings.js';

const TABLE = [
  setting({
    key: 'maxSteps',
    kind: nullable(positiveInt),
    default: null,
    flag: 'steps',
    placeholder: '<n>',
    group: 'Training',
    help: 'optimizer steps in all',
  }),
  setting({
    key: 'dropout',
    kind: probability,
    default: 0.1,
    flag: 'dropout',
    group: 'Training',
    help: 'probability of the empty prompt',
    identity: true,
    metadata: true,
  }),
  setting({
    key: 'mode',
    kind: choice(['a', 'b'] as const),
    default: 'a',
    flag: 'mode',
    group: 'Other',
    help: 'a mode',
    identity: (m) => m.toUpperCase(),
    olderDefault: 'a',
  }),
  setting({
    key: 'evaluate',
    kind: offFlag,
    default: true,
    flag: 'no-eval',
    group: 'Other',
    help: 'skip it',
  }),
  setting({ key: 'prompts', kind: texts, default: [], flag: 'prompt', group: 'Other', help: 'p' }),
  setting({ key: 'hidden', kind: positiveInt, default: 3, group: 'Other', help: 'API only' }),
] as const;

test('resolving fills defaults, checks given values once and names the key', () => {
  const v = resolveSettings(TABLE, { dropout: 0.5 });
  assert.deepEqual(v, {
    maxSteps: null,
    dropout: 0.5,
    mode: 'a',
    evaluate: true,
    prompts: [],
    hidden: 3,
  });
  assert.throws(
    () => resolveSettings(TABLE, { dropout: 2 }),
    (e: unknown) =>
      e instanceof SettingError &&
      e.message === 'Expected a probability in [0, 1] for dropout but received 2',
  );
  assert.throws(() => resolveSettings(TABLE, { maxSteps: 0 }), /positive integer for maxSteps/);
  assert.throws(() => resolveSettings(TABLE, { mode: 'c' }), /one of a, b for mode.*"c"/);
  // Infinity is named as such, not as JSON's null
  assert.throws(() => resolveSettings(TABLE, { hidden: Infinity }), /received Infinity/);
});

test('flags parse into typed values and errors name the flag', () => {
  assert.deepEqual(flagOptions(TABLE), {
    steps: { type: 'string' },
    dropout: { type: 'string' },
    mode: { type: 'string' },
    'no-eval': { type: 'boolean' },
    prompt: { type: 'string', multiple: true },
  });
  assert.deepEqual(valuesFromFlags(TABLE, { steps: '7', 'no-eval': true, prompt: ['x', 'y'] }), {
    maxSteps: 7,
    evaluate: false,
    prompts: ['x', 'y'],
  });
  assert.throws(
    () => valuesFromFlags(TABLE, { steps: '1.5' }),
    /Expected a positive integer for --steps but received "1.5"/,
  );
  assert.throws(() => valuesFromFlags(TABLE, { dropout: '' }), /for --dropout/);
});

test('identity, metadata and older defaults come from the same declarations', () => {
  const v = resolveSettings(TABLE, { mode: 'b' });
  assert.deepEqual(identityOf(TABLE, v), { dropout: 0.1, mode: 'B' });
  assert.deepEqual(metadataOf(TABLE, v), { dropout: 0.1 });
  assert.deepEqual(olderDefaults(TABLE), { mode: 'a' });
});

test('--help lists every flag under its group with its default', () => {
  const help = helpSections(TABLE);
  assert.match(help, /^Training:\n {2}--steps <n> +optimizer steps in all\n/);
  assert.match(help, /--dropout <x> +probability of the empty prompt \(default 0\.1\)/);
  assert.match(help, /Other:\n {2}--mode <x> +a mode \(default a\)/);
  assert.doesNotMatch(help, /hidden/);
  // every flag of the training table is in its help, and no line runs past the width
  const trainHelp = helpSections(TRAIN_SETTINGS);
  for (const s of TRAIN_SETTINGS) if (s.flag) assert.ok(trainHelp.includes(`--${s.flag}`), s.flag);
  for (const line of trainHelp.split('\n')) assert.ok(line.length <= 99, line);
});
