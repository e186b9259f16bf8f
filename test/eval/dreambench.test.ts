import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DreamBenchError,
  readDreamBench,
  subjectKind,
  subjectProtocol,
} from '../../src/eval/dreambench.js';
import { fillPrompt } from '../../src/p3s/prompts.js';
import { dreambenchPath } from '../helpers/paths.js';

test('the carried prompts file gives 30 subjects and 25 prompts of each kind', () => {
  const bench = readDreamBench(dreambenchPath('prompts_and_classes.txt'));
  assert.equal(bench.classes.size, 30);
  assert.equal(bench.classes.get('bear_plushie'), 'stuffed animal');
  assert.equal(bench.prompts.object.length, 25);
  assert.equal(bench.prompts.live.length, 25);
  assert.equal(bench.prompts.object[0], 'a {} in the jungle');
  assert.equal(bench.prompts.live[10], 'a {} wearing a red hat');
  assert.equal(bench.prompts.object[24], 'a cube shaped {}');
  for (const p of [...bench.prompts.object, ...bench.prompts.live]) {
    assert.equal(p.split('{}').length, 2, p);
  }
});

test('cats and dogs get the live-subject prompts, everything else the object prompts', () => {
  const bench = readDreamBench();
  assert.equal(subjectKind('dog'), 'live');
  assert.equal(subjectKind('teapot'), 'object');
  const dog = subjectProtocol(bench, 'dog5');
  assert.equal(dog.kind, 'live');
  assert.equal(fillPrompt(dog.prompts[11]!, 'sks', dog.classWord), 'a sks dog wearing a santa hat');
  const can = subjectProtocol(bench, 'can');
  assert.equal(can.kind, 'object');
  assert.equal(fillPrompt(can.prompts[13]!, 'sks', 'can'), 'a sks can floating on top of water');
});

test('an unknown subject is refused with the known names; a file without prompts too', () => {
  const bench = readDreamBench();
  assert.throws(
    () => subjectProtocol(bench, 'dragon'),
    /Unknown DreamBench subject "dragon"; known: backpack, /,
  );
  const dir = mkdtempSync(join(tmpdir(), 'p3s-db-'));
  const file = join(dir, 'p.txt');
  writeFileSync(file, 'subject_name,class\ndog,dog\n');
  assert.throws(
    () => readDreamBench(file),
    (e: unknown) => e instanceof DreamBenchError && /Object Prompts/.test((e as Error).message),
  );
});
