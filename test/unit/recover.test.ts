/** Replaying a dead run's journal says what really happened (issue #11 §4). */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import type { Logger } from '../../src/core/log.js';
import { describeReplay, replayJournal } from '../../src/pipeline/recover.js';

const quiet: Logger = { level: 'error', debug() {}, info() {}, warn() {}, error() {} };
const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

test('a container already running (e.g. after a healthcheck timeout) is not reported as started', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kd-recover-'));
  dirs.push(dir);
  await writeFile(
    path.join(dir, 'journal.json'),
    JSON.stringify({
      entries: [
        {
          pid: 1,
          backupId: 'b1',
          unit: 'web',
          stoppedAt: '2026-11-30T18:00:00Z',
          containers: [
            { id: 'a', name: 'web-app-1' },
            { id: 'd', name: 'web-db-1' },
            { id: 'g', name: 'web-gone-1' },
          ],
        },
      ],
    }),
  );
  const docker = {
    // Engine API: 304 (already started) → false; 204 → true.
    startContainer: (id: string) => {
      if (id === 'g') return Promise.reject(new Error('No such container: g'));
      return Promise.resolve(id !== 'a');
    },
    waitRunning: () => Promise.resolve(),
  };
  const r = await replayJournal(dir, docker, quiet);
  assert.deepEqual(r, { started: ['web-db-1'], alreadyRunning: ['web-app-1'], gone: ['web-gone-1'] });
  assert.equal(
    describeReplay(r),
    'started again: web-db-1; already running: web-app-1; no longer exist: web-gone-1',
  );
  assert.equal(describeReplay({ started: [], alreadyRunning: [], gone: [] }), 'nothing to start');
  assert.equal(await replayJournal(dir, docker, quiet), undefined, 'the journal is cleared');
});

test('a damaged journal is a clear error naming the file, not a crash', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kd-recover-'));
  dirs.push(dir);
  await writeFile(path.join(dir, 'journal.json'), '{"entries": [{"pid": "x"');
  await assert.rejects(
    replayJournal(
      dir,
      { startContainer: () => Promise.resolve(true), waitRunning: () => Promise.resolve() },
      quiet,
    ),
    /journal\.json is damaged/,
  );
});
