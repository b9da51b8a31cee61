/**
 * The backup plan: plain, serialisable data built from discovery and config. The same object drives
 * `backup --dry-run` (printed) and the real run (executed), so what the dry-run shows is what happens.
 */
import { formatBytes } from './bytes.js';
import type { RetentionPolicy } from './retention.js';
import type { WarmDecision, WarmPassMode } from './warm.js';
import type { ContainerInfo, MountInfo, Unit } from './model.js';
import type { VolumeMode } from '../config/types.js';
import { bindPath, recipePath, volumePath, type SnapshotType } from './sources.js';
import { serviceWithoutContainerWarning } from './compose-file.js';
import {
  hostInternalReason,
  isCompletedOneShot,
  isSameOrUnder,
  oneShotServices,
  refersTo,
  startOrderOf,
} from './units.js';

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
  /**
   * Regular files counted with sizeBytes, before anything is stopped; undefined when not measured.
   * A source that had files then and is empty once its containers are stopped held data that only
   * existed while mounted: the run refuses to snapshot it (see backup.ts).
   */
  files?: number | undefined;
  /**
   * In `direct` mode, what in this source a Kopia directory snapshot would lose (names that are not
   * UTF-8, FIFOs, device nodes), found by the planner's I/O step: the run stores such a source as a tar
   * stream instead. Undefined or empty: nothing.
   */
  storedAsTarBecause?: string[] | undefined;
  /**
   * Set for a `local` volume whose driver options bind a host directory (`type: none`, `o: bind`,
   * `device: DIR`): hostPath is that directory, because Docker unmounts the volume from its Mountpoint
   * once the unit's containers stop (the Mountpoint would be read empty).
   */
  device?: string | undefined;
  /** An anonymous volume (see MountInfo.anonymous): backed up, but not re-adopted by `compose up`. */
  anonymous?: boolean | undefined;
  /**
   * Whether a warm pass snapshots it before the stop, and why (core/warm.ts decideWarm), decided by the
   * planner's I/O step from `plan.run.warmPass`, the measured size and the previous snapshots;
   * undefined until then (no warm pass).
   */
  warm?: WarmDecision | undefined;
}

/**
 * Data a unit's container uses that a cold backup cannot read: a `local` volume mounted from a network
 * share or device (nfs, cifs, …), which Docker unmounts once the unit is stopped. The rest of the unit
 * is backed up; the unit is reported failed with this message and hint, never ok.
 */
export interface UncapturedSource {
  container: string;
  /** Volume name. */
  source: string;
  destination: string;
  message: string;
  hint: string;
}

/** Why a container of another unit is stopped together with this unit. */
export interface OtherUnitReason {
  /** The other container's unit. */
  unit: string;
  /** E.g. `writes to volume shared` or `shares the network namespace of app`. */
  why: string;
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
  /** Set for a container of another unit, stopped only for this unit's snapshot (and started after). */
  otherUnit?: OtherUnitReason | undefined;
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
  /**
   * It was crash-looping (`restarting`) when discovered: it is started again, as found, and not
   * waited for — it was not running steadily before either.
   */
  noWait?: boolean | undefined;
  /** Set for a container of another unit (see StopStep.otherUnit). */
  otherUnit?: OtherUnitReason | undefined;
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
  /** Data that cannot be read cold: the unit is backed up without it and reported failed. */
  uncaptured: UncapturedSource[];
  /** Containers neither stopped nor started because of their state (paused, --rm), with why. */
  leftAsIs: { container: string; id: string; why: string }[];
  /** recipe + one per data source. */
  expectedSnapshots: number;
  warnings: string[];
}

/**
 * The settings the run reads besides those the planner uses itself (mode, workers, excludes, stop
 * timeout): fixed in the plan, so `--dry-run` shows exactly what the run will use.
 */
export interface RunSettings {
  /** Tar mode: mtimes of the stream's members normalised (reproducible streams). */
  tarDeterministicMtime: boolean;
  /** Seconds a single Kopia or tar call may take; 0 = no wall-clock limit. */
  taskTimeoutSec: number;
  /** Seconds a Kopia call may go without progress before it is stopped (the stall watchdog); 0 = off. */
  stallTimeoutSec: number;
  /** Seconds to wait for containers to be running (healthy, where they have a healthcheck) again. */
  startTimeoutSec: number;
  /** Kopia retention policy set on each unit's source roots (applied by Kopia after each snapshot). */
  retention: RetentionPolicy;
  /** Kopia compression algorithm set by the same policy. */
  compression: string;
  /** Commands run before stopping / after starting each unit (argv, never through a shell). */
  preBackupHook: string[] | undefined;
  postBackupHook: string[] | undefined;
  /**
   * `[backup] warm_pass`: snapshot the data sources while the containers still run, so the cold
   * snapshot taken with them stopped reads only what changed (core/warm.ts). The per-source decision
   * is `PlannedSource.warm`. Undefined (plans built without it): `never`.
   */
  warmPass?: WarmPassMode | undefined;
}

export interface Plan {
  backupId: string;
  host: string;
  user: string;
  volumeMode: VolumeMode;
  parallelWorkers: number;
  excludePatterns: string[];
  run: RunSettings;
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
  run: RunSettings;
  /**
   * Every unit on the host (planned or not), to find other units' containers that write to this
   * unit's data or share its containers' namespaces. Default: the units being planned.
   */
  hostUnits?: Unit[] | undefined;
}

/** The host path a mount's data is read from (a bind-type volume's device, else the source). */
function dataPath(m: MountInfo): string {
  return m.kind === 'volume' && m.backing?.kind === 'bind' ? m.backing.device : m.source;
}

/** Mount types of network filesystems (for the hint: their data is best backed up on the server). */
const NETWORK_FS = new Set(['nfs', 'nfs4', 'cifs', 'smb3', 'smbfs', 'glusterfs', 'ceph']);

/**
 * One container's mounts as data sources and coverage entries, plus the data that cannot be read cold
 * (uncaptured). Pure: a volume's backing (driver options) decides where it is read.
 */
function containerSources(unit: string, c: ContainerInfo, opts: PlanOptions) {
  const sources: PlannedSource[] = [];
  const coverage: CoverageEntry[] = [];
  const uncaptured: UncapturedSource[] = [];
  const notProtected = (m: MountInfo, kind: string, source: string, reason: string) =>
    coverage.push({
      container: c.name,
      kind,
      source,
      destination: m.destination,
      status: 'not-protected',
      reason,
    });
  for (const m of c.mounts) {
    const use = { container: c.name, destination: m.destination, readOnly: m.readOnly };
    if (m.kind === 'volume' && m.name !== undefined) {
      if (m.driver !== undefined && m.driver !== 'local') {
        notProtected(m, 'volume', m.name, `volume driver "${m.driver}" is not a local directory`);
        continue;
      }
      const backing = m.backing ?? { kind: 'directory' };
      if (backing.kind === 'tmpfs') {
        notProtected(m, 'volume', m.name, 'a tmpfs volume is in memory only');
        continue;
      }
      if (backing.kind === 'mount') {
        // Docker mounts it at its Mountpoint only while a container uses it: after the stop a snapshot
        // would read an empty directory and call it a backup.
        const what = `volume ${m.name} (local driver, type ${backing.type}${backing.device ? `, device ${backing.device}` : ''})`;
        notProtected(m, 'volume', m.name, `type ${backing.type} is mounted only while a container uses it`);
        uncaptured.push({
          container: c.name,
          source: m.name,
          destination: m.destination,
          message: `${what} of ${c.name} is not backed up: Docker mounts it only while a container uses it, so with the unit stopped kopi-docka would read an empty directory`,
          hint: `back it up where it lives (${NETWORK_FS.has(backing.type) ? 'on the file server' : 'on its device'}), or move the data to a plain volume or a bind-type volume (type none, o bind, device DIR); see docs/data-safety.md`,
        });
        continue;
      }
      let hostPath = m.source;
      let device: string | undefined;
      if (backing.kind === 'bind') {
        // The data is the device directory at all times; the Mountpoint only while the unit runs.
        const internal = hostInternalReason(backing.device, {
          dockerRootDir: opts.dockerRootDir,
          repositoryPath: opts.repositoryPath,
        });
        if (internal !== undefined) {
          coverage.push({
            container: c.name,
            kind: 'volume',
            source: m.name,
            destination: m.destination,
            status: 'host-internal',
            reason: `its device ${backing.device} is ${internal}`,
          });
          continue;
        }
        hostPath = backing.device;
        device = backing.device;
      }
      sources.push({
        key: `volume:${m.name}`,
        type: 'volume',
        name: m.name,
        hostPath,
        kopiaPath: volumePath(unit, m.name),
        usedBy: [use],
        ...(device === undefined ? {} : { device }),
        ...(m.anonymous ? { anonymous: true } : {}),
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
      notProtected(
        m,
        m.kind,
        m.source,
        m.kind === 'tmpfs' ? 'tmpfs is in memory only' : `mount type ${m.kind} is not supported`,
      );
    }
  }
  return { sources, coverage, uncaptured };
}

/** Why a container is neither stopped nor started by a backup, or undefined when it can be stopped. */
function cannotStop(c: ContainerInfo): 'paused' | 'autoremove' | undefined {
  if (c.paused) return 'paused';
  if (c.autoRemove) return 'autoremove';
  return undefined;
}

/** A container that a stop/start cycle would take down, i.e. one that is up now. */
function isUp(c: ContainerInfo): boolean {
  return c.running || c.restarting === true;
}

/**
 * How another unit's container touches this unit's data: `writes` when it mounts one of the sources
 * read-write (the same volume, or a bind at or inside a source's directory), `parent` when it binds a
 * directory above a source read-write (it can write into it), else undefined. Host-internal binds
 * (Docker's data root, /, …: monitoring agents) are not counted.
 */
function touches(
  o: ContainerInfo,
  sources: readonly PlannedSource[],
  opts: PlanOptions,
): { how: 'writes' | 'parent'; source: PlannedSource; mount: MountInfo } | undefined {
  const ctx = { dockerRootDir: opts.dockerRootDir, repositoryPath: opts.repositoryPath };
  let parent: { how: 'parent'; source: PlannedSource; mount: MountInfo } | undefined;
  for (const m of o.mounts) {
    if (m.readOnly || (m.kind !== 'volume' && m.kind !== 'bind')) continue;
    const p = dataPath(m);
    for (const s of sources) {
      if (m.kind === 'volume' && s.type === 'volume' && m.name === s.name)
        return { how: 'writes', source: s, mount: m };
      if (p === '' || (m.kind === 'bind' && hostInternalReason(p, ctx) !== undefined)) continue;
      if (isSameOrUnder(p, s.hostPath)) return { how: 'writes', source: s, mount: m };
      if (isSameOrUnder(s.hostPath, p)) parent ??= { how: 'parent', source: s, mount: m };
    }
  }
  return parent;
}

function describeSource(s: PlannedSource): string {
  return `${s.type} ${s.name}`;
}

/**
 * The plan of one unit. Pure: every fact comes from discovery (units, mounts, states).
 *
 * Besides the unit's own containers, `stop`/`start` hold containers of other units (opts.hostUnits)
 * that would make the snapshot warm or that the stop would break: those writing to one of the unit's
 * data sources, and those sharing the network, PID or IPC namespace of a container that is stopped
 * (a PID-namespace joiner is killed with it; a network joiner is left without network). Containers
 * that are paused or were started with --rm are never stopped (a stop would SIGKILL the frozen one, and
 * delete the other): they are in `leftAsIs`, and a warning says what that means for the snapshot.
 */
export function planUnit(unit: Unit, opts: PlanOptions): UnitPlan {
  const byKey = new Map<string, PlannedSource>();
  const coverage: CoverageEntry[] = [];
  const uncaptured: UncapturedSource[] = [];
  for (const c of unit.containers) {
    const r = containerSources(unit.name, c, opts);
    coverage.push(...r.coverage);
    uncaptured.push(...r.uncaptured);
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
  const uncapturedKeys = new Set(uncaptured.map((u) => `${u.container}\u0000${u.destination}`));
  for (const e of coverage) {
    // Uncaptured data fails the unit: said once, as the failure, not also as a warning.
    if (e.status === 'not-protected' && !uncapturedKeys.has(`${e.container}\u0000${e.destination}`))
      warnings.push(
        `${e.container}: ${e.kind} ${e.source} → ${e.destination} is not protected (${e.reason ?? ''})`,
      );
  }
  for (const s of sources) {
    if (!s.anonymous) continue;
    const users = s.usedBy.map((u) => `${u.container}:${u.destination}`).join(', ');
    warnings.push(
      unit.kind === 'stack'
        ? `volume ${s.name} (${users}) is anonymous: it is backed up, but after a restore \`compose up\` creates a new, empty anonymous volume and does not reattach this one — name the volume in the Compose file (e.g. \`- data:${s.usedBy[0]?.destination ?? '/path'}\` and a top-level \`volumes: { data: {} }\`) before you need the restore, or copy the restored volume into the new one after \`compose up\` (docs/data-safety.md)`
        : `volume ${s.name} (${users}) is anonymous: it is backed up, but a container recreated from the recipe gets a new, empty anonymous volume unless it is run with \`-v ${s.name}:${s.usedBy[0]?.destination ?? '/path'}\` (docs/data-safety.md)`,
    );
  }

  const leftAsIs: UnitPlan['leftAsIs'] = [];
  const stopSet = new Map<string, { c: ContainerInfo; other?: OtherUnitReason }>();
  // A unit without data sources keeps running: there is nothing whose consistency a stop would buy.
  if (sources.length > 0) {
    for (const c of unit.containers) {
      if (!isUp(c)) continue;
      const why = cannotStop(c);
      if (why === 'paused') {
        leftAsIs.push({ container: c.name, id: c.id, why: 'paused' });
        warnings.push(
          `${c.name} is paused: it is left paused, not stopped (a stop would SIGKILL it); its data is snapshotted as the frozen process left it — consistent only as after a power cut`,
        );
      } else if (why === 'autoremove') {
        leftAsIs.push({ container: c.name, id: c.id, why: 'started with --rm' });
        warnings.push(
          `${c.name} was started with --rm: stopping it would delete it, so it keeps running and its data is snapshotted live (not a cold backup)`,
        );
      } else {
        stopSet.set(c.id, { c });
        if (c.restarting) {
          warnings.push(
            `${c.name} is restarting (crash loop): it is stopped for the snapshot and started again as it was, without waiting for it to run`,
          );
        }
      }
    }

    // Other units' containers writing to this unit's data: stopped too, or the snapshot is warm.
    const own = new Set(unit.containers.map((c) => c.id));
    const others = (opts.hostUnits ?? []).flatMap((u) =>
      u.name === unit.name ? [] : u.containers.filter((c) => !own.has(c.id)).map((c) => ({ u, c })),
    );
    for (const { u, c } of others) {
      if (!isUp(c)) continue;
      const t = touches(c, sources, opts);
      if (!t) continue;
      const what = describeSource(t.source);
      if (t.how === 'parent') {
        warnings.push(
          `${c.name} (unit ${u.name}) binds ${t.mount.source} read-write, which holds ${what}: it keeps running and could write into it during the snapshot`,
        );
        continue;
      }
      const why = cannotStop(c);
      if (why === 'paused') {
        warnings.push(
          `${what} is also mounted read-write by ${c.name} (unit ${u.name}), which is paused: it is left paused and cannot write while frozen`,
        );
      } else if (why === 'autoremove') {
        warnings.push(
          `${what} is also mounted read-write by ${c.name} (unit ${u.name}), started with --rm: stopping it would delete it, so it keeps running and may write during the snapshot (not a cold backup)`,
        );
      } else {
        stopSet.set(c.id, { c, other: { unit: u.name, why: `writes to ${what}` } });
        warnings.push(
          `${what} is also written by ${c.name} of unit ${u.name}: ${c.name} is stopped for this snapshot too and started again after it`,
        );
      }
    }

    // Containers sharing a namespace of a stopped container: a PID-namespace joiner dies with it, a
    // network/IPC joiner is left in a namespace its owner no longer has. Stop them first, start them after.
    const candidates = [...unit.containers.map((c) => ({ u: unit, c })), ...others];
    for (let grew = true; grew;) {
      grew = false;
      for (const { u, c } of candidates) {
        if (stopSet.has(c.id) || !isUp(c)) continue;
        const join = (c.joins ?? []).find((j) => [...stopSet.values()].some((x) => refersTo(j.target, x.c)));
        if (!join) continue;
        const owner = [...stopSet.values()].find((x) => refersTo(join.target, x.c))?.c.name ?? join.target;
        const why = cannotStop(c);
        if (why !== undefined) {
          warnings.push(
            `${c.name}${u === unit ? '' : ` (unit ${u.name})`} shares the ${join.namespace} namespace of ${owner}, which is stopped, but is ${why === 'paused' ? 'paused' : 'started with --rm'} and is not stopped: ${join.namespace === 'pid' ? 'it is killed when the namespace owner stops' : `it keeps a ${join.namespace} namespace that ${owner} no longer has after its restart`}`,
          );
          continue;
        }
        stopSet.set(c.id, {
          c,
          ...(u === unit
            ? {}
            : { other: { unit: u.name, why: `shares the ${join.namespace} namespace of ${owner}` } }),
        });
        if (u !== unit) {
          warnings.push(
            `${c.name} of unit ${u.name} shares the ${join.namespace} namespace of ${owner}: it is stopped before ${owner} and started again after it`,
          );
        }
        grew = true;
      }
    }
  }

  const order = startOrderOf([
    ...unit.containers,
    ...[...stopSet.values()].filter((x) => x.other).map((x) => x.c),
  ]);
  const stop: StopStep[] = order
    .filter((c) => stopSet.has(c.id))
    .reverse()
    .map((c) => {
      const other = stopSet.get(c.id)?.other;
      return {
        container: c.name,
        id: c.id,
        timeoutSec: Math.max(opts.stopTimeout, c.stopTimeout ?? 0),
        ...(other ? { otherUnit: other } : {}),
      };
    });
  const oneShots = oneShotServices(unit);
  const start: StartStep[] = order
    .filter((c) => stopSet.has(c.id))
    .map((c) => {
      const other = stopSet.get(c.id)?.other;
      const oneShot = other === undefined && c.composeService !== undefined && oneShots.has(c.composeService);
      return {
        container: c.name,
        id: c.id,
        waitHealthy: c.hasHealthcheck && !oneShot && !c.restarting,
        waitCompleted: oneShot && !c.restarting,
        ...(c.restarting ? { noWait: true } : {}),
        ...(other ? { otherUnit: other } : {}),
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
    uncaptured,
    leftAsIs,
    expectedSnapshots: 1 + sources.length,
    warnings,
  };
}

export function buildPlan(units: Unit[], opts: PlanOptions): Plan {
  const withHost = { ...opts, hostUnits: opts.hostUnits ?? units };
  return {
    backupId: opts.backupId,
    host: opts.host,
    user: opts.user,
    volumeMode: opts.volumeMode,
    parallelWorkers: opts.parallelWorkers,
    excludePatterns: opts.excludePatterns,
    run: opts.run,
    units: units.map((u) => planUnit(u, withHost)),
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

// ---------------------------------------------------------------------------------------------------
// Data guards: sizes that say the data was not there to read

/** A source's size now is a collapse when below this share of its previous restore point's size… */
export const COLLAPSE_RATIO = 0.1;
/** …and the previous size was at least this many bytes (small sources legitimately swing a lot). */
export const COLLAPSE_MIN_BYTES = 1024 * 1024;

/** A data snapshot's size facts, as Kopia records them (rootEntry.summ) with the snapshot's tags. */
export interface SizeFacts {
  /** Bytes: the directory's total, or the tar stream's size. */
  sizeBytes: number;
  /** Files in a directory snapshot (a tar snapshot holds one: the stream). */
  files: number;
  format: 'dir' | 'tar';
  /** The restore point it belongs to (previous facts only). */
  backupId?: string | undefined;
}

/**
 * The warning for a data source that shrank suspiciously since the previous restore point, or
 * undefined. Two rules, both only when the two snapshots have the same format (dir vs tar; a change
 * of volume_mode changes what the sizes mean):
 *  - it had files and has none now (directory snapshots);
 *  - it had at least COLLAPSE_MIN_BYTES (1 MiB) and has less than COLLAPSE_RATIO (10 %) of that now.
 *
 * @param what e.g. `volume web_db`, for the message.
 */
export function shrinkWarning(what: string, prev: SizeFacts | undefined, now: SizeFacts): string | undefined {
  if (!prev || prev.format !== now.format) return undefined;
  const was = `${formatBytes(prev.sizeBytes)}${prev.format === 'dir' ? ` in ${prev.files} file(s)` : ''}`;
  const is = `${formatBytes(now.sizeBytes)}${now.format === 'dir' ? ` in ${now.files} file(s)` : ''}`;
  const at = prev.backupId === undefined ? 'the previous restore point' : `restore point ${prev.backupId}`;
  const check =
    'check that the data is really gone (an unmounted disk or share, a wiped volume) before retention removes the older restore points';
  if (now.format === 'dir' && prev.files > 0 && now.files === 0) {
    return `${what} is EMPTY now but held ${was} in ${at}: ${check}`;
  }
  if (prev.sizeBytes >= COLLAPSE_MIN_BYTES && now.sizeBytes < prev.sizeBytes * COLLAPSE_RATIO) {
    return `${what} shrank to ${is} from ${was} in ${at} (below ${Math.round(COLLAPSE_RATIO * 100)} %): ${check}`;
  }
  return undefined;
}
