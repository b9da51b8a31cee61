/**
 * A whole `kopi-docka backup` run, callable by the CLI, a daemon or a test: one function with a config
 * and adapters in, a run record out. The command only parses flags and prints.
 *
 * Order: run lock → staging of a killed run cleared → its journal replayed (containers it left stopped
 * started again) → backup_id → plan → pre-flight beside the run-wide reads (nothing is written or
 * stopped unless the repository is there and writable) → policies → units one at a time
 * (pipeline/backup.ts) → history → maintenance.
 */
import type { DockerClient } from '../adapters/docker.js';
import type { Kopia } from '../adapters/kopia.js';
import type { Config } from '../config/types.js';
import { nextBackupId } from '../core/backup-id.js';
import type { Logger } from '../core/log.js';
import type { Unit } from '../core/model.js';
import { selectUnits, type Plan } from '../core/plan.js';
import { UsageError, errorMessage } from '../errors.js';
import {
  clearStaging,
  ensureRunPolicies,
  measureSources,
  planFor,
  readLastBackupId,
  readRunPolicies,
  runBackup,
  writeLastBackupId,
  type BackupDeps,
  type RunShared,
} from './backup.js';
import { discoverUnits } from './discover.js';
import { appendRun, type RunRecord } from './history.js';
import { acquireLock } from './lock.js';
import { assertReady, decisiveChecks, runChecks, type CheckItem } from './preflight.js';
import { describeReplay, replayJournal } from './recover.js';
import { bySource, deleteWarm, listHistory, planWarm, staleWarmIds } from './warm.js';
import { isWarmTags } from '../core/warm.js';
import { tagsOf, type MaintenanceInfo, type SnapshotManifest } from '../adapters/kopia.js';
import { settledValue } from '../core/concurrency.js';
import { updateRecoveryBundleAfterRun } from './disaster-recovery.js';

export interface RunDeps {
  docker: DockerClient;
  kopia: Kopia;
  log: Logger;
  progress?: BackupDeps['progress'];
}

/** Units on the host and the ones asked for (all when `names` is empty). */
async function discoverSelected(
  cfg: Config,
  docker: DockerClient,
  names: string[],
  log: Logger,
): Promise<{ selected: Unit[]; all: Unit[]; dockerRootDir: string; unknown: string[] }> {
  const found = await discoverUnits(docker, { repositoryPath: cfg.kopia.repositoryPath });
  for (const w of found.warnings) log.warn(w);
  const { selected, unknown } = selectUnits(found.units, names);
  return { selected, all: found.units, dockerRootDir: found.dockerRootDir, unknown };
}

function refuseUnknown(unknown: string[], all: Unit[]): void {
  if (unknown.length === 0) return;
  throw new UsageError(
    `unknown unit${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}`,
    `known units: ${all.map((u) => u.name).join(', ') || '(none)'}`,
  );
}

/**
 * The plan `backup --dry-run` prints: the same planner and settings as the run, measured sizes, a
 * provisional backup_id, and the pre-flight verdicts the run would get (their exit code is the
 * dry-run's). Nothing is stopped or written (the writability probe file is removed at once).
 *
 * @throws UsageError for unknown unit names (exit 2); DockerError when Docker cannot be reached.
 */
export async function planBackupRun(
  cfg: Config,
  deps: { docker: DockerClient; kopia: Kopia; log: Logger },
  unitNames: string[],
): Promise<{ plan: Plan; preflight: CheckItem[] }> {
  const d = await discoverSelected(cfg, deps.docker, unitNames, deps.log);
  refuseUnknown(d.unknown, d.all);
  const plan = planFor(cfg, d.selected, nextBackupId(new Date()), d.dockerRootDir, d.all);
  await measureSources(plan);
  // The checks the run makes before stopping anything (read-only: status, a probe file, the lock).
  const preflight = decisiveChecks(await runChecks(cfg, deps.kopia), cfg);
  // The warm-pass decisions need the snapshot history (one `kopia snapshot list`; only when the
  // repository is usable, else they say so).
  const usable = preflight.every((c) => c.ok);
  const history = usable ? await listHistory(deps.kopia, deps.log) : undefined;
  planWarm(
    plan,
    history?.filter((m) => !isWarmTags(tagsOf(m))),
    Date.now(),
  );
  return { plan, preflight };
}

/** What startRun read for the whole run, and whether the units' policies are in place. */
export interface RunStart {
  /** Every snapshot of this identity, warm ones included; undefined when Kopia could not list (logged). */
  listed: SnapshotManifest[] | undefined;
  /** ensureRunPolicies worked: the units need not ensure their own. */
  policiesEnsured: boolean;
  /** The maintenance schedule (for the end of the run); undefined when it could not be read. */
  info: MaintenanceInfo | undefined;
}

/**
 * A logger that keeps what it is told until `release()` (dropped when never released). The reads run
 * beside the pre-flight: when it fails, its verdict alone is reported (as when it ran first), not the
 * reads' failures that the same cause explains.
 */
function heldLogger(log: Logger): { log: Logger; release(): void } {
  const held: (() => void)[] = [];
  return {
    log: {
      level: log.level,
      debug: (m) => held.push(() => log.debug(m)),
      info: (m) => held.push(() => log.info(m)),
      warn: (m) => held.push(() => log.warn(m)),
      error: (m) => held.push(() => log.error(m)),
    },
    release: () => held.splice(0).forEach((write) => write()),
  };
}

/**
 * The pre-flight and the reads every unit needs, at the same time — each kopia process spends most of
 * its ~0.3 s opening the repository, which the cores do side by side: the snapshot history (previous
 * sizes, warm-pass decisions, stale warm snapshots), the defined policies, the maintenance schedule
 * (used at the end) and the size walk of the sources. All of them are read-only. Only once the
 * pre-flight has passed is anything written: the units' policies, and the removal of warm snapshots a
 * crashed run left behind.
 *
 * @throws the pre-flight's verdict (assertReady: its exit code and hint) whatever the reads did —
 *   nothing has been written then.
 */
export async function startRun(
  deps: { kopia: Kopia; log: Logger },
  plan: Plan,
  signal: AbortSignal,
  preflight: () => Promise<CheckItem[]>,
): Promise<RunStart> {
  const { kopia, log } = deps;
  const reads = heldLogger(log);
  // allSettled: every promise is awaited (no rejection goes unhandled) and a failed read cannot hide
  // the pre-flight's verdict.
  const [checks, listed, defined, info, measured] = await Promise.allSettled([
    preflight(),
    listHistory(kopia, reads.log, signal),
    readRunPolicies(kopia, plan),
    kopia.maintenanceInfo({ signal }),
    measureSources(plan),
  ]);
  assertReady(settledValue(checks));
  reads.release();
  settledValue(measured);

  const policiesEnsured = await ensureRunPolicies(kopia, plan, log, defined);
  // Warm snapshots a crashed run left behind: never restore points, and they count in Kopia's
  // retention until removed. Removed before any new one is made (one kopia call).
  const stale = staleWarmIds(settledValue(listed) ?? []);
  if (stale.length > 0 && (await deleteWarm(kopia, stale, log))) {
    log.info(`removed ${stale.length} warm-pass snapshot(s) a previous run left behind`);
  }
  return {
    listed: settledValue(listed),
    policiesEnsured,
    info: info.status === 'fulfilled' ? info.value : undefined,
  };
}

/**
 * Run a backup of `unitNames` (all units when empty). `signal` aborts it: the running Kopia/tar calls
 * are stopped, containers this run stopped are started again, remaining units are skipped, and the
 * record says `interrupted`. The record is appended to the run history before maintenance.
 *
 * @returns the run record (per-unit status, downtime in s, bytes, snapshots, warnings).
 * @throws LockBusyError when another run holds the lock; UsageError for unknown units (before anything
 *   is stopped); DependencyError / RepositoryError from the pre-flight; DockerError.
 */
export async function runBackupJob(
  cfg: Config,
  deps: RunDeps,
  opts: { unitNames: string[]; signal: AbortSignal; updateRecovery?: boolean | undefined },
): Promise<RunRecord> {
  const { docker, kopia, log } = deps;
  let d = await discoverSelected(cfg, docker, opts.unitNames, log);
  refuseUnknown(d.unknown, d.all);
  const lock = await acquireLock(cfg.stateDir, 'backup');
  try {
    await clearStaging(cfg.stateDir);
    const replayed = await replayJournal(cfg.stateDir, docker, log);
    if (replayed) {
      log.warn(`a previous run died and left a journal: ${describeReplay(replayed)}`);
      // Discovery saw them stopped: planned from that, they would be neither stopped nor started
      // again, i.e. snapshotted while running. Look again now that they run.
      d = await discoverSelected(cfg, docker, opts.unitNames, log);
      if (d.unknown.length > 0) log.warn(`unit(s) gone since the run started: ${d.unknown.join(', ')}`);
    }
    const backupId = nextBackupId(new Date(), await readLastBackupId(cfg.stateDir));
    const plan = planFor(cfg, d.selected, backupId, d.dockerRootDir, d.all);
    const { signal } = opts;
    // Nothing is written or stopped unless every check `kopi-docka check` makes passes (the lock is
    // ours now); the run-wide reads are made at the same time.
    const { listed, policiesEnsured, info } = await startRun({ kopia, log }, plan, signal, async () =>
      decisiveChecks(await runChecks(cfg, kopia), cfg, { lock: false }),
    );
    await writeLastBackupId(cfg.stateDir, backupId);
    const history = listed?.filter((m) => !isWarmTags(tagsOf(m)));
    planWarm(plan, history, Date.now());
    log.info(`backup ${backupId}: ${plan.units.length} unit(s)`);

    const shared: RunShared = {
      history: history && bySource(history),
      policiesEnsured,
      warmIds: [],
      deferDelete: true,
    };
    let rec: RunRecord;
    try {
      rec = await runBackup(
        { stateDir: cfg.stateDir, kopia, log, docker, progress: deps.progress, shared },
        plan,
        d.selected,
        signal,
      );
    } catch (err) {
      await deleteWarm(kopia, shared.warmIds, log);
      throw err;
    }
    // Recorded before maintenance, which may take long: a signal during it loses nothing.
    await appendRun(cfg.backup.backupBasePath, rec).catch((err: unknown) =>
      log.warn(`could not record the run history: ${errorMessage(err)}`),
    );
    // Auto-maintenance is off on every call (it must not run while containers are down): run it
    // here, every container is up again. A signal stops it (Kopia's maintenance is resumable).
    // The warm snapshots go at the same time (the cold ones exist; one kopia call).
    const maintenance = async () => {
      if (rec.interrupted) return;
      await kopia.maintenanceRunIfDue({ signal, info }).catch((err: unknown) => {
        if (!signal.aborted) log.warn(`repository maintenance failed: ${errorMessage(err)}`);
      });
      if (signal.aborted) rec.interrupted = String(signal.reason);
    };
    await Promise.all([deleteWarm(kopia, shared.warmIds, log), maintenance()]);
    const calls = kopia.processes;
    if (calls.length > 0) {
      const total = calls.reduce((sum, c) => sum + c.ms, 0) / 1000;
      log.debug(`kopia: ${calls.length} process(es) opened the repository, ${total.toFixed(2)}s in all`);
    }
    // One disaster-recovery bundle per run (not per unit), when asked; never fails the run.
    if (!rec.interrupted) await updateRecoveryBundleAfterRun(cfg, kopia, log, opts.updateRecovery);
    return rec;
  } finally {
    await lock.release();
  }
}
