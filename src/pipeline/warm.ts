/**
 * The warm pass (core/warm.ts) and the run-wide snapshot history it and the size guard read.
 *
 * Kopia calls, all made while every container runs:
 *  - `kopia snapshot list --json` once per run (listHistory): previous sizes of every unit's sources,
 *    the warm-pass decisions and the stale warm snapshots a crashed run left, from one repository open
 *    instead of one per unit;
 *  - per warmed source one `kopia snapshot create <dir> --override-source=<source> --tags=pass:warm …`
 *    (direct) or `tar … | kopia snapshot create --stdin-file=<name> …` (tar), under the SAME source as
 *    the cold snapshot, so Kopia's file cache makes that one incremental;
 *  - one `kopia snapshot delete --delete <id>…` for all warm snapshots of the run (and, at its start,
 *    one for the stale ones).
 */
import { stat } from 'node:fs/promises';
import { KopiaError, normalizeSource, tagsOf, type Kopia, type SnapshotManifest } from '../adapters/kopia.js';
import type { Logger } from '../core/log.js';
import type { Plan, PlannedSource, SizeFacts, UnitPlan } from '../core/plan.js';
import { sourceId } from '../core/sources.js';
import {
  WARM_TAG_KEY,
  WARM_TAG_VALUE,
  decideWarm,
  isWarmTags,
  warmWouldExpire,
  type WarmPassMode,
} from '../core/warm.js';
import { errorMessage } from '../errors.js';
import { mapSettled } from '../core/concurrency.js';
import { streamNameFor, tarArgv } from './data.js';

/** A listing is a cheap read: it must not hold the run up for long. */
const LIST_TIMEOUT_MS = 120_000;
/** Deleting a few manifests is quick; bounded so a stuck repository cannot hang the end of a run. */
const DELETE_TIMEOUT_MS = 120_000;

/**
 * Every snapshot of this client's identity (`kopia snapshot list --json`, filtered to user@host),
 * incomplete and warm ones included. Undefined when Kopia cannot list (logged): the run then falls
 * back to no warm pass and per-unit lookups.
 */
export async function listHistory(
  kopia: Kopia,
  log: Logger,
  signal?: AbortSignal,
): Promise<SnapshotManifest[] | undefined> {
  try {
    return await kopia.snapshotList({ timeoutMs: LIST_TIMEOUT_MS, ...(signal ? { signal } : {}) });
  } catch (err) {
    log.warn(`cannot list the repository's snapshots (no warm pass this run): ${errorMessage(err)}`);
    return undefined;
  }
}

const sourceKey = (m: SnapshotManifest) => `${m.source.userName}@${m.source.host}:${m.source.path}`;

/** The snapshots of each Kopia source (`user@host:/path`, normalized), in list order. */
export function bySource(history: readonly SnapshotManifest[]): Map<string, SnapshotManifest[]> {
  const out = new Map<string, SnapshotManifest[]>();
  for (const m of history) {
    const k = normalizeSource(sourceKey(m));
    const list = out.get(k) ?? [];
    list.push(m);
    out.set(k, list);
  }
  return out;
}

/** Warm snapshots in the history (left by a run that crashed between the passes): their IDs. */
export function staleWarmIds(history: readonly SnapshotManifest[]): string[] {
  return history.filter((m) => isWarmTags(tagsOf(m))).map((m) => m.id);
}

/**
 * The size facts of each source's latest complete cold snapshot from another restore point, by source
 * key (the shrink guard and the warm decision read them). A source never snapshotted has no entry.
 */
export function previousFacts(
  plan: Plan,
  up: UnitPlan,
  sources: Map<string, SnapshotManifest[]>,
): Map<string, SizeFacts> {
  const out = new Map<string, SizeFacts>();
  for (const s of up.sources) {
    let best: { at: number; facts: SizeFacts } | undefined;
    for (const m of sources.get(normalizeSource(sourceId(plan.user, plan.host, s.kopiaPath))) ?? []) {
      const tags = tagsOf(m);
      if (m.incomplete || isWarmTags(tags) || tags.backup_id === plan.backupId) continue;
      if (tags.unit !== up.unit) continue;
      const at = Date.parse(m.startTime);
      if (best && !(at > best.at)) continue;
      best = {
        at,
        facts: {
          sizeBytes: m.rootEntry.summ?.size ?? m.rootEntry.size ?? 0,
          files: m.rootEntry.summ?.files ?? 0,
          format: tags.format === 'tar' ? 'tar' : 'dir',
          backupId: tags.backup_id,
        },
      };
    }
    if (best) out.set(s.key, best.facts);
  }
  return out;
}

/** How the cold pass stores a source: a tar stream in tar mode or when direct mode cannot keep it. */
export function formatOf(plan: Plan, s: PlannedSource): 'dir' | 'tar' {
  return plan.volumeMode === 'tar' || (s.storedAsTarBecause?.length ?? 0) > 0 ? 'tar' : 'dir';
}

/**
 * Decide the warm pass of every planned source (PlannedSource.warm), from the measured sizes
 * (measureSources first), the run's history and `plan.run.warmPass`. Without a history (Kopia could not
 * list) nothing is warmed: the retention check needs it.
 */
export function planWarm(plan: Plan, history: readonly SnapshotManifest[] | undefined, nowMs: number): void {
  const mode: WarmPassMode = plan.run.warmPass ?? 'never';
  const sources = bySource((history ?? []).filter((m) => !isWarmTags(tagsOf(m))));
  for (const up of plan.units) {
    const prev = previousFacts(plan, up, sources);
    for (const s of up.sources) {
      if (up.stop.length === 0) {
        // Nothing is stopped: the one snapshot is taken with the containers as they are anyway.
        s.warm = { warm: false, why: 'nothing is stopped for this unit' };
        continue;
      }
      if (history === undefined && mode !== 'never') {
        s.warm = { warm: false, why: 'the snapshot history could not be read' };
        continue;
      }
      const format = formatOf(plan, s);
      const p = prev.get(s.key);
      const existing = sources.get(normalizeSource(sourceId(plan.user, plan.host, s.kopiaPath))) ?? [];
      s.warm = decideWarm(mode, {
        sizeBytes: s.sizeBytes,
        files: s.files,
        format,
        previous: p && p.format === format ? p : undefined,
        wouldExpire: warmWouldExpire(existing, plan.run.retention, nowMs).length,
      });
    }
  }
}

/**
 * Delete warm snapshots (one `kopia snapshot delete --delete` for all). Never throws: a warm snapshot
 * left behind is removed by the next run, and restore points never include it.
 *
 * @returns whether they are gone.
 */
export async function deleteWarm(kopia: Kopia, ids: readonly string[], log: Logger): Promise<boolean> {
  if (ids.length === 0) return true;
  try {
    // No signal: a Ctrl-C during the run must not leave them behind; the timeout bounds it.
    await kopia.snapshotDeleteMany(ids, { timeoutMs: DELETE_TIMEOUT_MS });
    log.debug(`removed ${ids.length} warm snapshot(s)`);
    return true;
  } catch (err) {
    log.warn(
      `could not remove ${ids.length} warm-pass snapshot(s) (the next backup removes them; they are never restore points): ${errorMessage(err)}`,
    );
    return false;
  }
}

export interface WarmContext {
  kopia: Kopia;
  log: Logger;
  plan: Plan;
  up: UnitPlan;
  /** The tags of the source's cold snapshot (the warm one adds `pass:warm`). */
  tags: (s: PlannedSource) => Record<string, string>;
  signal: AbortSignal;
}

/**
 * One warm snapshot of `s`, while its containers run. Read errors (files that vanish or change while
 * the app writes) are expected: Kopia records them in the manifest (`summ.numFailed`) and exits 1, and
 * the manifest is kept anyway — every file it did read makes the cold pass faster; a file it did not
 * is simply read by the cold pass. A tar that complains about changing files likewise.
 *
 * @returns the warm snapshot's manifest ID, or undefined when Kopia saved none.
 * @throws only when Kopia could not run at all (the caller logs it; the cold pass goes on).
 */
export async function warmSnapshot(s: PlannedSource, x: WarmContext): Promise<string | undefined> {
  const { kopia, plan, signal } = x;
  const source = sourceId(plan.user, plan.host, s.kopiaPath);
  const tags = { ...x.tags(s), [WARM_TAG_KEY]: WARM_TAG_VALUE };
  const limits = {
    timeoutMs: plan.run.taskTimeoutSec * 1000,
    stallTimeoutMs: plan.run.stallTimeoutSec * 1000,
    signal,
  };
  if (formatOf(plan, s) === 'dir') {
    try {
      return (await kopia.snapshotCreate(s.hostPath, { source, tags, ...limits })).id;
    } catch (err) {
      if (err instanceof KopiaError && err.manifest) return err.manifest.id;
      throw err;
    }
  }
  const isFile = !(await stat(s.hostPath)).isDirectory();
  const res = await kopia.snapshotCreateFromStream(
    tarArgv(s.hostPath, isFile, plan.excludePatterns, plan.run.tarDeterministicMtime),
    streamNameFor(s),
    { source, tags: { ...tags, format: 'tar' }, ...limits },
  );
  try {
    return kopia.parseSnapshotCreateOutput(res.kopia).id;
  } catch (err) {
    if (err instanceof KopiaError && err.manifest) return err.manifest.id;
    throw err;
  }
}

/**
 * The warm pass of one unit: every source planned warm, `plan.parallelWorkers` at a time. Never throws
 * and never fails the unit: a source whose warm pass fails is just read whole by the cold pass.
 *
 * @returns the IDs of the warm snapshots made (to delete once the cold ones exist), and the seconds it
 *   took.
 */
export async function warmPass(x: WarmContext): Promise<{ ids: string[]; seconds: number }> {
  const todo = x.up.sources.filter((s) => s.warm?.warm === true);
  if (todo.length === 0) return { ids: [], seconds: 0 };
  const started = Date.now();
  x.log.info(`${x.up.unit}: warm pass of ${todo.length} source(s) while the containers run`);
  const results = await mapSettled(todo, x.plan.parallelWorkers, (s) => warmSnapshot(s, x));
  const ids: string[] = [];
  for (const [i, r] of results.entries()) {
    if (r.status === 'fulfilled') {
      if (r.value !== undefined) ids.push(r.value);
    } else if (!x.signal.aborted) {
      const s = todo[i];
      x.log.warn(
        `${x.up.unit}: warm pass of ${s?.type ?? 'source'} ${s?.name ?? ''} failed (the cold snapshot reads it whole): ${errorMessage(r.reason)}`,
      );
    }
  }
  return { ids, seconds: Math.round((Date.now() - started) / 100) / 10 };
}
