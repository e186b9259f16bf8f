// The job records on disk and the small pieces around them: ids that sort in submission order
// and refuse anything a request could use to name another file, atomic writes that leave no
// temporary behind, the temporaries of a killed writer removed on open, a damaged record
// skipped with its reason, and the progress throttle.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JobStore, isJobId, newJobId } from '../../src/jobs/job_store.js';
import { Throttle } from '../../src/jobs/throttle.js';
import { queuedRecord, type JobInput, type JobRecord } from '../../src/jobs/job.js';

function tempDir(t: { after: (f: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'p3s-job-store-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function record(store: JobStore, id: string): JobRecord {
  const input: JobInput = {
    kind: 'mask',
    config: { annotationPath: 'a.json', clipFolder: 'clip', outDir: 'x' },
  };
  return queuedRecord(id, 'subject-1', input, store.folderOf(id));
}

test('ids are valid, unique and sort in the order they were made, even within a millisecond', () => {
  const ids = Array.from({ length: 200 }, () => newJobId(1_700_000_000_000));
  assert.ok(
    ids.every(isJobId),
    ids.find((id) => !isJobId(id)),
  );
  assert.equal(new Set(ids).size, ids.length);
  assert.deepEqual([...ids].sort(), ids);
  // a later clock gives a later id, whatever the random part
  assert.ok(newJobId(Date.now() + 10_000) > ids.at(-1)!);
});

test('isJobId refuses what could name another file or is not a string', () => {
  for (const bad of ['', '../x', 'a/b', 'J-ABC', 'a.json', 'x'.repeat(65), 'a b', null, 42, {}])
    assert.equal(isJobId(bad), false, JSON.stringify(bad));
  assert.equal(isJobId('x'.repeat(64)), true);
});

test('records are written whole, read back in id order, with no temporary left', (t) => {
  const dataDir = tempDir(t);
  const store = JobStore.open(dataDir);
  const ids = [newJobId(), newJobId(), newJobId()];
  for (const id of [...ids].reverse()) store.write(record(store, id));
  const again = record(store, ids[0]!);
  again.state = 'succeeded';
  store.write(again); // replaces the record in place
  const { records, unreadable } = JobStore.open(dataDir).readAll();
  assert.deepEqual(unreadable, []);
  assert.deepEqual(
    records.map((r) => r.id),
    ids,
  );
  assert.equal(records[0]!.state, 'succeeded');
  assert.deepEqual(
    readdirSync(join(dataDir, 'jobs')).sort(),
    ids.map((id) => `${id}.json`),
  );
  assert.throws(() => store.write(record(store, '../escape')), /Expected a job id/);
});

test('open removes the temporaries of a killed writer and skips damaged records with a reason', (t) => {
  const dataDir = tempDir(t);
  const store = JobStore.open(dataDir);
  const good = newJobId();
  store.write(record(store, good));
  const jobs = join(dataDir, 'jobs');
  // pid 2^22 + 1 is above Linux's pid_max default: no such process runs
  writeFileSync(join(jobs, `${good}.json.tmp-4194305`), '{"half":');
  writeFileSync(join(jobs, 'j-damaged.json'), '{"id": "j-damaged", "sta');
  writeFileSync(join(jobs, 'j-other.json'), JSON.stringify({ ...record(store, 'j-x'), id: 'j-x' }));
  const reopened = JobStore.open(dataDir);
  assert.deepEqual(
    readdirSync(jobs).filter((f) => f.includes('.tmp-')),
    [],
  );
  const { records, unreadable } = reopened.readAll();
  assert.deepEqual(
    records.map((r) => r.id),
    [good],
  );
  assert.deepEqual(unreadable.map((u) => u.path).sort(), [
    join(jobs, 'j-damaged.json'),
    join(jobs, 'j-other.json'),
  ]);
  assert.match(unreadable.find((u) => u.path.endsWith('j-other.json'))!.reason, /file name/);
});

test('the throttle passes at most one value per interval and delivers the newest last', async () => {
  const seen: { value: number; at: number }[] = [];
  let resolveLast: () => void;
  const last = new Promise<void>((r) => (resolveLast = r));
  const throttle = new Throttle<number>(50, (value) => {
    seen.push({ value, at: performance.now() });
    if (value === 99) resolveLast();
  });
  for (let i = 0; i <= 99; i++) throttle.push(i); // all at once
  await last;
  assert.deepEqual(
    seen.map((s) => s.value),
    [0, 99],
  );
  assert.ok(seen[1]!.at - seen[0]!.at >= 45, `${seen[1]!.at - seen[0]!.at} ms apart`);
  throttle.push(100);
  throttle.push(101);
  assert.equal(throttle.stop(), 101, 'stop hands back the value not emitted');
});
