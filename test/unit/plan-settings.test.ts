/** The plan carries every setting the run reads, so `backup --dry-run` shows what the run will use. */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { planFor } from '../../src/pipeline/backup.js';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

test('planFor copies the run settings of the config into the plan', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kd-plan-'));
  dirs.push(dir);
  const conf = path.join(dir, 'kopi-docka.conf');
  await writeFile(
    conf,
    [
      '[kopia]',
      `repository_path = ${dir}/repo`,
      'password = secret-pw',
      'compression = s2-default',
      '[backup]',
      'task_timeout = 7',
      'start_timeout = 9',
      'volume_mode = tar',
      'pre_backup_hook = /bin/echo before',
      'post_backup_hook = /bin/echo after',
      '[retention]',
      'latest = 4',
      'daily = 2',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const cfg = await loadConfig({
    explicitPath: conf,
    searchPaths: [],
    env: { HOME: dir, KOPI_DOCKA_STATE_DIR: path.join(dir, 'state') },
    system: { cores: 2, availableMemoryBytes: 2 * 1024 ** 3, hostname: 'h1' },
  });
  const plan = planFor(cfg, [], 'id1', '/var/lib/docker');
  assert.equal(plan.volumeMode, 'tar');
  assert.deepEqual(plan.run, {
    tarDeterministicMtime: cfg.backup.tarDeterministicMtime,
    taskTimeoutSec: 7,
    stallTimeoutSec: 300,
    startTimeoutSec: 9,
    retention: { keepLatest: 4, keepHourly: 0, keepDaily: 2, keepWeekly: 4, keepMonthly: 12, keepAnnual: 3 },
    compression: 's2-default',
    preBackupHook: ['/bin/echo', 'before'],
    postBackupHook: ['/bin/echo', 'after'],
    warmPass: 'auto',
  });
  // The dry-run prints this object as JSON: nothing in it may be lost on the way.
  assert.deepEqual((JSON.parse(JSON.stringify(plan)) as typeof plan).run, plan.run);
});
