/**
 * One backup run: units one at a time, each down only for its own snapshot window. Containers that this
 * run stopped are always started again (try/finally, and a journal for crashes); a failing unit is
 * recorded and the run moves on.
 */
import { randomUUID } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { DesiredPolicy, Kopia } from '../adapters/kopia.js';
import type { Logger } from '../cli/logger.js';
import type { Config } from '../config/types.js';
import type { Unit } from '../core/model.js';
import { buildPlan, type Plan, type PlannedSource, type UnitPlan } from '../core/plan.js';
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
import { mapSettled } from '../core/concurrency.js';
import { startContainers, stopContainers, type ContainerControl } from './containers.js';
import { snapshotSource, type DataSnapshot } from './data.js';
import { clearJournal, writeJournal } from './journal.js';
import { writeFileAtomic } from '../fsutil.js';
import type { RunRecord, UnitRecord } from './history.js';
import { prepareRecipeDir, stageProjectFiles, writeInspects, writeManifest } from './recipe.js';
import { walkTree } from './walk.js';

export interface BackupDeps {
  cfg: Config;
  docker: ContainerControl & { imageDigests(imageId: string): Promise<string[]> };
  kopia: Kopia;
  log: Logger;
  /** Live per-source progress lines (a terminal display); plain log lines are written regardless. */
  progress?: { update(key: string, text: string): void; done(key: string): void } | undefined;
}

export function planFor(cfg: Config, units: Unit[], backupId: string, dockerRootDir: string): Plan {
  return buildPlan(units, {
    backupId,
    host: cfg.kopia.hostname,
    user: cfg.kopia.username,
    volumeMode: cfg.backup.volumeMode,
    parallelWorkers: cfg.backup.parallelWorkers,
    excludePatterns: cfg.backup.excludePatterns,
    stopTimeout: cfg.backup.stopTimeout,
    dockerRootDir,
    repositoryPath: cfg.kopia.repositoryPath,
  });
}

/** Measure each data source (bytes) for the dry-run and the size_bytes tag; unreadable stays undefined. */
export async function measureSources(plan: Plan): Promise<void> {
  for (const u of plan.units) {
    for (const s of u.sources) {
      s.sizeBytes = await walkTree(s.hostPath).then(
        (t) => t.bytes,
        () => undefined,
      );
    }
  }
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

/** Policies first and before any stop: they cost Kopia round-trips, which must not add downtime. */
async function ensureUnitPolicies(deps: BackupDeps, up: UnitPlan): Promise<void> {
  const { cfg, kopia } = deps;
  const id = (p: string) => sourceId(cfg.kopia.username, cfg.kopia.hostname, p);
  const retention = retentionFlags(cfg.retention);
  const items: { target: string; desired: DesiredPolicy }[] = unitPolicyRoots(up.unit).map((root) => ({
    target: id(root),
    desired: { ...retention, compression: cfg.kopia.compression },
  }));
  // Kopia has no --ignore on snapshot create: excludes are an ignore policy on each direct source.
  if (cfg.backup.volumeMode === 'direct') {
    for (const s of up.sources)
      items.push({ target: id(s.kopiaPath), desired: { ignore: cfg.backup.excludePatterns } });
  }
  await kopia.ensurePolicies(items);
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

export async function backupUnit(x: UnitRunContext): Promise<UnitRecord> {
  const { deps, plan, up, unit, signal } = x;
  const { cfg, kopia, log, docker } = deps;
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
  const source = (p: string) => sourceId(cfg.kopia.username, cfg.kopia.hostname, p);
  const baseTags = (type: SnapshotType) => ({
    unit: up.unit,
    backup_id: plan.backupId,
    type,
    timestamp: x.timestamp,
    host: cfg.kopia.hostname,
  });
  const tagsFor = (s: PlannedSource) =>
    tagsToRecord({
      ...baseTags(s.type),
      type: s.type,
      ...(s.type === 'volume' ? { volume: s.name } : { bind_source: s.hostPath }),
      ...(s.sizeBytes === undefined ? {} : { size_bytes: String(s.sizeBytes) }),
      format: cfg.backup.volumeMode === 'tar' ? 'tar' : 'dir',
    });

  try {
    await runHook(cfg.backup.preBackupHook, 'pre-backup', up.unit, plan.backupId, signal);
  } catch (err) {
    fail(`skipped before stopping anything: ${errorMessage(err)}`);
    return rec;
  }

  const recipeDir = join(stagingRoot(cfg.stateDir), escapeSegment(up.unit));
  const snapshots: DataSnapshot[] = [];
  try {
    await ensureUnitPolicies(deps, up);
    await prepareRecipeDir(recipeDir);
    const project = await stageProjectFiles(recipeDir, up);
    const digests = new Map<string, string[]>();
    for (const c of unit.containers) {
      if (!digests.has(c.imageId))
        digests.set(c.imageId, await docker.imageDigests(c.imageId).catch(() => []));
    }
    const containers = await writeInspects(recipeDir, unit.containers, digests);

    if (signal.aborted) {
      fail(`interrupted by ${String(signal.reason)} before anything was stopped`);
      return rec;
    }
    if (up.stop.length > 0) {
      await writeJournal(cfg.stateDir, {
        pid: process.pid,
        backupId: plan.backupId,
        unit: up.unit,
        stoppedAt: new Date().toISOString(),
        containers: up.stop.map((s) => ({ id: s.id, name: s.container })),
      });
    }
    const downStart = Date.now();
    const stopped = await stopContainers(docker, up.stop, log);
    let startProblems: string[] = [];
    try {
      if (stopped.error) throw stopped.error;
      const results = await mapSettled(up.sources, cfg.backup.parallelWorkers, (s) => {
        log.info(`${up.unit}: snapshotting ${s.type} ${s.name}`);
        return snapshotSource(s, {
          kopia,
          mode: cfg.backup.volumeMode,
          excludePatterns: cfg.backup.excludePatterns,
          tarDeterministicMtime: cfg.backup.tarDeterministicMtime,
          sourceId: source,
          tags: tagsFor,
          recipeDir,
          timeoutMs: cfg.backup.taskTimeout * 1000,
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
        } else {
          // The hint says what to do (e.g. free space on the repository's filesystem): keep it.
          const hint = r.reason instanceof KopiDockaError && r.reason.hint ? ` (${r.reason.hint})` : '';
          fail(
            `${up.sources[i]?.type ?? 'source'} ${up.sources[i]?.name ?? ''}: ${errorMessage(r.reason)}${hint}`,
          );
        }
      }
    } finally {
      const stoppedIds = new Set(stopped.stopped.map((s) => s.id));
      startProblems = await startContainers(
        docker,
        up.start.filter((s) => stoppedIds.has(s.id)),
        { startTimeoutSec: cfg.backup.startTimeout, log },
      );
      if (stopped.stopped.length > 0) rec.downtimeSec = Math.round((Date.now() - downStart) / 100) / 10;
      // A journal stays while something we stopped is not back: `recover` retries it.
      if (startProblems.length === 0) await clearJournal(cfg.stateDir, up.unit);
    }
    for (const p of startProblems) fail(`not back in service after the backup: ${p}`);
    if (signal.aborted) {
      // No recipe: what was snapshotted before the signal is not a restore point.
      const back = stopped.stopped.length > 0 && startProblems.length === 0;
      fail(`interrupted by ${String(signal.reason)}${back ? '; its containers were started again' : ''}`);
      return rec;
    }
    if (rec.status === 'failed' && snapshots.length < up.sources.length) {
      // No recipe: the restore point stays incomplete, so it is never mistaken for a good one.
      return rec;
    }

    for (const s of snapshots) {
      if (s.sidecar) for (const n of s.sidecar.notes) rec.warnings.push(`${s.name}: ${n}`);
      for (const n of s.notes ?? []) rec.warnings.push(`${s.name}: ${n}`);
    }
    await writeManifest(recipeDir, {
      format: 1,
      tool: { name: 'kopi-docka', version: VERSION },
      unit: up.unit,
      kind: up.kind,
      backupId: plan.backupId,
      host: cfg.kopia.hostname,
      user: cfg.kopia.username,
      createdAt: x.timestamp,
      volumeMode: cfg.backup.volumeMode,
      compose: {
        workingDir: up.recipe.workingDir,
        configFiles: up.recipe.composeFiles,
        files: project.files,
        missing: up.recipe.missingFiles,
        referencedFiles: up.recipe.referencedFiles,
        environmentFiles: up.recipe.environmentFiles,
      },
      containers,
      snapshots,
      coverage: [...up.coverage, ...project.skipped],
      warnings: rec.warnings,
    });
    const recipe = await kopia.snapshotCreate(recipeDir, {
      source: source(up.recipe.kopiaPath),
      // The count lets `restore --list` judge completeness without reading every manifest.
      tags: { ...tagsToRecord(baseTags('recipe')), data_snapshots: String(snapshots.length) },
      timeoutMs: cfg.backup.taskTimeout * 1000,
      signal,
    });
    if (recipe.incomplete) throw new KopiDockaError(`recipe snapshot is incomplete (${recipe.incomplete})`);
    rec.snapshots.push({ type: 'recipe', name: up.unit, id: recipe.id });
    await runHook(cfg.backup.postBackupHook, 'post-backup', up.unit, plan.backupId, signal).catch(
      (err: unknown) => fail(errorMessage(err)),
    );
  } catch (err) {
    fail(errorMessage(err));
  } finally {
    // The staged recipe holds copies of .env files: keep them only inside the repository.
    await rm(recipeDir, { recursive: true, force: true });
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
  rec.finishedAt = new Date().toISOString();
  if (signal.aborted && !rec.interrupted) rec.interrupted = String(signal.reason);
  return rec;
}
