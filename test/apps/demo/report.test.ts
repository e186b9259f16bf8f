// The demo report: a loss curve that scales to its data, and a page that links every image
// relative to itself, shows each run's numbers and escapes text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExperimentResult } from '../../../apps/toymodels/experiment.js';
import { lossCurveSvg, renderReport } from '../../../apps/demo/report.js';

test('the loss curve spans its data and draws raw and smoothed paths', () => {
  const svg = lossCurveSvg([1, 0.5, 0.25, 0.125]);
  assert.match(svg, /<text[^>]*>1\.000<\/text>/);
  assert.equal((svg.match(/<path /g) ?? []).length, 2);
  assert.match(lossCurveSvg([]), /No training steps/);
});

function fakeRun(root: string, negativePoint: boolean): ExperimentResult {
  const dir = join(root, negativePoint ? 'selective' : 'baseline');
  const look = { shape: 'star' as const, colour: 'red' as const, pattern: 'stripes' as const };
  return {
    subject: look,
    lookalikes: [{ ...look, colour: 'blue' }],
    negativePoint,
    referencePaths: [join(dir, 'references', 'ref-0.png')],
    annotationPath: join(dir, 'subject.json'),
    masks: [
      {
        overlay: join(dir, 'mask', 'ref-0.overlay.png'),
        filled: join(dir, 'mask', 'ref-0.filled.png'),
        subjectIoU: 0.75,
      },
    ],
    losses: [0.3, 0.2],
    trainSeconds: 12,
    adapterPath: join(dir, 'train', 'adapter.safetensors'),
    generated: [
      {
        path: join(dir, 'generated', 'a.png'),
        prompt: 'a sks star <b>on the beach</b>',
        background: 'beach',
        seen: { colour: 'red', shape: 'star', pattern: 'stripes', background: 'beach' },
        isSubject: true,
        isLookalike: false,
      },
    ],
    contactSheet: null,
    fidelity: negativePoint ? 0.875 : 0.25,
    lookalikeRate: negativePoint ? 0 : 0.5,
    colourFidelity: negativePoint ? 0.875 : 0.25,
    lookalikeColourRate: 0,
    shapeAccuracy: 1,
    backgroundAccuracy: 0.5,
  };
}

test('the report links images relative to itself and shows both runs', () => {
  const root = mkdtempSync(join(tmpdir(), 'p3s-report-'));
  try {
    const path = join(root, 'report.html');
    renderReport(path, {
      main: fakeRun(root, true),
      baseline: fakeRun(root, false),
      modelQuality: { maskLayer: 2 },
      seconds: 61,
      settings: { injection: 'aligned', 'subject-guidance': true, 'crop-subject': null },
    });
    const html = readFileSync(path, 'utf8');
    assert.ok(html.includes('src="selective/references/ref-0.png"'));
    assert.ok(html.includes('src="baseline/generated/a.png"'));
    assert.ok(html.includes('<td>88 %</td>'), 'the selective run fidelity');
    assert.ok(html.includes('<td>25 %</td>'), 'the baseline fidelity');
    assert.ok(html.includes('red striped star'));
    assert.ok(html.includes('&quot;maskLayer&quot;: 2'));
    assert.ok(!html.includes('<b>on the beach</b>'));
    assert.ok(html.includes('a sks star &lt;b&gt;on the beach&lt;/b&gt;'));
    assert.ok(
      html.includes(
        'Settings: injection <code>aligned</code>, subject-guidance <code>true</code>, crop-subject <code>null</code>.',
      ),
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
