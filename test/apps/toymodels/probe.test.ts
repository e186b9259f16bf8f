// The attribute probe's folder: it round-trips, and an older probe's folder fails with a message
// that says what to do.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { manualSeed } from '../../../src/engine/random.js';
import { AttributeProbe } from '../../../apps/toymodels/probe.js';
import { scenes, scenesToTensor } from '../../../apps/toymodels/data.js';

test('a saved probe loads with the same readings; an older version is refused clearly', () => {
  const dir = mkdtempSync(join(tmpdir(), 'p3s-probe-'));
  manualSeed(3);
  const probe = new AttributeProbe().eval();
  const x = scenesToTensor(scenes('heldout', 0, 4, { objectCount: 1 }));
  try {
    probe.save(dir);
    const loaded = AttributeProbe.load(dir);
    // saved in fp16: the logits move by the weights' rounding only
    const diff = loaded.forward(x).sub(probe.forward(x)).abs().max().item();
    assert.ok(diff < LOGIT_TOLERANCE, `logits moved by ${diff}`);
    loaded.dispose();
    const configPath = join(dir, 'config.json');
    const config = JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
    delete config.version;
    writeFileSync(configPath, JSON.stringify(config));
    assert.throws(() => AttributeProbe.load(dir), /version 1 probe.*--stages probe/);
  } finally {
    probe.dispose();
    x.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});

// Measured 0.00043 (untrained probe, seed 3, 4 scenes): fp16 rounding of the weights.
const LOGIT_TOLERANCE = 0.01;
