// A run's folder: locked while a run holds it (a second run refused with the holder's pid, a
// dead holder's lock taken over with a note), checked writable and roomy before any work, its
// killed writes' temporary files removed, another run's work refused or replaced on request;
// every filesystem failure names its file and says what to do.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { RunFolderError, writeFailure } from '../../src/training/errors.js';
import {
  checkFreeSpace,
  checkWritable,
  deleteEarlierRun,
  refuseEarlierRun,
  removeStaleTemporaries,
} from '../../src/training/run_folder.js';
import { LOCK_FILE, lockRunFolder } from '../../src/training/run_lock.js';

let root = '';
before(() => (root = mkdtempSync(join(tmpdir(), 'p3s-run-folder-'))));
after(() => rmSync(root, { recursive: true, force: true }));

/** The process id of a process that has exited. */
const deadPid = (): number => spawnSync(process.execPath, ['-e', '']).pid!;

const folder = (name: string): string => {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  return dir;
};

test('a second run is refused while the first holds the folder, naming its process', () => {
  const dir = folder('held');
  const notes: string[] = [];
  const lock = lockRunFolder(dir, (m) => notes.push(m));
  assert.equal(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8')).pid, process.pid);
  assert.throws(
    () => lockRunFolder(dir, (m) => notes.push(m)),
    (e: unknown) => {
      assert.ok(e instanceof RunFolderError);
      assert.match(
        e.message,
        new RegExp(
          `^Another run \\(process ${process.pid} on ${hostname()}, started .*\\) is using ${dir}: wait for it to finish or stop it \\(kill ${process.pid}\\), or give another output folder$`,
        ),
      );
      return true;
    },
  );
  lock.release();
  assert.equal(existsSync(join(dir, LOCK_FILE)), false);
  lockRunFolder(dir, (m) => notes.push(m)).release();
  assert.deepEqual(notes, []);
});

test("a dead process's lock is taken over with a note; another host's is refused", () => {
  const dir = folder('stale');
  const pid = deadPid();
  const lockPath = join(dir, LOCK_FILE);
  writeFileSync(lockPath, JSON.stringify({ pid, host: hostname(), started: 'earlier' }));
  const notes: string[] = [];
  const lock = lockRunFolder(dir, (m) => notes.push(m));
  assert.deepEqual(notes, [
    `Took over the lock ${lockPath} of process ${pid}, which no longer runs`,
  ]);
  lock.release();

  writeFileSync(lockPath, '{"pid":');
  lockRunFolder(dir, (m) => notes.push(m)).release();
  assert.equal(notes[1], `Took over the unreadable lock ${lockPath}`);

  writeFileSync(lockPath, JSON.stringify({ pid, host: 'elsewhere', started: 'earlier' }));
  assert.throws(
    () => lockRunFolder(dir, () => {}),
    new RegExp(
      `process ${pid} on elsewhere.*p3s cannot check a process on another host: if it no longer runs, delete ${lockPath}`,
    ),
  );
  // a release does not remove a lock that is not its own
  const mine = lockRunFolder(folder('released'), () => {});
  writeFileSync(mine.path, JSON.stringify({ pid, host: 'elsewhere', started: 'now' }));
  mine.release();
  assert.ok(existsSync(mine.path));
});

test('the output folder is checked writable before any work, and failures name the file', () => {
  const dir = join(root, 'fresh', 'deeper');
  checkWritable(dir);
  assert.ok(existsSync(dir));
  const file = join(root, 'a-file');
  writeFileSync(file, 'not a folder');
  assert.throws(
    () => checkWritable(file),
    new RegExp(
      `Cannot create the output folder ${file}: a file is in the way of the folder: give another output folder \\(EEXIST\\)$`,
    ),
  );
  assert.throws(
    () => checkWritable(join(file, 'out')),
    /Cannot create the output folder .*a-file\/out: a file is in the way of a folder on its path: give another output folder \(ENOTDIR\)$/,
  );
});

test(
  'a read-only output folder is refused before any work',
  { skip: process.getuid?.() === 0 && 'root writes read-only folders' },
  () => {
    const dir = folder('read-only');
    chmodSync(dir, 0o555);
    try {
      assert.throws(
        () => checkWritable(dir),
        /Cannot write into the output folder .*read-only: permission denied: make the folder writable or give another output folder \(EACCES\)$/,
      );
    } finally {
      chmodSync(dir, 0o755);
    }
  },
);

test('errno failures say what they mean for the file; other errors pass unchanged', () => {
  const errno = (code: string): Error =>
    Object.assign(new Error(`${code}: raw text, write`), { code });
  const path = '/runs/a/checkpoints/checkpoint-000004.safetensors';
  const said = (code: string) =>
    (writeFailure(errno(code), path, 'write the checkpoint') as Error).message;
  assert.equal(
    said('ENOSPC'),
    `Cannot write the checkpoint ${path}: the disk is full: free some space or give another output folder (ENOSPC)`,
  );
  assert.equal(
    said('EROFS'),
    `Cannot write the checkpoint ${path}: the file system is read-only: give another output folder (EROFS)`,
  );
  assert.match(said('EIO'), /^Cannot write the checkpoint .*: EIO: raw text, write \(EIO\)$/);
  const plain = new RangeError('not a filesystem error');
  assert.equal(writeFailure(plain, path, 'write the checkpoint'), plain);
});

test('a run needs room for what it writes; a file system that cannot tell is not checked', () => {
  const statfs = (free: number) => () => ({ bavail: free / 4096, bsize: 4096 });
  checkFreeSpace(root, 8192, 'two checkpoints', statfs(8192));
  assert.throws(
    () => checkFreeSpace(root, 3e9, '2 checkpoint(s) and the results', statfs(1e9)),
    new RegExp(
      `Not enough space in ${root}: the run writes about 3\\.00 GB \\(2 checkpoint\\(s\\) and the results\\) but 1\\.00 GB are free: free some space or give another output folder$`,
    ),
  );
  checkFreeSpace(root, 3e9, 'anything', () => {
    throw Object.assign(new Error('ENOSYS'), { code: 'ENOSYS' });
  });
});

test("temporary files of killed writes are removed; a running process's are kept", () => {
  const dir = folder('temporaries');
  const stale = join(dir, `adapter.safetensors.tmp-${deadPid()}`);
  const ours = join(dir, `adapter.safetensors.tmp-${process.pid}`);
  const other = join(dir, 'notes.tmp-x');
  for (const f of [stale, ours, other]) writeFileSync(f, '');
  assert.deepEqual(removeStaleTemporaries(dir), [stale]);
  assert.deepEqual([stale, ours, other].map(existsSync), [false, true, true]);
});

test("a new run refuses another run's work, or deletes it to replace it", () => {
  const dir = folder('earlier');
  const work = [join(dir, 'checkpoint-000002.safetensors'), join(dir, 'adapter.safetensors')];
  const byproducts = [join(dir, 'train-log.jsonl')];
  for (const f of [...work, ...byproducts]) writeFileSync(f, '');
  refuseEarlierRun(dir, [], 'give --overwrite');
  assert.throws(
    () => refuseEarlierRun(dir, work, 'give --overwrite'),
    new RegExp(
      `${dir} holds another run \\(checkpoint-000002\\.safetensors, adapter\\.safetensors\\): give --overwrite$`,
    ),
  );
  const notes: string[] = [];
  deleteEarlierRun(dir, [...work, ...byproducts, join(dir, 'gone-already')], (m) => notes.push(m));
  assert.deepEqual([...work, ...byproducts].map(existsSync), [false, false, false]);
  assert.deepEqual(notes, [`Replaced the earlier run in ${dir}: deleted its 3 file(s)`]);
});
