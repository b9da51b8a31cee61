/** The run's warm-pass planning (pipeline/warm.ts) from a snapshot history, without Kopia or Docker. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SnapshotManifest } from '../../src/adapters/kopia.js';
import type { Plan, PlannedSource, UnitPlan } from '../../src/core/plan.js';
import { bySource, planWarm, previousFacts, staleWarmIds } from '../../src/pipeline/warm.js';

const GiB = 1024 ** 3;

function source(name: string, sizeBytes: number): PlannedSource {
  return {
    key: `volume:${name}`,
    type: 'volume',
    name,
    hostPath: `/var/lib/docker/volumes/${name}/_data`,
    kopiaPath: `/volumes/web/${name}`,
    usedBy: [],
    sizeBytes,
    files: 1000,
  };
}

function unitPlan(sources: PlannedSource[], running = true): UnitPlan {
  return {
    unit: 'web',
    kind: 'stack',
    containers: [],
    stop: running ? [{ container: 'web-db-1', id: 'c1', timeoutSec: 10 }] : [],
    start: [],
    completed: [],
    recipe: {
      kopiaPath: '/recipes/web',
      workingDir: undefined,
      composeFiles: [],
      missingFiles: [],
      referencedFiles: [],
      environmentFiles: [],
    },
    sources,
    coverage: [],
    uncaptured: [],
    leftAsIs: [],
    expectedSnapshots: 1 + sources.length,
    warnings: [],
  };
}

function plan(up: UnitPlan, warmPass: 'auto' | 'always' | 'never' = 'auto', keepLatest = 10): Plan {
  return {
    backupId: '2026-03-01T12-00-00Z',
    host: 'h',
    user: 'u',
    volumeMode: 'direct',
    parallelWorkers: 2,
    excludePatterns: [],
    run: {
      tarDeterministicMtime: false,
      taskTimeoutSec: 0,
      stallTimeoutSec: 300,
      startTimeoutSec: 60,
      retention: { keepLatest, keepHourly: 0, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepAnnual: 0 },
      compression: 'zstd',
      preBackupHook: undefined,
      postBackupHook: undefined,
      warmPass,
    },
    units: [up],
  };
}

let n = 0;
function snap(path: string, day: number, tags: Record<string, string> = {}, size = GiB): SnapshotManifest {
  n++;
  return {
    id: n.toString(16).padStart(32, '0'),
    source: { host: 'h', userName: 'u', path },
    description: '',
    startTime: `2026-02-${String(day).padStart(2, '0')}T10:00:00Z`,
    endTime: `2026-02-${String(day).padStart(2, '0')}T10:01:00Z`,
    rootEntry: { name: 'x', type: 'd', obj: 'k1', summ: { size, files: 1000, numFailed: 0 } },
    tags: Object.fromEntries(
      Object.entries({ unit: 'web', backup_id: `b${String(day)}`, type: 'volume', ...tags }).map(([k, v]) => [
        `tag:${k}`,
        v,
      ]),
    ),
  } as SnapshotManifest; // rootEntry carries only the fields the planner reads
}

const NOW = Date.parse('2026-03-01T12:00:00Z');

describe('planWarm', () => {
  it('warms a large source on its first backup, not a small one', () => {
    const up = unitPlan([source('big', GiB), source('small', 1024)]);
    const p = plan(up);
    planWarm(p, [], NOW);
    assert.equal(up.sources[0]?.warm?.warm, true);
    assert.equal(up.sources[1]?.warm?.warm, false);
  });
  it('warms nothing for a unit that is not stopped', () => {
    const up = unitPlan([source('big', GiB)], false);
    planWarm(plan(up), [], NOW);
    assert.equal(up.sources[0]?.warm?.warm, false);
  });
  it('warms nothing without a history (Kopia could not list)', () => {
    const up = unitPlan([source('big', GiB)]);
    planWarm(plan(up), undefined, NOW);
    assert.equal(up.sources[0]?.warm?.warm, false);
    assert.match(up.sources[0]?.warm?.why ?? '', /history could not be read/);
  });
  it('does not warm an unchanged source with a previous snapshot, warms a grown one', () => {
    const up = unitPlan([source('same', GiB), source('grown', 2 * GiB)]);
    const history = [snap('/volumes/web/same', 1), snap('/volumes/web/grown', 1)];
    planWarm(plan(up), history, NOW);
    assert.equal(up.sources[0]?.warm?.warm, false);
    assert.equal(up.sources[1]?.warm?.warm, true);
  });
  it('refuses the warm pass (also with always) when keep_latest is full and it would cost a restore point', () => {
    const up = unitPlan([source('big', 2 * GiB)]);
    const history = [1, 2, 3].map((d) => snap('/volumes/web/big', d));
    planWarm(plan(up, 'always', 3), history, NOW);
    assert.equal(up.sources[0]?.warm?.warm, false);
    assert.match(up.sources[0]?.warm?.why ?? '', /retention delete 1/);
    const up2 = unitPlan([source('big', 2 * GiB)]);
    planWarm(plan(up2, 'always', 5), history, NOW);
    assert.equal(up2.sources[0]?.warm?.warm, true);
  });
});

describe('history helpers', () => {
  it("previous facts ignore warm, incomplete and this run's snapshots; stale warm ones are found", () => {
    const up = unitPlan([source('big', GiB)]);
    const p = plan(up);
    const cold = snap('/volumes/web/big', 1, {}, 100);
    const warm = snap('/volumes/web/big', 2, { pass: 'warm' }, 200);
    const incomplete = { ...snap('/volumes/web/big', 3, {}, 300), incomplete: 'canceled' };
    const mine = snap('/volumes/web/big', 4, { backup_id: p.backupId }, 400);
    const all = [cold, warm, incomplete, mine];
    assert.equal(previousFacts(p, up, bySource(all)).get('volume:big')?.sizeBytes, 100);
    assert.deepEqual(staleWarmIds(all), [warm.id]);
  });
});
