/**
 * The backup plan: plain, serialisable data built from discovery and config. The same object drives
 * `backup --dry-run` (printed) and the real run (executed), so what the dry-run shows is what happens.
 */
import type { ContainerInfo, Unit } from './model.js';
import type { VolumeMode } from '../config/types.js';
import { bindPath, recipePath, volumePath, type SnapshotType } from './sources.js';
import { serviceWithoutContainerWarning } from './compose-file.js';
import { hostInternalReason, isCompletedOneShot, oneShotServices, startOrder, stopOrder } from './units.js';

export interface SourceUse {
  container: string;
  destination: string;
  readOnly: boolean;
}

export interface PlannedSource {
  /** Stable key within the unit, also the manifest key: `volume:<name>` or `bind:<host path>`. */
  key: string;
  type: Exclude<SnapshotType, 'recipe'>;
  /** Volume name, or the bind's host path. */
  name: string;
  /** What is read: the volume mountpoint or the bind source on the host. */
  hostPath: string;
  /** Kopia source path this is recorded under. */
  kopiaPath: string;
  usedBy: SourceUse[];
  /** Filled in by the planner's I/O step (dry-run shows it); undefined when not measured. */
  sizeBytes?: number | undefined;
}

export type CoverageStatus = 'backed-up' | 'host-internal' | 'not-protected';

export interface CoverageEntry {
  container: string;
  kind: string;
  source: string;
  destination: string;
  status: CoverageStatus;
  reason?: string;
}

export interface StopStep {
  container: string;
  id: string;
  /** Seconds: the configured stop_timeout, or the container's own when it is longer. */
  timeoutSec: number;
}

export interface StartStep {
  container: string;
  id: string;
  /** Wait until its healthcheck passes before starting the next container. */
  waitHealthy: boolean;
  /**
   * A one-shot service (a dependant waits for `service_completed_successfully`) that was running at
   * backup time: wait until it exits with code 0, as Compose would, before starting its dependants.
   */
  waitCompleted: boolean;
}

export interface UnitPlan {
  unit: string;
  kind: Unit['kind'];
  containers: { name: string; id: string; state: string; image: string }[];
  /** Running containers in reverse dependency order. Empty when the unit has no data to protect. */
  stop: StopStep[];
  /** Only what was running before the run, in dependency order. */
  start: StartStep[];
  /**
   * One-shot containers that have completed (exit 0; see oneShotServices): not running and not
   * started again, which is their normal state — not containers "left stopped".
   */
  completed: { container: string; id: string }[];
  recipe: {
    kopiaPath: string;
    workingDir: string | undefined;
    composeFiles: string[];
    missingFiles: string[];
    /** Other files the project needs (included Compose files, env files), absolute; see Unit. */
    referencedFiles: string[];
    /** The project's `--env-file`s (a subset of referencedFiles). */
    environmentFiles: string[];
  };
  sources: PlannedSource[];
  coverage: CoverageEntry[];
  /** recipe + one per data source. */
  expectedSnapshots: number;
  warnings: string[];
}

export interface Plan {
  backupId: string;
  host: string;
  user: string;
  volumeMode: VolumeMode;
  parallelWorkers: number;
  excludePatterns: string[];
  units: UnitPlan[];
}

export interface PlanOptions {
  backupId: string;
  host: string;
  user: string;
  volumeMode: VolumeMode;
  parallelWorkers: number;
  excludePatterns: string[];
  stopTimeout: number;
  dockerRootDir: string;
  repositoryPath: string;
}

function containerSources(unit: string, c: ContainerInfo, opts: PlanOptions) {
  const sources: PlannedSource[] = [];
  const coverage: CoverageEntry[] = [];
  for (const m of c.mounts) {
    const use = { container: c.name, destination: m.destination, readOnly: m.readOnly };
    if (m.kind === 'volume' && m.name !== undefined) {
      if (m.driver !== undefined && m.driver !== 'local') {
        coverage.push({
          container: c.name,
          kind: 'volume',
          source: m.name,
          destination: m.destination,
          status: 'not-protected',
          reason: `volume driver "${m.driver}" is not a local directory`,
        });
        continue;
      }
      sources.push({
        key: `volume:${m.name}`,
        type: 'volume',
        name: m.name,
        hostPath: m.source,
        kopiaPath: volumePath(unit, m.name),
        usedBy: [use],
      });
      coverage.push({
        container: c.name,
        kind: 'volume',
        source: m.name,
        destination: m.destination,
        status: 'backed-up',
      });
    } else if (m.kind === 'bind') {
      const internal = hostInternalReason(m.source, {
        dockerRootDir: opts.dockerRootDir,
        repositoryPath: opts.repositoryPath,
      });
      if (internal !== undefined) {
        coverage.push({
          container: c.name,
          kind: 'bind',
          source: m.source,
          destination: m.destination,
          status: 'host-internal',
          reason: internal,
        });
        continue;
      }
      sources.push({
        key: `bind:${m.source}`,
        type: 'bind',
        name: m.source,
        hostPath: m.source,
        kopiaPath: bindPath(unit, m.source),
        usedBy: [use],
      });
      coverage.push({
        container: c.name,
        kind: 'bind',
        source: m.source,
        destination: m.destination,
        status: 'backed-up',
      });
    } else {
      coverage.push({
        container: c.name,
        kind: m.kind,
        source: m.source,
        destination: m.destination,
        status: 'not-protected',
        reason: m.kind === 'tmpfs' ? 'tmpfs is in memory only' : `mount type ${m.kind} is not supported`,
      });
    }
  }
  return { sources, coverage };
}

export function planUnit(unit: Unit, opts: PlanOptions): UnitPlan {
  const byKey = new Map<string, PlannedSource>();
  const coverage: CoverageEntry[] = [];
  for (const c of unit.containers) {
    const r = containerSources(unit.name, c, opts);
    coverage.push(...r.coverage);
    for (const s of r.sources) {
      const prev = byKey.get(s.key);
      // A volume shared by several containers of the unit is snapshotted once.
      if (prev) prev.usedBy.push(...s.usedBy);
      else byKey.set(s.key, s);
    }
  }
  const sources = [...byKey.values()].sort((a, b) => a.key.localeCompare(b.key));
  coverage.sort(
    (a, b) => a.container.localeCompare(b.container) || a.destination.localeCompare(b.destination),
  );
  const warnings: string[] = [];
  for (const f of unit.missingConfigFiles) warnings.push(`compose file ${f} does not exist on this host`);
  for (const s of unit.servicesWithoutContainers ?? []) warnings.push(serviceWithoutContainerWarning(s));
  for (const e of coverage) {
    if (e.status === 'not-protected')
      warnings.push(
        `${e.container}: ${e.kind} ${e.source} → ${e.destination} is not protected (${e.reason ?? ''})`,
      );
  }
  // A unit without data sources keeps running: there is nothing whose consistency a stop would buy.
  const stop: StopStep[] =
    sources.length === 0
      ? []
      : stopOrder(unit)
          .filter((c) => c.running)
          .map((c) => ({
            container: c.name,
            id: c.id,
            timeoutSec: Math.max(opts.stopTimeout, c.stopTimeout ?? 0),
          }));
  const stoppedIds = new Set(stop.map((s) => s.id));
  const oneShots = oneShotServices(unit);
  const start: StartStep[] = startOrder(unit)
    .filter((c) => stoppedIds.has(c.id))
    .map((c) => {
      const oneShot = c.composeService !== undefined && oneShots.has(c.composeService);
      return {
        container: c.name,
        id: c.id,
        waitHealthy: c.hasHealthcheck && !oneShot,
        waitCompleted: oneShot,
      };
    });
  return {
    unit: unit.name,
    kind: unit.kind,
    containers: unit.containers.map((c) => ({ name: c.name, id: c.id, state: c.state, image: c.image })),
    stop,
    start,
    completed: unit.containers
      .filter((c) => isCompletedOneShot(c, oneShots))
      .map((c) => ({ container: c.name, id: c.id })),
    recipe: {
      kopiaPath: recipePath(unit.name),
      workingDir: unit.composeWorkingDir,
      composeFiles: unit.composeConfigFiles,
      missingFiles: unit.missingConfigFiles,
      referencedFiles: unit.composeReferencedFiles ?? [],
      environmentFiles: unit.composeEnvironmentFiles ?? [],
    },
    sources,
    coverage,
    expectedSnapshots: 1 + sources.length,
    warnings,
  };
}

export function buildPlan(units: Unit[], opts: PlanOptions): Plan {
  return {
    backupId: opts.backupId,
    host: opts.host,
    user: opts.user,
    volumeMode: opts.volumeMode,
    parallelWorkers: opts.parallelWorkers,
    excludePatterns: opts.excludePatterns,
    units: units.map((u) => planUnit(u, opts)),
  };
}

/** Pick units by name; unknown names are returned so the caller can refuse before touching anything. */
export function selectUnits(units: Unit[], names: string[]): { selected: Unit[]; unknown: string[] } {
  if (names.length === 0) return { selected: units, unknown: [] };
  const known = new Map(units.map((u) => [u.name, u]));
  const unknown = names.filter((n) => !known.has(n));
  const wanted = new Set(names);
  return { selected: units.filter((u) => wanted.has(u.name)), unknown };
}
