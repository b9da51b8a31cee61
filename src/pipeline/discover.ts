/**
 * Discovery: what is on this Docker host, as units. Every container counts, running or stopped (the
 * original skipped stopped Compose members and their volumes), and every mount is reported.
 *
 * Compose v1 (docker-compose 1.x) and v2 label projects differently: v1 stores config_files relative to
 * working_dir and sets no depends_on label, so dependencies are read from the Compose file(s) then.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { isNotFound, type ContainerInspect, type DockerClient, type VolumeInfo } from '../adapters/docker.js';
import type { ContainerInfo, MountInfo, MountKind, Unit } from '../core/model.js';
import { groupUnits, hostInternalReason } from '../core/units.js';
import { errorMessage } from '../errors.js';
import { mapLimit } from '../core/concurrency.js';
import { exists } from '../fsutil.js';

export const LABEL_PROJECT = 'com.docker.compose.project';
export const LABEL_SERVICE = 'com.docker.compose.service';
export const LABEL_WORKING_DIR = 'com.docker.compose.project.working_dir';
export const LABEL_CONFIG_FILES = 'com.docker.compose.project.config_files';
export const LABEL_DEPENDS_ON = 'com.docker.compose.depends_on';

/** Inspect calls in flight at once: fast on big hosts without flooding the daemon. */
const INSPECT_CONCURRENCY = 8;

export interface DiscoverOptions {
  repositoryPath: string;
  signal?: AbortSignal;
}

export interface Discovery {
  units: Unit[];
  dockerRootDir: string;
  warnings: string[];
}

/** `svc:condition:restart,other:condition` (v2 label) → service names. */
export function parseDependsOnLabel(value: string): string[] {
  return [
    ...new Set(
      value
        .split(',')
        .map((e) => e.trim().split(':')[0] ?? '')
        .filter((s) => s !== ''),
    ),
  ];
}

/** Config file paths from the label: comma-separated, relative ones resolved against the working dir (v1). */
export function resolveConfigFiles(label: string | undefined, workingDir: string | undefined): string[] {
  if (label === undefined || label.trim() === '') return [];
  return [
    ...new Set(
      label
        .split(',')
        .map((f) => f.trim())
        .filter((f) => f !== '')
        .map((f) => (path.isAbsolute(f) || workingDir === undefined ? f : path.resolve(workingDir, f))),
    ),
  ];
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * service → the services it depends on, from one parsed Compose document. Besides `depends_on` (list or
 * map form) this counts what Compose itself treats as a dependency: `links`, `volumes_from` and
 * `network_mode`/`ipc`/`pid: service:<name>`.
 */
export function composeDependencies(doc: unknown): Map<string, string[]> {
  const out = new Map<string, string[]>();
  if (!isObject(doc)) return out;
  // Compose file format 1 has no `services:` key: the services are the top-level keys.
  const services = isObject(doc.services) ? doc.services : doc.version === undefined ? doc : {};
  for (const [name, svc] of Object.entries(services)) {
    if (!isObject(svc)) continue;
    const deps: string[] = [];
    const dependsOn = svc.depends_on;
    if (Array.isArray(dependsOn)) {
      for (const d of dependsOn) if (typeof d === 'string') deps.push(d);
    } else if (isObject(dependsOn)) {
      deps.push(...Object.keys(dependsOn));
    }
    if (Array.isArray(svc.links)) {
      for (const l of svc.links) if (typeof l === 'string') deps.push(l.split(':')[0] ?? '');
    }
    if (Array.isArray(svc.volumes_from)) {
      for (const v of svc.volumes_from) {
        if (typeof v !== 'string' || v.startsWith('container:')) continue;
        deps.push((v.startsWith('service:') ? v.slice('service:'.length) : v).split(':')[0] ?? '');
      }
    }
    for (const key of ['network_mode', 'ipc', 'pid']) {
      const v = svc[key];
      if (typeof v === 'string' && v.startsWith('service:')) deps.push(v.slice('service:'.length));
    }
    out.set(name, [...new Set(deps.filter((d) => d !== '' && d !== name))]);
  }
  return out;
}

function mountKind(type: string): MountKind {
  return type === 'volume' || type === 'bind' || type === 'tmpfs' ? type : 'other';
}

/** The ContainerInfo for one inspected container (dependsOn left to the caller when there is no label). */
export function containerInfoFromInspect(
  c: ContainerInspect,
  volumes: ReadonlyMap<string, VolumeInfo>,
): ContainerInfo {
  const labels = c.Config.Labels ?? {};
  const test = c.Config.Healthcheck?.Test;
  // Test ["NONE"] disables a healthcheck inherited from the image; an empty Test inherits nothing.
  const hasHealthcheck = Array.isArray(test) && test.length > 0 && test[0] !== 'NONE';
  const mounts: MountInfo[] = (c.Mounts ?? []).map((m) => {
    const kind = mountKind(m.Type);
    const vol = kind === 'volume' && m.Name !== undefined ? volumes.get(m.Name) : undefined;
    return {
      kind,
      name: kind === 'volume' ? m.Name : undefined,
      // A volume's data is at its Mountpoint; the mount's Source is the same for the local driver but
      // may be empty for others while the container is stopped.
      source: vol?.mountpoint || m.Source,
      destination: m.Destination,
      readOnly: !m.RW,
      driver: kind === 'volume' ? (m.Driver ?? vol?.driver) : undefined,
    };
  });
  const workingDir = labels[LABEL_WORKING_DIR] || undefined;
  const dependsLabel = labels[LABEL_DEPENDS_ON];
  return {
    id: c.Id,
    name: c.Name.replace(/^\//, ''),
    image: c.Config.Image,
    imageId: c.Image,
    state: c.State.Status,
    running: c.State.Running,
    hasHealthcheck,
    stopTimeout: typeof c.Config.StopTimeout === 'number' ? c.Config.StopTimeout : undefined,
    labels,
    mounts,
    composeProject: labels[LABEL_PROJECT] || undefined,
    composeService: labels[LABEL_SERVICE] || undefined,
    composeWorkingDir: workingDir,
    composeConfigFiles: resolveConfigFiles(labels[LABEL_CONFIG_FILES], workingDir),
    dependsOn: dependsLabel === undefined ? [] : parseDependsOnLabel(dependsLabel),
    inspect: c,
  };
}

/**
 * All units on the host. Warnings (reported, never fatal): containers that vanished mid-discovery,
 * Compose files named by labels but missing or unreadable, projects whose members disagree on their
 * working directory, and binds that look like data but are skipped because they overlap the
 * repository or Docker's data root.
 */
export async function discoverUnits(docker: DockerClient, opts: DiscoverOptions): Promise<Discovery> {
  const call = opts.signal ? { signal: opts.signal } : {};
  const warnings: string[] = [];
  const [info, summaries, volumeList] = await Promise.all([
    docker.info(call),
    docker.listContainers({ all: true }, call),
    docker.listVolumes(call),
  ]);
  const volumes = new Map(volumeList.map((v) => [v.name, v]));

  const inspected = await mapLimit(summaries, INSPECT_CONCURRENCY, async (s) => {
    try {
      return await docker.inspectContainer(s.id, call);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      warnings.push(`container ${s.name} disappeared during discovery; skipped`);
      return undefined;
    }
  });
  const containers = inspected
    .filter((c): c is ContainerInspect => c !== undefined)
    .map((c) => containerInfoFromInspect(c, volumes));

  // Compose v1 sets no depends_on label: read the dependencies from the project's Compose file(s).
  const parsed = new Map<string, Promise<Map<string, string[]> | undefined>>();
  const missing = new Set<string>();
  const readDeps = (file: string): Promise<Map<string, string[]> | undefined> => {
    let p = parsed.get(file);
    if (!p) {
      p = (async () => {
        if (!(await exists(file))) {
          missing.add(file);
          return undefined;
        }
        try {
          return composeDependencies(parseYaml(await readFile(file, 'utf8'), { merge: true }));
        } catch (err) {
          warnings.push(`cannot read dependencies from compose file ${file}: ${errorMessage(err)}`);
          return undefined;
        }
      })();
      parsed.set(file, p);
    }
    return p;
  };
  for (const c of containers) {
    for (const f of c.composeConfigFiles) await readDeps(f);
    if (c.labels[LABEL_DEPENDS_ON] !== undefined || c.composeService === undefined) continue;
    const deps: string[] = [];
    for (const f of c.composeConfigFiles) deps.push(...((await readDeps(f))?.get(c.composeService) ?? []));
    c.dependsOn = [...new Set(deps)];
  }

  const units = groupUnits(containers);
  const plainCtx = { dockerRootDir: '', repositoryPath: '' };
  const fullCtx = { dockerRootDir: info.dockerRootDir, repositoryPath: opts.repositoryPath };
  for (const u of units) {
    u.missingConfigFiles = u.composeConfigFiles.filter((f) => missing.has(f));
    for (const f of u.missingConfigFiles) {
      warnings.push(
        `unit ${u.name}: compose file ${f} (named by the container labels) does not exist on this host; its recipe will lack it`,
      );
    }
    const dirs = new Set(u.containers.map((c) => c.composeWorkingDir).filter((d) => d !== undefined));
    if (dirs.size > 1) {
      warnings.push(
        `unit ${u.name}: its containers come from different directories (${[...dirs].join(', ')}); using ${u.composeWorkingDir ?? '?'}`,
      );
    }
    for (const c of u.containers) {
      for (const m of c.mounts) {
        if (m.kind !== 'bind') continue;
        // Pseudo-filesystems and host files are skipped silently; a data-looking path skipped only
        // because it overlaps the repository or Docker's data root deserves a word.
        const reason = hostInternalReason(m.source, fullCtx);
        if (reason !== undefined && hostInternalReason(m.source, plainCtx) === undefined) {
          warnings.push(
            `unit ${u.name}: container ${c.name} binds ${m.source}, which is ${reason}; it will not be backed up`,
          );
        }
      }
    }
  }
  return { units, dockerRootDir: info.dockerRootDir, warnings };
}
