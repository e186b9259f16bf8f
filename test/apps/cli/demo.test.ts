// `p3s demo` from the command line: help, and a clear error for a folder without toy models.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { repoRoot } from '../../helpers/paths.js';
import { demoCommand } from '../../../apps/cli/demo.js';
import { DEMO_SETTINGS, resolveDemoSettings } from '../../../apps/demo/demo.js';
import { PAPER_RECIPE, TOY_RECIPE } from '../../../apps/toymodels/recipes.js';
import { TRAIN_SETTINGS } from '../../../src/p3s/train_settings.js';
import { GENERATE_SETTINGS } from '../../../src/p3s/generate_settings.js';
import { printedBy } from '../../helpers/console.js';
import { parse } from '../../../apps/cli/args.js';
import { flagHead, flagOptions, valuesFromFlags } from '../../../src/settings/table.js';

const main = join(repoRoot(), 'dist', 'apps', 'cli', 'main.js');
const p3s = (...args: string[]) =>
  spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', timeout: 60_000 });

test('p3s demo --help explains the demo and its options', () => {
  const r = p3s('demo', '--help');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /look-alike/);
  assert.match(r.stdout, /--no-baseline/);
  assert.match(r.stdout, /--sequential/);
  assert.match(r.stdout, /--injection <mode> +decoupled, joint or aligned \(default aligned/);
  assert.match(r.stdout, /--paper-settings +the paper's adapter instead/);
  // the recipe's yes/no settings that are on can be turned off
  assert.match(r.stdout, /--\[no-\]flip +mirror each fine-tuning sample/);
  assert.match(p3s('--help').stdout, /demo +the whole method/);
});

test('p3s demo on a folder without toy models says what is missing', () => {
  const r = p3s('demo', '--model', repoRoot(), '--out', join(repoRoot(), 'dist', 'no-demo'));
  assert.equal(r.status, 2);
  assert.match(r.stderr, /is not a toy model folder \(no model_index\.json\)/);
});

test('p3s demo refuses an unknown injection mode, weight curve or a negative latent bias before any work', () => {
  const out = join(repoRoot(), 'dist', 'no-demo');
  const mode = p3s('demo', '--out', out, '--injection', 'sideways');
  assert.equal(mode.status, 2);
  assert.match(mode.stderr, /Expected one of decoupled, joint, aligned for --injection/);
  const curve = p3s('demo', '--out', out, '--weight-curve', 'wobbly');
  assert.equal(curve.status, 2);
  assert.match(
    curve.stderr,
    /Expected a weight curve: .* for --weight-curve but received "wobbly"/,
  );
  const crop = p3s('demo', '--out', out, '--crop-subject', '0.5');
  assert.equal(crop.status, 2);
  assert.match(crop.stderr, /at least 1 for --crop-subject/);
  const bias = p3s('demo', '--out', out, '--latent-bias=-1');
  assert.equal(bias.status, 2);
  assert.match(bias.stderr, /non-negative number for --latent-bias/);
});

test('p3s demo --help lists every flag of its table', async () => {
  const help = await printedBy(() => demoCommand.run(['--help']));
  for (const s of DEMO_SETTINGS) {
    const head = flagHead(s);
    assert.ok(
      help.includes(`\n  ${head} `) || help.includes(`\n  ${head}\n`),
      `--help lacks ${head}`,
    );
  }
  assert.match(
    help,
    new RegExp(`--steps <n> +fine-tuning steps per run \\(default ${TOY_RECIPE.steps}\\)`),
  );
});

test("the demo's flags that train or generate also have are those commands' settings", () => {
  const reused = [
    'background-loss-weight',
    'crop-jitter',
    'crop-subject',
    'flip',
    'images',
    'injection',
    'latent-bias',
    'lr',
    'steps',
    'subject-guidance',
    'subject-only-condition',
    'weight-curve',
  ];
  for (const flag of reused) {
    const s = DEMO_SETTINGS.find((d) => d.flag === flag);
    const other = [...TRAIN_SETTINGS, ...GENERATE_SETTINGS].find((t) => t.flag === flag);
    assert.ok(s && other, flag);
    assert.equal(s.key, other.key, flag);
    assert.equal(s.kind, other.kind, `${flag} is declared once`);
  }
});

test("the demo's adapter settings: the toy recipe, the paper's with --paper-settings, each flag overriding", () => {
  assert.deepEqual(resolveDemoSettings({}).recipe, TOY_RECIPE);
  assert.deepEqual(resolveDemoSettings({ paperSettings: true }).recipe, PAPER_RECIPE);
  const mixed = resolveDemoSettings({ paperSettings: true, maxSteps: 7, subjectGuidance: true });
  assert.deepEqual(mixed.recipe, { ...PAPER_RECIPE, steps: 7, subjectGuidance: true });
  const { settings } = resolveDemoSettings({ weightCurve: 'fixed:2', numImages: 2 });
  assert.deepEqual(settings.weightCurve, { kind: 'fixed', weight: 2 });
  assert.equal(settings.numImages, 2);
  assert.equal(settings.baseline, true);
  assert.throws(() => resolveDemoSettings({ learningRate: 0 }), /positive number for learningRate/);
  // a setting the recipe turns on is turned off from the command line by its --no- form
  const flags = parse(['--no-flip', '--no-subject-guidance'], flagOptions(DEMO_SETTINGS)).values;
  const off = resolveDemoSettings(valuesFromFlags(DEMO_SETTINGS, flags)).recipe;
  assert.deepEqual(off, { ...TOY_RECIPE, flip: false, subjectGuidance: false });
});
