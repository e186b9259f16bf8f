import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  formatSeconds,
  LOG_INTERVAL_MS,
  Progress,
  type ProgressOutput,
} from '../../../apps/terminal/progress.js';

test('times are rounded once: no minute shows 60 seconds, hours show minutes', () => {
  assert.equal(formatSeconds(4.24), '4.2s');
  assert.equal(formatSeconds(59.96), '1m00s');
  assert.equal(formatSeconds(119.6), '2m00s');
  assert.equal(formatSeconds(125), '2m05s');
  assert.equal(formatSeconds(3599.7), '1h00m');
  assert.equal(formatSeconds(7379), '2h03m');
});

function fakeOutput(isTTY: boolean): ProgressOutput & { lines: string[]; clock: number } {
  const out = {
    lines: [] as string[],
    clock: 0,
    isTTY,
    write: (text: string) => void out.lines.push(text),
    now: () => out.clock,
  };
  return out;
}

test('a log gets the first line, then at most one per interval, and always the last', () => {
  const out = fakeOutput(false);
  const bar = new Progress('train', 1000, out);
  for (let step = 1; step <= 1000; step++) {
    out.clock += 100; // 100 ms a step: 100 s in all
    bar.update(step);
  }
  const expected = 1 + Math.floor((100_000 - 100) / LOG_INTERVAL_MS);
  assert.ok(
    out.lines.length >= expected && out.lines.length <= expected + 1,
    `${out.lines.length}`,
  );
  assert.match(out.lines[0]!, /^train .* 1\/1000 0\.1s/);
  assert.match(out.lines.at(-1)!, /1000\/1000 1m40s\n$/);
});

test('a terminal redraws one line on every update and ends it when done', () => {
  const out = fakeOutput(true);
  const bar = new Progress('gen', 3, out);
  for (let i = 1; i <= 3; i++) bar.update(i, `image ${i}`);
  assert.equal(out.lines.length, 3);
  assert.ok(out.lines.every((l) => l.startsWith('\r\x1b[2K')));
  assert.ok(!out.lines[1]!.endsWith('\n') && out.lines[2]!.endsWith('image 3\n'));
});

test('time counts from when the work began, so the first line already estimates the rest', () => {
  const out = fakeOutput(false);
  out.clock = 1000;
  const bar = new Progress('unet', 10, out, 0);
  bar.update(1);
  assert.match(out.lines[0]!, /1\/10 1\.0s < 9\.0s/);
});

test('a total set again when the work turns out larger keeps a log to one line per interval', () => {
  const out = fakeOutput(false);
  const bar = new Progress('demo', 10, out);
  for (let i = 1; i <= 30; i++) {
    out.clock += 100; // 3 s in all: within one interval
    if (i === 5) bar.setTotal(30); // the estimate of 10 was short
    bar.update(i);
  }
  // without the new total, every update from the 10th on would count as the last
  assert.equal(out.lines.length, 2, out.lines.join(''));
  assert.match(out.lines[1]!, /30\/30 3\.0s\n$/);
});
