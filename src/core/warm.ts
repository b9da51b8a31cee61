/**
 * The warm pass (pre-copy): before a unit is stopped, each of its data sources is snapshotted while the
 * containers run, under the SAME Kopia source as the cold snapshot that follows. Kopia's incremental
 * file cache works per source (`snapshot.FindPreviousManifests`: the newest complete snapshot of the
 * source is the base; a file whose mtime, mode, owner and size are unchanged is not read again), so the
 * cold pass — the one taken with the unit down — only reads what changed in between. Warm snapshots are
 * never restore points: they carry the tag `pass:warm`, restore-point grouping ignores them, and the run
 * deletes them once the cold ones exist (a later run deletes any a crash left behind).
 *
 * Kopia applies the source's retention policy after every `snapshot create`, and a complete warm
 * snapshot counts there like any other (tags do not separate retention; reference §6.6): until it is
 * deleted it takes a `latest-N` slot (or an hour/day bucket) that an older cold snapshot held, and
 * Kopia deletes that one for good — its recipe, on another source, would stay, and `restore --list`
 * would show a broken restore point. Pinning it for the run is no way out: `kopia snapshot pin`
 * rewrites the manifest under a NEW ID (verified on v0.23.1), and recipes record data snapshot IDs.
 * So `warmWouldExpire` computes, with Kopia's own algorithm, which kept snapshots a warm one would
 * cost (also after a crash that leaves it behind), and the source is not warmed when that is any.
 * A first backup never costs anything (there is nothing to lose).
 *
 * Pure: no I/O.
 */
import type { RetentionPolicy } from './retention.js';

export type WarmPassMode = 'auto' | 'always' | 'never';
export const WARM_PASS_MODES: readonly WarmPassMode[] = ['auto', 'always', 'never'];

/** Tag key and value every warm snapshot carries (Kopia stores it as `tag:pass`). */
export const WARM_TAG_KEY = 'pass';
export const WARM_TAG_VALUE = 'warm';

/**
 * `auto` skips the warm pass for a source smaller than this (bytes): Kopia reads ~300 MB/s on the
 * reference machine (docs/BENCHMARKS.md), so a cold read of 64 MiB costs ~0.2 s of downtime, about what
 * the warm pass's own repository open costs in wall time.
 */
export const WARM_MIN_BYTES = 64 * 1024 * 1024;
/**
 * `auto` warms a source that has a previous snapshot when its size moved by at least this much (bytes)
 * since: the cold pass would have to read at least that many new bytes.
 */
export const WARM_CHANGE_BYTES = 64 * 1024 * 1024;

/** Plain tags (without Kopia's `tag:` prefix) say whether a snapshot is a warm one. */
export function isWarmTags(tags: Record<string, string> | undefined): boolean {
  if (!tags) return false;
  return tags[WARM_TAG_KEY] === WARM_TAG_VALUE || tags[`tag:${WARM_TAG_KEY}`] === WARM_TAG_VALUE;
}

/** The planned warm-pass decision of one source (shown by `--dry-run`, followed by the run). */
export interface WarmDecision {
  warm: boolean;
  /** Why, in words, e.g. `first backup of this source (1.1 GB to read)`. */
  why: string;
}

/** What `auto` decides from: the source now, and its previous complete cold snapshot (if any). */
export interface WarmFacts {
  /** Bytes measured now (containers running); undefined when unreadable. */
  sizeBytes: number | undefined;
  files: number | undefined;
  /** How the cold pass stores it: a directory snapshot, or a tar stream. */
  format: 'dir' | 'tar';
  /** The newest complete, non-warm snapshot of the same source, in the same format. */
  previous: { sizeBytes: number; files: number } | undefined;
  /** Kept snapshots of the source a warm snapshot would make Kopia's retention delete (warmWouldExpire). */
  wouldExpire: number;
}

const mb = (n: number) => `${(n / 1e6).toFixed(n >= 1e7 ? 0 : 1)} MB`;

/**
 * Decide the warm pass of one source.
 *
 * Never when it would cost a kept snapshot (`wouldExpire`), whatever the mode; `always` otherwise warms.
 * `auto`, from the measurements in docs/BENCHMARKS.md:
 *  - never below WARM_MIN_BYTES (a cold read is cheap there);
 *  - `dir` format: warm when there is no previous complete snapshot of the source (a first backup reads
 *    everything with the unit down), or when its size moved by ≥ WARM_CHANGE_BYTES or its file count by
 *    ≥ 10 % since (much new data to read); otherwise not (an unchanged or lightly changed source is
 *    cached by Kopia: the cold pass is already near the stop+start floor);
 *  - `tar` format: only a first backup. Kopia never skips a stdin stream, so the cold pass reads and
 *    hashes the whole stream anyway; the warm pass only saves it from compressing and writing new
 *    chunks, which after the first backup are few.
 */
export function decideWarm(mode: WarmPassMode, f: WarmFacts): WarmDecision {
  if (mode === 'never') return { warm: false, why: 'warm_pass = never' };
  if (f.wouldExpire > 0) {
    return {
      warm: false,
      why: `a warm snapshot would make Kopia's retention delete ${f.wouldExpire} older snapshot(s) of this source (it counts towards keep_latest until removed)`,
    };
  }
  if (mode === 'always') return { warm: true, why: 'warm_pass = always' };
  if (f.sizeBytes === undefined) return { warm: false, why: 'size unknown' };
  if (f.sizeBytes < WARM_MIN_BYTES) {
    return { warm: false, why: `small (${mb(f.sizeBytes)} < ${mb(WARM_MIN_BYTES)}): a cold read is cheap` };
  }
  if (!f.previous) {
    return {
      warm: true,
      why: `no previous snapshot of this source: the cold pass would read all ${mb(f.sizeBytes)}${f.format === 'tar' ? ' (tar: it still reads the whole stream, but uploads nothing new)' : ''}`,
    };
  }
  if (f.format === 'tar') {
    return {
      warm: false,
      why: 'tar stream with a previous snapshot: the cold pass reads the whole stream either way and its chunks are mostly stored already',
    };
  }
  const moved = Math.abs(f.sizeBytes - f.previous.sizeBytes);
  const filesMoved = Math.abs((f.files ?? 0) - f.previous.files);
  if (moved >= WARM_CHANGE_BYTES) {
    return { warm: true, why: `size changed by ${mb(moved)} since the previous snapshot` };
  }
  if (f.previous.files > 0 && filesMoved >= f.previous.files * 0.1) {
    return { warm: true, why: `file count changed by ${filesMoved} since the previous snapshot` };
  }
  return {
    warm: false,
    why: 'a previous snapshot exists and the size barely changed: the cold pass reads only changed files',
  };
}

// ---------------------------------------------------------------------------------------------------
// Kopia's retention, to know what a warm snapshot would cost

/** The fields of a snapshot the retention algorithm reads. */
export interface RetentionInput {
  id: string;
  /** RFC 3339 (Kopia's startTime). */
  startTime: string;
  incomplete?: string | undefined;
  pins?: string[] | undefined;
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');

/** ISO 8601 week-numbering year and week of a UTC date (Go's time.ISOWeek). */
function isoWeek(d: Date): [number, number] {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day);
  const year = t.getUTCFullYear();
  const week = Math.ceil(((t.getTime() - Date.UTC(year, 0, 1)) / 86_400_000 + 1) / 7);
  return [year, week];
}

function addUTC(base: Date, f: { y?: number; m?: number; d?: number; h?: number }): Date {
  const t = new Date(base.getTime());
  if (f.y) t.setUTCFullYear(t.getUTCFullYear() + f.y);
  if (f.m) t.setUTCMonth(t.getUTCMonth() + f.m);
  if (f.d) t.setUTCDate(t.getUTCDate() + f.d);
  if (f.h) t.setTime(t.getTime() + f.h * 3_600_000);
  return t;
}

/**
 * The snapshots Kopia's retention keeps (ids), as `ComputeRetentionReasons` + `getRetentionReasons` in
 * snapshot/policy/retention_policy.go (v0.23.1) and expire.go compute them: newest first, the first
 * keepLatest complete ones, and the newest complete one of each UTC hour/day/ISO week/month/year
 * within keep-N periods of the newest complete snapshot; incomplete ones newer than the newest complete
 * one while younger than 4 h or among the first 3; pinned ones always. All keep values 0: everything.
 */
export function retainedIds(snaps: readonly RetentionInput[], p: RetentionPolicy): Set<string> {
  const kept = new Set<string>();
  if (snaps.length === 0) return kept;
  const time = (s: RetentionInput) => Date.parse(s.startTime);
  let maxComplete = -Infinity;
  let maxAny = -Infinity;
  for (const s of snaps) {
    maxAny = Math.max(maxAny, time(s));
    if (!s.incomplete) maxComplete = Math.max(maxComplete, time(s));
  }
  const allZero =
    p.keepLatest + p.keepHourly + p.keepDaily + p.keepWeekly + p.keepMonthly + p.keepAnnual === 0;
  const base = new Date(Number.isFinite(maxComplete) ? maxComplete : 0);
  const cases: {
    type: string;
    max: number;
    cutoff: number;
    id: (d: Date, i: number) => string;
  }[] = [
    { type: 'latest', max: allZero ? Infinity : p.keepLatest, cutoff: -Infinity, id: (_d, i) => String(i) },
    {
      type: 'annual',
      max: p.keepAnnual,
      cutoff: addUTC(base, { y: -p.keepAnnual }).getTime(),
      id: (d) => String(d.getUTCFullYear()),
    },
    {
      type: 'monthly',
      max: p.keepMonthly,
      cutoff: addUTC(base, { m: -p.keepMonthly }).getTime(),
      id: (d) => `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}`,
    },
    {
      type: 'weekly',
      max: p.keepWeekly,
      cutoff: addUTC(base, { d: -7 * p.keepWeekly }).getTime(),
      id: (d) => {
        const [y, w] = isoWeek(d);
        return `${pad(y, 4)}-${pad(w)}`;
      },
    },
    {
      type: 'daily',
      max: p.keepDaily,
      cutoff: addUTC(base, { d: -p.keepDaily }).getTime(),
      id: (d) => `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`,
    },
    {
      type: 'hourly',
      max: p.keepHourly,
      cutoff: addUTC(base, { h: -p.keepHourly }).getTime(),
      id: (d) =>
        `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}`,
    },
  ];
  // Newest first; Kopia's tie-breaker is the end time, which a program driving it cannot tell apart:
  // keep the input order for equal start times.
  const sorted = snaps.map((s, i) => ({ s, i })).sort((a, b) => time(b.s) - time(a.s) || b.i - a.i);
  // Kopia keys every period in one map (a "latest" index and a year can collide only in theory).
  const ids = new Set<string>();
  const counters = new Map<string, number>();
  for (const [i, { s }] of sorted.entries()) {
    if (s.pins && s.pins.length > 0) kept.add(s.id);
    if (s.incomplete) continue;
    const d = new Date(time(s));
    for (const c of cases) {
      if (time(s) < c.cutoff) continue;
      const pid = c.id(d, i);
      if (ids.has(pid)) continue;
      if ((counters.get(c.type) ?? 0) < c.max) {
        ids.add(pid);
        counters.set(c.type, (counters.get(c.type) ?? 0) + 1);
        kept.add(s.id);
      }
    }
  }
  for (const [i, { s }] of sorted.entries()) {
    if (!s.incomplete) break;
    if (maxAny - time(s) < 4 * 3_600_000 || i < 3) kept.add(s.id);
    else break;
  }
  return kept;
}

/**
 * The existing snapshots of one source that a warm pass would cost: kept by Kopia's retention when the
 * cold snapshot is added alone, but deleted when the warm one is there too — after the cold snapshot
 * (warm + cold), or, after a crash between the passes, after the warm one alone. Empty: warming is free.
 *
 * @param existing the source's snapshots (stale warm ones excluded), with Kopia's startTime.
 * @param nowMs when the warm pass starts (ms since the epoch); the cold one is taken as 1 ms later.
 */
export function warmWouldExpire(
  existing: readonly RetentionInput[],
  policy: RetentionPolicy,
  nowMs: number,
): string[] {
  const at = (ms: number) => new Date(ms).toISOString();
  const warm: RetentionInput = { id: '\u0000warm', startTime: at(nowMs) };
  const cold: RetentionInput = { id: '\u0000cold', startTime: at(nowMs + 1) };
  const coldOnly = retainedIds([...existing, cold], policy);
  const both = retainedIds([...existing, warm, cold], policy);
  const warmOnly = retainedIds([...existing, warm], policy);
  return existing
    .filter((s) => coldOnly.has(s.id) && (!both.has(s.id) || !warmOnly.has(s.id)))
    .map((s) => s.id);
}
