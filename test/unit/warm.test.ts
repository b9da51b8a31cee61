/** The warm pass's pure parts (core/warm.ts): the `auto` decision and Kopia's retention, re-computed. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { groupRestorePoints, type SnapshotLike } from '../../src/core/restore-points.js';
import {
  WARM_CHANGE_BYTES,
  WARM_MIN_BYTES,
  decideWarm,
  isWarmTags,
  retainedIds,
  warmWouldExpire,
  type WarmFacts,
} from '../../src/core/warm.js';

const GiB = 1024 ** 3;
const facts = (f: Partial<WarmFacts>): WarmFacts => ({
  sizeBytes: GiB,
  files: 10_000,
  format: 'dir',
  previous: undefined,
  wouldExpire: 0,
  ...f,
});
const keep = (p: Partial<Record<string, number>> = {}) => ({
  keepLatest: 10,
  keepHourly: 0,
  keepDaily: 0,
  keepWeekly: 0,
  keepMonthly: 0,
  keepAnnual: 0,
  ...p,
});

describe('decideWarm (auto)', () => {
  it('warms a first backup of a large source', () => {
    const d = decideWarm('auto', facts({}));
    assert.equal(d.warm, true);
    assert.match(d.why, /no previous snapshot/);
  });
  it('does not warm a small source', () => {
    assert.equal(decideWarm('auto', facts({ sizeBytes: WARM_MIN_BYTES - 1 })).warm, false);
  });
  it('does not warm an unknown size', () => {
    assert.equal(decideWarm('auto', facts({ sizeBytes: undefined })).warm, false);
  });
  it('does not warm a direct source that barely changed since its previous snapshot', () => {
    const d = decideWarm('auto', facts({ previous: { sizeBytes: GiB - 1000, files: 10_000 } }));
    assert.equal(d.warm, false);
  });
  it('warms a direct source whose size moved by WARM_CHANGE_BYTES or more', () => {
    const prev = { sizeBytes: GiB - WARM_CHANGE_BYTES, files: 10_000 };
    assert.equal(decideWarm('auto', facts({ previous: prev })).warm, true);
  });
  it('warms a direct source whose file count moved by 10 % or more', () => {
    assert.equal(decideWarm('auto', facts({ previous: { sizeBytes: GiB, files: 9000 } })).warm, true);
    assert.equal(decideWarm('auto', facts({ previous: { sizeBytes: GiB, files: 9500 } })).warm, false);
  });
  it('warms a tar stream only on its first backup', () => {
    assert.equal(decideWarm('auto', facts({ format: 'tar' })).warm, true);
    const prev = { sizeBytes: GiB / 2, files: 1 };
    assert.equal(decideWarm('auto', facts({ format: 'tar', previous: prev })).warm, false);
  });
  it('never warms when it would cost a kept snapshot, whatever the mode', () => {
    for (const mode of ['auto', 'always'] as const) {
      const d = decideWarm(mode, facts({ wouldExpire: 1 }));
      assert.equal(d.warm, false, mode);
      assert.match(d.why, /retention delete 1/);
    }
  });
  it('always / never', () => {
    assert.equal(decideWarm('always', facts({ sizeBytes: 10 })).warm, true);
    assert.equal(decideWarm('never', facts({})).warm, false);
  });
});

const snap = (
  id: string,
  startTime: string,
  extra: Partial<{ incomplete: string; pins: string[] }> = {},
) => ({
  id,
  startTime,
  ...extra,
});

describe("retainedIds (Kopia's retention)", () => {
  it('keeps the latest N complete snapshots', () => {
    const s = [1, 2, 3, 4].map((d) => snap(`s${d}`, `2026-01-0${d}T10:00:00Z`));
    assert.deepEqual([...retainedIds(s, keep({ keepLatest: 2 }))].sort(), ['s3', 's4']);
  });
  it('keeps the newest of each day within keep_daily days of the newest (a: same day as b, older)', () => {
    const s = [
      snap('a', '2026-01-01T10:00:00Z'),
      snap('b', '2026-01-01T12:00:00Z'),
      snap('c', '2026-01-02T10:00:00Z'),
      snap('d', '2026-01-05T10:00:00Z'),
    ];
    assert.deepEqual([...retainedIds(s, keep({ keepLatest: 1, keepDaily: 4 }))].sort(), ['b', 'c', 'd']);
    assert.deepEqual([...retainedIds(s, keep({ keepLatest: 1, keepDaily: 2 }))].sort(), ['d']);
  });
  it('keeps everything when every keep value is 0, and pinned ones always', () => {
    const s = [snap('a', '2026-01-01T10:00:00Z'), snap('b', '2026-01-02T10:00:00Z')];
    assert.equal(retainedIds(s, keep({ keepLatest: 0 })).size, 2);
    const pinned = [snap('a', '2026-01-01T10:00:00Z', { pins: ['x'] }), snap('b', '2026-01-02T10:00:00Z')];
    assert.deepEqual([...retainedIds(pinned, keep({ keepLatest: 1 }))].sort(), ['a', 'b']);
  });
  it('does not count incomplete snapshots towards latest, and keeps only those newer than the newest complete', () => {
    const s = [
      snap('a', '2026-01-01T10:00:00Z'),
      snap('b', '2026-01-02T10:00:00Z', { incomplete: 'canceled' }),
      snap('c', '2026-01-03T10:00:00Z'),
      snap('d', '2026-01-04T10:00:00Z', { incomplete: 'canceled' }),
    ];
    assert.deepEqual([...retainedIds(s, keep({ keepLatest: 2 }))].sort(), ['a', 'c', 'd']);
  });
});

describe('warmWouldExpire', () => {
  const now = Date.parse('2026-03-01T12:00:00Z');
  it('is empty for a first backup', () => {
    assert.deepEqual(warmWouldExpire([], keep(), now), []);
  });
  it('is empty while the history is shorter than keep_latest - 1', () => {
    const s = [1, 2, 3].map((d) => snap(`s${d}`, `2026-02-0${d}T10:00:00Z`));
    assert.deepEqual(warmWouldExpire(s, keep({ keepLatest: 5 }), now), []);
  });
  it('names the oldest kept snapshot once the history is full', () => {
    const s = [1, 2, 3, 4, 5].map((d) => snap(`s${d}`, `2026-02-0${d}T10:00:00Z`));
    assert.deepEqual(warmWouldExpire(s, keep({ keepLatest: 5 }), now), ['s2']);
  });
  it('is empty when that snapshot is kept for another reason (its day)', () => {
    const s = [1, 2, 3, 4, 5].map((d) => snap(`s${d}`, `2026-02-2${d}T10:00:00Z`));
    assert.deepEqual(warmWouldExpire(s, keep({ keepLatest: 5, keepDaily: 30 }), now), []);
  });
  it('sees an hour bucket the warm snapshot would take from an earlier run of the same hour', () => {
    const s = [snap('early', '2026-03-01T12:00:00Z')];
    // keep only one per hour: the warm snapshot (newest in hour 12) takes it; the cold one after too.
    const lost = warmWouldExpire(s, keep({ keepLatest: 0, keepHourly: 1, keepDaily: 0 }), now + 60_000);
    assert.deepEqual(lost, []);
  });
});

describe('warm snapshots are never restore points', () => {
  const base = (id: string, type: string, tags: Record<string, string>): SnapshotLike => ({
    id,
    source: { host: 'h', userName: 'u', path: `/x/${id}` },
    startTime: '2026-01-01T10:00:00Z',
    endTime: '2026-01-01T10:00:01Z',
    rootEntry: { obj: 'k1', summ: { size: 10 } },
    tags: Object.fromEntries(
      Object.entries({ unit: 'web', backup_id: 'b1', type, ...tags }).map(([k, v]) => [`tag:${k}`, v]),
    ),
  });
  it('groupRestorePoints ignores them (also without a cold one next to them)', () => {
    const points = groupRestorePoints([
      base('r', 'recipe', { data_snapshots: '1' }),
      base('v', 'volume', { volume: 'data' }),
      base('w', 'volume', { volume: 'data', pass: 'warm' }),
      base('w2', 'volume', { volume: 'data', pass: 'warm', backup_id: 'b2' }),
    ]);
    assert.equal(points.length, 1);
    assert.equal(points[0]?.complete, true);
    assert.deepEqual(
      points[0]?.data.map((d) => d.id),
      ['v'],
    );
    assert.equal(isWarmTags({ 'tag:pass': 'warm' }), true);
    assert.equal(isWarmTags({ pass: 'warm' }), true);
    assert.equal(isWarmTags({ pass: 'cold' }), false);
  });
});
