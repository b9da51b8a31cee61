/**
 * One backup run: units one at a time, each down only for its own snapshot window. Containers that this
 * run stopped are always started again (try/finally, and a journal for crashes); a failing unit is
 * recorded and the run moves on.
 */
import { randomUUID } from 'node:crypto';
import { readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type DefinedPolicy,
  type DesiredPolicy,
  type Kopia,
  type SnapshotManifest,
} from '../adapters/kopia.js';
import type { Logger } from '../core/log.js';
import type { Config } from '../config/types.js';
import type { Unit } from '../core/model.js';
import {
  buildPlan,
  shrinkWarning,
  type Plan,
  type PlannedSource,
  type SizeFacts,
  type UnitPlan,
} from '../core/plan.js';
import { formatBytes } from '../core/bytes.js';
import { retentionFlags } from '../core/retention.js';
import {
  escapeSegment,
  sourceId,
  tagsToRecord,
  unitPolicyRoots,
  type SnapshotType,
} from '../core/sources.js';
import { KopiDockaError, errorMessage } from '../errors.js';
import { run } from '../adapters/process.js';
import { VERSION } from '../version.js';
import { mapSettled, settledValue } from '../core/concurrency.js';
import {
  forceKilledWarning,
  runningAgain,
  startContainers,
  stopContainers,
  type ContainerControl,
  type StopOutcome,
  type StopRecord,
} from './containers.js';
import { snapshotSource, tarReasons, type DataSnapshot } from './data.js';
import { clearJournal, writeJournal } from './journal.js';
import { writeFileAtomic } from '../fsutil.js';
import type { RunRecord, UnitRecord } from './history.js';
import { prepareRecipeDir, stageProjectFiles, writeInspects, writeManifest } from './recipe.js';
import { RECIPE_MANIFEST_FORMAT } from '../core/recipe-manifest.js';
import { walkTree } from './walk.js';
import { bySource, deleteWarm, previousFacts, warmPass } from './warm.js';

export interface BackupDeps {
  /** kopi-docka's state directory (journal, staging). */
  stateDir: string;
  docker: ContainerControl & { imageDigests(imageId: string): Promise<string[]> };
  kopia: Kopia;
  log: Logger;
  /** Live per-source progress lines (a terminal display); plain log lines are written regardless. */
  progress?: { update(key: string, text: string): void; done(key: string): void } | undefined;
  /** What the whole run read or did once for every unit (run.ts); absent: each unit does it itself. */
  shared?: RunShared | undefined;
}

/** Done once per run instead of once per unit (each kopia process opens the repository anew). */
export interface RunShared {
  /** This identity's snapshots by Kopia source (pipeline/warm.ts listHistory), stale warm ones excluded. */
  history: Map<string, SnapshotManifest[]> | undefined;
  /** The unit policies of every planned unit were ensured by one batched call (ensureRunPolicies). */
  policiesEnsured: boolean;
  /** Warm snapshots made so far in the run: deleted by runBackup once the units are done. */
  warmIds: string[];
  /** The caller deletes `warmIds` itself (run.ts: concurrently with maintenance), not runBackup. */
  deferDelete?: boolean | undefined;
}

/**
 * The plan for `units`. `hostUnits` (default: `units`) are every unit on the host: other units'
 * containers that write to a planned unit's data, or share a namespace with one of its containers, are
 * stopped with it (see planUnit).
 */
export function planFor(
  cfg: Config,
  units: Unit[],
  backupId: string,
  dockerRootDir: string,
  hostUnits: Unit[] = units,
): Plan {
  return buildPlan(units, {
    hostUnits,
    backupId,
    host: cfg.kopia.hostname,
    user: cfg.kopia.username,
    volumeMode: cfg.backup.volumeMode,
    parallelWorkers: cfg.backup.parallelWorkers,
    excludePatterns: cfg.backup.excludePatterns,
    stopTimeout: cfg.backup.stopTimeout,
    dockerRootDir,
    repositoryPath: cfg.kopia.repositoryPath,
    run: {
      tarDeterministicMtime: cfg.backup.tarDeterministicMtime,
      taskTimeoutSec: cfg.backup.taskTimeout,
      stallTimeoutSec: cfg.backup.stallTimeout,
      startTimeoutSec: cfg.backup.startTimeout,
      retention: retentionFlags(cfg.retention),
      compression: cfg.kopia.compression,
      preBackupHook: cfg.backup.preBackupHook,
      postBackupHook: cfg.backup.postBackupHook,
      warmPass: cfg.backup.warmPass,
    },
  });
}

/**
 * Measure each data source (bytes and files) for the dry-run, the size_bytes tag and the "empty once
 * stopped" guard (see assertNotEmptiedByStop); unreadable stays undefined.
 */
export async function measureSources(plan: Plan): Promise<void> {
  for (const u of plan.units) {
    for (const s of u.sources) {
      const t = await walkTree(s.hostPath).catch(() => undefined);
      s.sizeBytes = t?.bytes;
      s.files = t?.files;
      // The plan says beforehand what the run will do (data.ts decides again with the containers down).
      const why = t && plan.volumeMode === 'direct' ? tarReasons(t) : [];
      if (why.length > 0) s.storedAsTarBecause = why;
    }
  }
}

/** A size lookup is a cheap read: it must not hold the run up for long. */
const PREVIOUS_LOOKUP_TIMEOUT_MS = 120_000;

/**
 * Refuses to snapshot a source that had files when measured (containers running) and is an empty
 * directory now that they are stopped: its data existed only while they ran — mounted for them (a
 * volume Docker mounts for its containers and unmounts after, an automount) or removed at their
 * shutdown — and an empty snapshot would pass for a backup.
 *
 * @throws KopiDockaError naming the source and what was measured, with a hint.
 */
export async function assertNotEmptiedByStop(s: PlannedSource): Promise<void> {
  if (s.files === undefined || s.files === 0) return;
  // Not a directory (a bound file) or unreadable: the snapshot itself will tell.
  const entries = await readdir(s.hostPath).catch(() => undefined);
  if (entries === undefined || entries.length > 0) return;
  throw new KopiDockaError(
    `${s.type} ${s.name}: ${s.hostPath} held ${s.files} file(s) (${formatBytes(s.sizeBytes ?? 0)}) while its containers ran and is empty now that they are stopped — its data exists only while they run (mounted for them, or removed at their shutdown), so it was not snapshotted`,
    {
      hint: 'back the data up where it really lives (the share or disk mounted for the containers), or keep it in a plain volume or bind mount; see docs/data-safety.md',
    },
  );
}

async function runHook(
  argv: string[] | undefined,
  type: 'pre-backup' | 'post-backup',
  unit: string,
  backupId: string,
  signal: AbortSignal,
): Promise<void> {
  if (!argv || argv.length === 0) return;
  const res = await run(argv, {
    env: { KOPI_DOCKA_HOOK_TYPE: type, KOPI_DOCKA_UNIT_NAME: unit, KOPI_DOCKA_BACKUP_ID: backupId },
    timeoutMs: 300_000,
    signal,
  });
  if (res.code !== 0) {
    const why = res.timedOut ? 'timed out after 300s' : `exited ${String(res.code ?? res.signal)}`;
    throw new KopiDockaError(`${type} hook ${argv[0] ?? ''} ${why}: ${res.stderrTail.trim()}`);
  }
}

/** The policies one unit needs: retention and compression on its roots, excludes on direct sources. */
function unitPolicyItems(plan: Plan, up: UnitPlan): { target: string; desired: DesiredPolicy }[] {
  const id = (p: string) => sourceId(plan.user, plan.host, p);
  const items: { target: string; desired: DesiredPolicy }[] = unitPolicyRoots(up.unit).map((root) => ({
    target: id(root),
    desired: { ...plan.run.retention, compression: plan.run.compression },
  }));
  // Kopia has no --ignore on snapshot create: excludes are an ignore policy on each direct source.
  if (plan.volumeMode === 'direct') {
    for (const s of up.sources)
      items.push({ target: id(s.kopiaPath), desired: { ignore: plan.excludePatterns } });
  }
  return items;
}

/** Policies first and before any stop: they cost Kopia round-trips, which must not add downtime. */
async function ensureUnitPolicies(deps: BackupDeps, plan: Plan, up: UnitPlan): Promise<void> {
  await deps.kopia.ensurePolicies(unitPolicyItems(plan, up));
}

/**
 * The read half of ensureRunPolicies: the policies defined in the repository (one `kopia policy list`),
 * or undefined when no unit needs one. Read-only, so a run makes it beside its pre-flight (run.ts).
 */
export async function readRunPolicies(kopia: Kopia, plan: Plan): Promise<DefinedPolicy[] | undefined> {
  const items = plan.units.flatMap((up) => unitPolicyItems(plan, up));
  return items.length === 0 ? undefined : kopia.policyList();
}

/**
 * Every planned unit's policies from the one `kopia policy list` readRunPolicies made (`defined`, maybe
 * a failure), with one `kopia policy set` per distinct change and (only when something was written)
 * one verifying `policy list` — instead of that per unit. The write half: run once the pre-flight has
 * passed and before any unit is stopped.
 *
 * @returns whether it worked; when not (logged), each unit ensures its own and fails on its own.
 */
export async function ensureRunPolicies(
  kopia: Kopia,
  plan: Plan,
  log: Logger,
  defined: PromiseSettledResult<DefinedPolicy[] | undefined>,
): Promise<boolean> {
  const items = plan.units.flatMap((up) => unitPolicyItems(plan, up));
  if (items.length === 0) return true;
  try {
    await kopia.ensurePolicies(items, {}, settledValue(defined));
    return true;
  } catch (err) {
    log.warn(
      `could not set the units' Kopia policies in one go (each unit tries again): ${errorMessage(err)}`,
    );
    return false;
  }
}

/** Where recipes are staged before their snapshot (one directory per unit, removed after it). */
export function stagingRoot(stateDir: string): string {
  return join(stateDir, 'staging');
}

/**
 * Remove what a killed run left staged (copies of .env files among it). Only under the run lock: a
 * running backup's staging must not be pulled from under it.
 */
export async function clearStaging(stateDir: string): Promise<void> {
  await rm(stagingRoot(stateDir), { recursive: true, force: true });
}

export interface UnitRunContext {
  deps: BackupDeps;
  plan: Plan;
  unit: Unit;
  up: UnitPlan;
  signal: AbortSignal;
  timestamp: string;
}

/** The unit's containers stopped, and the one way to bring them back. */
interface Down {
  outcome: StopOutcome;
  /**
   * Warn (log and `rec.warnings`) about stopped containers something else started meanwhile. Looked at
   * once, before anything is started; restart() does it when it has not been done. Never throws.
   */
  noteStartedElsewhere(): Promise<void>;
  /**
   * Start again exactly what was stopped (in the plan's start order), after noteStartedElsewhere, and
   * clear the unit's journal once all are back. Never throws; returns the containers that did not
   * come back (`<container>: <why>`).
   */
  restart(): Promise<string[]>;
  /** Seconds the unit was down (0.1 s resolution), once restarted; 0 when nothing was stopped. */
  downtimeSec(): number;
}

/**
 * Stop the unit's containers (journal first, so a crash leaves a way back) and return the handle that
 * starts them again: stop and restart are one construct, and every caller's `finally` calls restart.
 */
async function stopUnit(x: UnitRunContext, rec: UnitRecord): Promise<Down> {
  const { deps, plan, up } = x;
  const { docker, log, stateDir } = deps;
  if (up.stop.length > 0) {
    await writeJournal(stateDir, {
      pid: process.pid,
      backupId: plan.backupId,
      unit: up.unit,
      stoppedAt: new Date().toISOString(),
      containers: up.stop.map((s) => ({ id: s.id, name: s.container })),
    });
  }
  const downStart = Date.now();
  let downtimeSec = 0;
  const outcome = await stopContainers(docker, up.stop, log);
  for (const r of outcome.records) if (r.forceKilled) rec.warnings.push(forceKilledWarning(r));
  let noted: Promise<void> | undefined;
  const noteStartedElsewhere = () =>
    (noted ??= (async () => {
      // Docker never restarts a container stopped through the API, but a supervisor or a person may:
      // then the snapshot was taken while it ran.
      for (const s of await runningAgain(docker, outcome.stopped)) {
        const w = `${s.container}${s.otherUnit ? ` (unit ${s.otherUnit.unit})` : ''} was started again by something else while the data was being snapshotted (not by kopi-docka): the snapshot may not be consistent`;
        log.warn(`${up.unit}: ${w}`);
        rec.warnings.push(w);
      }
    })());
  return {
    outcome,
    downtimeSec: () => downtimeSec,
    noteStartedElsewhere,
    async restart() {
      await noteStartedElsewhere();
      const stoppedIds = new Set(outcome.stopped.map((s) => s.id));
      const problems = await startContainers(
        docker,
        up.start.filter((s) => stoppedIds.has(s.id)),
        { startTimeoutSec: plan.run.startTimeoutSec, log },
      ).catch((err: unknown) => [`starting: ${errorMessage(err)}`]);
      if (outcome.stopped.length > 0) downtimeSec = Math.round((Date.now() - downStart) / 100) / 10;
      // A journal stays while something we stopped is not back: `recover` retries it.
      if (problems.length === 0) await clearJournal(stateDir, up.unit);
      return problems;
    },
  };
}

/** Everything before the stop: hook, policies, previous sizes, the staged recipe files, the warm pass. */
interface Prepared {
  previous: Map<string, SizeFacts>;
  project: Awaited<ReturnType<typeof stageProjectFiles>>;
  containers: Awaited<ReturnType<typeof writeInspects>>;
  /** Warm snapshots made for this unit (deleted by the run, or by backupUnit without one). */
  warmIds: string[];
}

async function prepareUnit(x: UnitRunContext, recipeDir: string): Promise<Prepared> {
  const { deps, plan, up, unit, signal } = x;
  const { kopia, log, docker, shared } = deps;
  if (!shared?.policiesEnsured) await ensureUnitPolicies(deps, plan, up);
  // Without the run's one listing: this unit's snapshots (one `kopia snapshot list --tags=unit:U`).
  const history =
    shared?.history ??
    (up.sources.length === 0
      ? new Map<string, SnapshotManifest[]>()
      : await kopia
          .snapshotList({ tags: { unit: up.unit }, timeoutMs: PREVIOUS_LOOKUP_TIMEOUT_MS, signal })
          .then(bySource, (err: unknown) => {
            log.warn(`${up.unit}: cannot read the previous snapshot sizes to compare: ${errorMessage(err)}`);
            return new Map<string, SnapshotManifest[]>();
          }));
  const previous = previousFacts(plan, up, history);
  await prepareRecipeDir(recipeDir);
  const project = await stageProjectFiles(recipeDir, up);
  const digests = new Map<string, string[]>();
  for (const c of unit.containers) {
    if (!digests.has(c.imageId)) digests.set(c.imageId, await docker.imageDigests(c.imageId).catch(() => []));
  }
  const containers = await writeInspects(recipeDir, unit.containers, digests);
  // Last, right before the stop: the less time between the two passes, the less the cold one reads.
  const warm = await warmPass({ kopia, log, plan, up, tags: (s) => dataTags(x, s), signal });
  if (warm.ids.length > 0) {
    log.info(`${up.unit}: warm pass done in ${warm.seconds}s`);
    // The run deletes them all at its end, in one kopia call.
    shared?.warmIds.push(...warm.ids);
  }
  return { previous, project, containers, warmIds: warm.ids };
}

/** The unit's data sources snapshotted (while its containers are down); failures recorded in `rec`. */
async function snapshotData(
  x: UnitRunContext,
  rec: UnitRecord,
  recipeDir: string,
  previous: Map<string, SizeFacts>,
  fail: (msg: string) => void,
): Promise<DataSnapshot[]> {
  const { deps, plan, up, signal } = x;
  const { kopia, log } = deps;
  const snapshots: DataSnapshot[] = [];
  const results = await mapSettled(up.sources, plan.parallelWorkers, async (s) => {
    log.info(`${up.unit}: snapshotting ${s.type} ${s.name}`);
    await assertNotEmptiedByStop(s);
    return snapshotSource(s, {
      kopia,
      mode: plan.volumeMode,
      excludePatterns: plan.excludePatterns,
      tarDeterministicMtime: plan.run.tarDeterministicMtime,
      sourceId: (p) => sourceId(plan.user, plan.host, p),
      tags: (src) => dataTags(x, src),
      recipeDir,
      timeoutMs: plan.run.taskTimeoutSec * 1000,
      stallTimeoutMs: plan.run.stallTimeoutSec * 1000,
      signal,
      onProgress: deps.progress
        ? (src, line) => deps.progress?.update(`${up.unit} ${src.name}`, line)
        : undefined,
    }).finally(() => deps.progress?.done(`${up.unit} ${s.name}`));
  });
  for (const [i, r] of results.entries()) {
    if (r.status === 'fulfilled') {
      snapshots.push(r.value);
      rec.snapshots.push({ type: r.value.type, name: r.value.name, id: r.value.snapshotId });
      rec.bytes += r.value.sizeBytes;
      const shrank = shrinkWarning(`${r.value.type} ${r.value.name}`, previous.get(r.value.key), {
        sizeBytes: r.value.sizeBytes,
        files: r.value.files,
        format: r.value.format,
      });
      if (shrank !== undefined) {
        log.warn(`${up.unit}: ${shrank}`);
        rec.warnings.push(shrank);
      }
    } else {
      // The hint says what to do (e.g. free space on the repository's filesystem): keep it.
      const hint = r.reason instanceof KopiDockaError && r.reason.hint ? ` (${r.reason.hint})` : '';
      fail(
        `${up.sources[i]?.type ?? 'source'} ${up.sources[i]?.name ?? ''}: ${errorMessage(r.reason)}${hint}`,
      );
    }
  }
  return snapshots;
}

/** The tags every snapshot of the unit in this run carries. */
function baseTagFields(x: UnitRunContext, type: SnapshotType) {
  return { unit: x.up.unit, backup_id: x.plan.backupId, type, timestamp: x.timestamp, host: x.plan.host };
}

function baseTags(x: UnitRunContext, type: SnapshotType): Record<string, string> {
  return tagsToRecord(baseTagFields(x, type));
}

function dataTags(x: UnitRunContext, s: PlannedSource): Record<string, string> {
  return tagsToRecord({
    ...baseTagFields(x, s.type),
    ...(s.type === 'volume' ? { volume: s.name } : { bind_source: s.hostPath }),
    ...(s.sizeBytes === undefined ? {} : { size_bytes: String(s.sizeBytes) }),
    format: x.plan.volumeMode === 'tar' ? 'tar' : 'dir',
  });
}

/** The manifest written, then the recipe snapshot that makes the restore point complete. */
async function snapshotRecipe(
  x: UnitRunContext,
  rec: UnitRecord,
  recipeDir: string,
  prepared: Prepared,
  snapshots: DataSnapshot[],
  stops: StopRecord[],
): Promise<void> {
  const { deps, plan, up, signal } = x;
  for (const s of snapshots) {
    if (s.sidecar) for (const n of s.sidecar.notes) rec.warnings.push(`${s.name}: ${n}`);
    for (const n of s.notes ?? []) rec.warnings.push(`${s.name}: ${n}`);
  }
  const forceKilled = stops.filter((r) => r.forceKilled);
  await writeManifest(recipeDir, {
    format: RECIPE_MANIFEST_FORMAT,
    tool: { name: 'kopi-docka', version: VERSION },
    unit: up.unit,
    kind: up.kind,
    backupId: plan.backupId,
    host: plan.host,
    user: plan.user,
    createdAt: x.timestamp,
    volumeMode: plan.volumeMode,
    compose: {
      workingDir: up.recipe.workingDir,
      configFiles: up.recipe.composeFiles,
      files: prepared.project.files,
      missing: up.recipe.missingFiles,
      referencedFiles: up.recipe.referencedFiles,
      environmentFiles: up.recipe.environmentFiles,
    },
    containers: prepared.containers,
    snapshots,
    coverage: [...up.coverage, ...prepared.project.skipped],
    warnings: rec.warnings,
    stops,
    forceKilled: forceKilled.map((r) => r.container),
    volumes: up.sources
      .filter((s) => s.type === 'volume' && (s.anonymous === true || s.device !== undefined))
      .map((s) => ({
        name: s.name,
        anonymous: s.anonymous === true,
        ...(s.device === undefined ? {} : { device: s.device }),
        usedBy: s.usedBy,
      })),
    uncaptured: up.uncaptured,
  });
  const recipe = await deps.kopia.snapshotCreate(recipeDir, {
    source: sourceId(plan.user, plan.host, up.recipe.kopiaPath),
    // The count lets `restore --list` judge completeness without reading every manifest.
    tags: {
      ...baseTags(x, 'recipe'),
      data_snapshots: String(snapshots.length),
      // Seen in `snapshot list` without reading the manifest: the data was not shut down cleanly.
      ...(forceKilled.length > 0 ? { force_killed: forceKilled.map((r) => r.container).join(',') } : {}),
    },
    timeoutMs: plan.run.taskTimeoutSec * 1000,
    stallTimeoutMs: plan.run.stallTimeoutSec * 1000,
    signal,
  });
  if (recipe.incomplete) throw new KopiDockaError(`recipe snapshot is incomplete (${recipe.incomplete})`);
  rec.snapshots.push({ type: 'recipe', name: up.unit, id: recipe.id });
}

/**
 * Start the unit's containers again and, when `recipe` is given, take the recipe snapshot at the same
 * time. That snapshot reads only the staged recipe directory, never the unit's data, so it needs no
 * downtime — and beside the restart, the run no longer waits for one more kopia process (a repository
 * open) after it. The restart neither waits for the recipe nor is cancelled by it: a recipe failure
 * comes back as a result once the containers have been started; only the run's signal aborts the
 * recipe's kopia call.
 */
async function restartWithRecipe(
  down: Down,
  recipe: (() => Promise<void>) | undefined,
): Promise<{ startProblems: string[]; recipe: PromiseSettledResult<void> | undefined }> {
  if (recipe === undefined) return { startProblems: await down.restart(), recipe: undefined };
  // The manifest lists the containers something else started while the data was snapshotted: look
  // before it is written (a few inspects), as when the recipe came after the restart.
  await down.noteStartedElsewhere();
  const [started, taken] = await Promise.allSettled([down.restart(), recipe()]);
  return {
    // restart() never throws; were it to, whether the containers are back is unknown: a start problem.
    startProblems:
      started.status === 'fulfilled' ? started.value : [`starting: ${errorMessage(started.reason)}`],
    recipe: taken,
  };
}

/**
 * One unit: prepare (hook, policies, recipe files) → stop → snapshot the data → start again (always),
 * with the recipe snapshot alongside → post hook. Never throws: what went wrong is in the record
 * (status `failed`).
 */
export async function backupUnit(x: UnitRunContext): Promise<UnitRecord> {
  const { deps, plan, up, signal } = x;
  const rec: UnitRecord = {
    unit: up.unit,
    status: 'ok',
    downtimeSec: 0,
    bytes: 0,
    snapshots: [],
    warnings: [...up.warnings],
  };
  const fail = (msg: string) => {
    rec.status = 'failed';
    rec.error = rec.error ? `${rec.error}; ${msg}` : msg;
  };
  // Data the unit uses that a cold backup cannot read: the rest is backed up, the unit never says ok.
  for (const u of up.uncaptured) fail(`${u.message} (${u.hint})`);

  try {
    await runHook(plan.run.preBackupHook, 'pre-backup', up.unit, plan.backupId, signal);
  } catch (err) {
    fail(`skipped before stopping anything: ${errorMessage(err)}`);
    return rec;
  }

  const recipeDir = join(stagingRoot(deps.stateDir), escapeSegment(up.unit));
  let prepared: Prepared | undefined;
  try {
    prepared = await prepareUnit(x, recipeDir);
    if (signal.aborted) {
      fail(`interrupted by ${String(signal.reason)} before anything was stopped`);
      return rec;
    }
    const down = await stopUnit(x, rec);
    const ready = prepared;
    // The recipe snapshot to take beside the restart: set only once every data source is snapshotted.
    let recipe: (() => Promise<void>) | undefined;
    let after: Awaited<ReturnType<typeof restartWithRecipe>>;
    try {
      if (down.outcome.error) throw down.outcome.error;
      const snapshots = await snapshotData(x, rec, recipeDir, prepared.previous, fail);
      // No recipe after a signal (what was snapshotted before it is not a restore point), nor when a
      // source failed (the restore point stays incomplete, so it is never mistaken for a good one).
      // The manifest needs only the data snapshots and the stop records: both are known now.
      if (!signal.aborted && !(rec.status === 'failed' && snapshots.length < up.sources.length)) {
        recipe = () => snapshotRecipe(x, rec, recipeDir, ready, snapshots, down.outcome.records);
      }
    } finally {
      after = await restartWithRecipe(down, recipe);
      rec.downtimeSec = down.downtimeSec();
    }
    for (const p of after.startProblems) fail(`not back in service after the backup: ${p}`);
    if (signal.aborted) {
      // No complete restore point: a recipe snapshot still running was aborted by the same signal.
      const back = down.outcome.stopped.length > 0 && after.startProblems.length === 0;
      fail(`interrupted by ${String(signal.reason)}${back ? '; its containers were started again' : ''}`);
      return rec;
    }
    // No recipe was taken (a data source failed, see above).
    if (after.recipe === undefined) return rec;
    // A failed recipe snapshot fails the unit (below), now that its containers are started again.
    settledValue(after.recipe);
    await runHook(plan.run.postBackupHook, 'post-backup', up.unit, plan.backupId, signal).catch(
      (err: unknown) => fail(errorMessage(err)),
    );
  } catch (err) {
    fail(errorMessage(err));
  } finally {
    // The staged recipe holds copies of .env files: keep them only inside the repository.
    await rm(recipeDir, { recursive: true, force: true });
    // Without a run around it (deps.shared), the unit removes its own warm snapshots.
    if (!deps.shared && prepared) await deleteWarm(deps.kopia, prepared.warmIds, deps.log);
  }
  return rec;
}

/** The last backup_id handed out on this host (kept in the state dir so ids never repeat). */
export async function readLastBackupId(stateDir: string): Promise<string | undefined> {
  try {
    return (await readFile(join(stateDir, 'last-backup-id'), 'utf8')).trim() || undefined;
  } catch {
    return undefined;
  }
}

export async function writeLastBackupId(stateDir: string, id: string): Promise<void> {
  await writeFileAtomic(join(stateDir, 'last-backup-id'), `${id}\n`);
}

export async function runBackup(
  deps: BackupDeps,
  plan: Plan,
  units: Unit[],
  signal: AbortSignal,
): Promise<RunRecord> {
  const startedAt = new Date().toISOString();
  const byName = new Map(units.map((u) => [u.name, u]));
  const rec: RunRecord = {
    runId: randomUUID(),
    backupId: plan.backupId,
    host: plan.host,
    startedAt,
    finishedAt: startedAt,
    dryRun: false,
    units: [],
  };
  try {
    for (const up of plan.units) {
      const unit = byName.get(up.unit);
      if (!unit) continue;
      if (signal.aborted) {
        rec.units.push({
          unit: up.unit,
          status: 'skipped',
          error: 'run interrupted',
          downtimeSec: 0,
          bytes: 0,
          snapshots: [],
          warnings: [],
        });
        continue;
      }
      deps.log.info(
        `unit ${up.unit}: ${up.stop.length} container(s) to stop, ${up.sources.length} data source(s)`,
      );
      const r = await backupUnit({ deps, plan, unit, up, signal, timestamp: new Date().toISOString() });
      rec.units.push(r);
      if (r.status === 'failed') deps.log.error(`unit ${up.unit} failed: ${r.error ?? ''}`);
      else deps.log.info(`unit ${up.unit} done (down ${r.downtimeSec}s)`);
    }
  } finally {
    // The cold snapshots exist (or failed): the warm ones served their purpose. One kopia call.
    if (deps.shared && !deps.shared.deferDelete) {
      await deleteWarm(deps.kopia, deps.shared.warmIds, deps.log);
      deps.shared.warmIds = [];
    }
  }
  rec.finishedAt = new Date().toISOString();
  if (signal.aborted && !rec.interrupted) rec.interrupted = String(signal.reason);
  return rec;
}
