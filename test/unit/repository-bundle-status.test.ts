/**
 * backup-status.json of a recovery bundle (src/pipeline/disaster-recovery.ts `backupStatus`, pure):
 * per unit the number of restore points, the newest COMPLETE one with its sizes, and a newer
 * incomplete one reported with why — from Kopia manifests grouped by `groupRestorePoints`.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { groupRestorePoints, type SnapshotLike } from '../../src/core/restore-points.js';
import { BACKUP_STATUS_FORMAT, backupStatus } from '../../src/pipeline/disaster-recovery.js';

let n = 0;
function snap(
  unit: string,
  backupId: string,
  type: string,
  size: number,
  extra: Record<string, string> = {},
): SnapshotLike {
  n++;
  return {
    id: `k${n}`,
    source: { host: 'h1', userName: 'kopi-docka', path: `/x/${unit}/${type}/${n}` },
    startTime: `2026-11-30T10:00:0${n % 10}Z`,
    endTime: `2026-11-30T10:00:0${n % 10}Z`,
    rootEntry: { obj: `o${n}`, summ: { size } },
    tags: {
      'tag:unit': unit,
      'tag:backup_id': backupId,
      'tag:type': type,
      ...Object.fromEntries(Object.entries(extra).map(([k, v]) => [`tag:${k}`, v])),
    },
  };
}

describe('backupStatus', () => {
  it('the newest complete point per unit, its sizes, and a newer incomplete one with why', () => {
    const snaps = [
      snap('web', '2026-11-29T02-00-00Z', 'recipe', 10, { data_snapshots: '1' }),
      snap('web', '2026-11-29T02-00-00Z', 'volume', 1000, { volume: 'web_data' }),
      snap('web', '2026-11-30T02-00-00Z', 'recipe', 12, { data_snapshots: '1' }),
      snap('web', '2026-11-30T02-00-00Z', 'volume', 2000, { volume: 'web_data' }),
      // A newer point whose data snapshot never arrived.
      snap('web', '2026-11-30T09-00-00Z', 'recipe', 12, { data_snapshots: '1' }),
      snap('db', '2026-11-30T02-00-00Z', 'volume', 5, { volume: 'db_data' }),
    ];
    const s = backupStatus(groupRestorePoints(snaps), {
      now: new Date('2026-11-30T12:00:00Z'),
      identity: 'kopi-docka@h1',
      repository: 'filesystem /srv/repo',
    });
    assert.equal(s.format, BACKUP_STATUS_FORMAT);
    assert.equal(s.createdAt, '2026-11-30T12:00:00.000Z');
    assert.deepEqual(
      s.units.map((u) => u.unit),
      ['db', 'web'],
    );
    const web = s.units.find((u) => u.unit === 'web');
    assert.equal(web?.restorePoints, 3);
    assert.deepEqual(web?.latestComplete && { ...web.latestComplete, time: undefined }, {
      backupId: '2026-11-30T02-00-00Z',
      time: undefined,
      sizeBytes: 2012,
      snapshots: 2,
      sources: [{ type: 'volume', name: 'web_data', sizeBytes: 2000 }],
    });
    assert.equal(web?.newestIncomplete?.backupId, '2026-11-30T09-00-00Z');
    assert.match(web?.newestIncomplete?.problems.join('; ') ?? '', /1 of 1 data snapshot\(s\) missing/);
    const db = s.units.find((u) => u.unit === 'db');
    assert.equal(db?.latestComplete, undefined, 'no recipe: never complete');
    assert.match(db?.newestIncomplete?.problems.join('; ') ?? '', /recipe snapshot missing/);
  });
});
