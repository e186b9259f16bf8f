// Settings tables: one declaration gives validation (errors naming the flag or the key), flags,
// --help, a run's identity, metadata and older checkpoints' defaults.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  bool,
  choice,
  nullable,
  offFlag,
  positiveInt,
  probability,
  SettingError,
  show,
  texts,
} from '../../src/settings/kinds.js';
import {
  flagOptions,
  helpSections,
  identityOf,
  inFlagTerms,
  metadataOf,
  olderDefaults,
  refuseSetting,
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

test('a yes/no flag also has a --no- form, so a default that is on can be turned off', () => {
  const table = [
    setting({ key: 'flip', kind: bool, default: true, flag: 'flip', group: 'G', help: 'mirror' }),
  ] as const;
  assert.deepEqual(flagOptions(table), {
    flip: { type: 'boolean' },
    'no-flip': { type: 'boolean' },
  });
  assert.deepEqual(valuesFromFlags(table, { 'no-flip': true }), { flip: false });
  assert.deepEqual(valuesFromFlags(table, { flip: true }), { flip: true });
  assert.deepEqual(valuesFromFlags(table, {}), {});
  assert.throws(
    () => valuesFromFlags(table, { flip: true, 'no-flip': true }),
    /Expected --flip or --no-flip for --flip but received "both"/,
  );
  // the help shows the --no- form where the default is on
  assert.match(helpSections(table), /--\[no-\]flip +mirror \(default true\)/);
  assert.match(helpSections([{ ...table[0], default: false }]), /--flip +mirror\n?$/);
  // a table may not declare a flag twice, a --no- form included
  const clash = [
    ...table,
    setting({ key: 'noFlip', kind: bool, default: false, flag: 'no-flip', group: 'G', help: 'x' }),
  ];
  assert.throws(() => flagOptions(clash), /Two settings declare the flag --no-flip/);
});

test('a number too large for a double is shown as written and called not finite', () => {
  assert.throws(
    () => valuesFromFlags(TABLE, { dropout: '1e999' }),
    (e: unknown) =>
      e instanceof SettingError &&
      e.message ===
        'Expected a probability in [0, 1] for --dropout but received "1e999", not a finite number',
  );
  assert.throws(
    () => resolveSettings(TABLE, { hidden: -Infinity }),
    /received -Infinity, not a finite number$/,
  );
  // inside a list, Infinity stays Infinity (JSON.stringify would write null)
  assert.equal(show([Infinity, 22]), '[Infinity,22]');
  assert.equal(show({ at: [1, -Infinity] }), '{"at":[1,"-Infinity"]}');
  // a value refused for another reason gets no such note
  assert.throws(() => valuesFromFlags(TABLE, { dropout: '2' }), /received "2"$/);
});

test('a check beyond the kind names the key, and the command line rewords it with the flag', () => {
  let refused: unknown;
  try {
    refuseSetting(TABLE, 'maxSteps', 'an integer in [1, 1000]', 2000);
  } catch (err) {
    refused = err;
  }
  assert.ok(refused instanceof SettingError);
  assert.equal(refused.message, 'Expected an integer in [1, 1000] for maxSteps but received 2000');
  assert.equal(refused.key, 'maxSteps');
  assert.equal(
    inFlagTerms(refused, TABLE).message,
    'Expected an integer in [1, 1000] for --steps but received 2000',
  );
  // a setting without a flag keeps its key; an error of another table is left as it is
  const hidden = new SettingError('a positive integer', 'hidden', 0, { key: 'hidden' });
  assert.equal(inFlagTerms(hidden, TABLE).message, hidden.message);
  assert.throws(() => refuseSetting(TABLE, 'nope', 'x', 1), /no setting "nope"/);
  // resolving and flag parsing record the key too, so either can be reworded
  assert.throws(
    () => resolveSettings(TABLE, { dropout: 2 }),
    (e: unknown) =>
      e instanceof SettingError &&
      inFlagTerms(e, TABLE).message ===
        'Expected a probability in [0, 1] for --dropout but received 2',
  );
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
