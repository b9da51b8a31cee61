/**
 * Restore points: all snapshots sharing one (unit, backup_id), strictly — never a time window. Times
 * come from Kopia's own startTime (UTC), never from "now". Complete means: the recipe is there, the
 * number of data snapshots its tag announces are there, and none of them is incomplete. Warm-pass
 * snapshots (tag `pass:warm`, core/warm.ts) are never part of one.
 */
import { ExitCode, KopiDockaError, UsageError } from '../errors.js';
import { isWarmTags } from './warm.js';

/** The fields of a Kopia snapshot manifest this module needs (kept structural so it stays pure). */
export interface SnapshotLike {
  id: string;
  source: { host: string; userName: string; path: string };
  startTime: string;
  endTime: string;
  incomplete?: string | undefined;
  rootEntry: { obj: string; summ?: { size?: number } | undefined; size?: number | undefined };
  tags?: Record<string, string> | undefined;
}

export interface PointSnapshot {
  id: string;
  type: string;
  /** Volume name or bind host path; the unit name for the recipe. */
  name: string;
  path: string;
  rootObj: string;
  startTime: string;
  sizeBytes: number;
  incomplete: string | undefined;
  tags: Record<string, string>;
}

export interface RestorePoint {
  unit: string;
  backupId: string;
  host: string;
  user: string;
  /** Earliest startTime of its snapshots (ISO 8601, UTC). */
  time: string;
  sizeBytes: number;
  recipe: PointSnapshot | undefined;
  data: PointSnapshot[];
  /** Data snapshots the recipe says this point must have; undefined without a recipe. */
  expectedData: number | undefined;
  complete: boolean;
  /** Why it is not complete (empty when complete). */
  problems: string[];
}

function plainTags(tags: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(tags ?? {})) if (k.startsWith('tag:')) out[k.slice(4)] = v;
  return out;
}

export function groupRestorePoints(
  snapshots: SnapshotLike[],
  filter: { host?: string | undefined; unit?: string | undefined } = {},
): RestorePoint[] {
  const points = new Map<string, RestorePoint>();
  for (const s of snapshots) {
    const tags = plainTags(s.tags);
    const unit = tags.unit;
    const backupId = tags.backup_id;
    const type = tags.type;
    // Snapshots without our tags are not kopi-docka's (or predate it): never guess a group for them.
    if (!unit || !backupId || !type) continue;
    // A warm pass (core/warm.ts) is never part of a restore point, also when a crash left it behind.
    if (isWarmTags(tags)) continue;
    if (filter.host !== undefined && s.source.host !== filter.host) continue;
    if (filter.unit !== undefined && unit !== filter.unit) continue;
    const key = `${s.source.userName}@${s.source.host}\u0000${unit}\u0000${backupId}`;
    let p = points.get(key);
    if (!p) {
      p = {
        unit,
        backupId,
        host: s.source.host,
        user: s.source.userName,
        time: s.startTime,
        sizeBytes: 0,
        recipe: undefined,
        data: [],
        expectedData: undefined,
        complete: false,
        problems: [],
      };
      points.set(key, p);
    }
    const snap: PointSnapshot = {
      id: s.id,
      type,
      name:
        type === 'volume'
          ? (tags.volume ?? s.source.path)
          : type === 'bind'
            ? (tags.bind_source ?? s.source.path)
            : unit,
      path: s.source.path,
      rootObj: s.rootEntry.obj,
      startTime: s.startTime,
      sizeBytes: s.rootEntry.summ?.size ?? s.rootEntry.size ?? 0,
      incomplete: s.incomplete,
      tags,
    };
    if (Date.parse(s.startTime) < Date.parse(p.time)) p.time = s.startTime;
    p.sizeBytes += snap.sizeBytes;
    if (type === 'recipe') {
      // Two recipes for one point would be a bug elsewhere; keep the complete/newest one.
      if (!p.recipe || (p.recipe.incomplete && !snap.incomplete)) p.recipe = snap;
    } else {
      p.data.push(snap);
    }
  }
  for (const p of points.values()) {
    p.data.sort((a, b) => a.name.localeCompare(b.name));
    const n = p.recipe?.tags.data_snapshots;
    p.expectedData = n === undefined ? undefined : Number(n);
    if (!p.recipe) p.problems.push('recipe snapshot missing (the backup did not finish)');
    else if (p.recipe.incomplete) p.problems.push(`recipe snapshot incomplete (${p.recipe.incomplete})`);
    const bad = p.data.filter((d) => d.incomplete);
    for (const d of bad) p.problems.push(`${d.type} ${d.name} incomplete (${d.incomplete ?? ''})`);
    const good = p.data.length - bad.length;
    if (p.expectedData !== undefined && good < p.expectedData) {
      p.problems.push(`${p.expectedData - good} of ${p.expectedData} data snapshot(s) missing`);
    }
    p.complete = p.problems.length === 0;
  }
  // Newest first; backup ids sort chronologically by construction.
  return [...points.values()].sort(
    (a, b) =>
      b.backupId.localeCompare(a.backupId) || a.unit.localeCompare(b.unit) || a.host.localeCompare(b.host),
  );
}

/** `latest` → the newest complete point of the unit (an incomplete one is never picked implicitly). */
export function findPoint(points: RestorePoint[], unit: string, backupId: string): RestorePoint | undefined {
  const mine = points.filter((p) => p.unit === unit);
  if (backupId === 'latest') return mine.find((p) => p.complete);
  return mine.find((p) => p.backupId === backupId);
}

/** "restore points of U: id1, id2 (incomplete)" — the hint for an unknown backup_id. */
export function knownPoints(points: RestorePoint[], unit: string): string {
  const ids = points
    .filter((p) => p.unit === unit)
    .map((p) => `${p.backupId}${p.complete ? '' : ' (incomplete)'}`);
  return ids.length ? `restore points of ${unit}: ${ids.join(', ')}` : `no restore points for ${unit}`;
}

/**
 * The restore point asked for: `backupId` (default `latest`, the newest complete one) of `unit`.
 *
 * @throws UsageError (exit 2) for an unknown unit or backup_id, a unit found on several hosts, and an
 *   incomplete point unless `allowIncomplete`; each names what exists.
 */
export function pickPoint(
  points: RestorePoint[],
  want: { unit: string; backupId?: string | undefined; allowIncomplete?: boolean | undefined },
): RestorePoint {
  const { unit } = want;
  const units = [...new Set(points.map((p) => p.unit))];
  if (!units.includes(unit)) {
    throw new UsageError(
      `unknown unit "${unit}" in the repository`,
      `units with restore points: ${units.join(', ') || '(none)'}`,
    );
  }
  // With --all-hosts one unit name may exist on several machines: never pick one of them silently.
  const hosts = [...new Set(points.filter((p) => p.unit === unit).map((p) => p.host))];
  if (hosts.length > 1) {
    throw new UsageError(
      `unit ${unit} has restore points from several hosts: ${hosts.join(', ')}`,
      'pick one with --host H',
    );
  }
  const id = want.backupId ?? 'latest';
  const p = findPoint(points, unit, id);
  if (!p) {
    throw new UsageError(
      id === 'latest' ? `${unit} has no complete restore point` : `unknown backup_id "${id}" for ${unit}`,
      knownPoints(points, unit),
    );
  }
  if (!p.complete && !want.allowIncomplete) {
    throw new KopiDockaError(`restore point ${unit} ${p.backupId} is incomplete: ${p.problems.join('; ')}`, {
      exitCode: ExitCode.USAGE,
      hint: 'pick a complete one, or confirm with --allow-incomplete',
    });
  }
  return p;
}
