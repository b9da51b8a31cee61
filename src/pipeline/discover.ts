/**
 * Discovery: what is on this Docker host, as units. Every container counts, running or stopped (the
 * original skipped stopped Compose members and their volumes), and every mount is reported.
 *
 * Compose v1 (docker-compose 1.x) and v2 label projects differently: v1 stores config_files relative to
 * working_dir and sets no depends_on label, so dependencies (and their conditions) are read from the
 * Compose file(s) then. For both, the Compose files are read to find what the containers cannot tell:
 * the files the project needs besides its config files (`include:`, `env_file:`, `extends.file`) and
 * the services that have no container (an inactive profile, scaled to 0), which are reported.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { isNotFound, type ContainerInspect, type DockerClient, type VolumeInfo } from '../adapters/docker.js';
import {
  composeFileFacts,
  dependenciesByService,
  parseDependsOnConditions,
  resolveComposePath,
  serviceWithoutContainerWarning,
  servicesWithoutContainers,
  type ComposeFileFacts,
  type ComposeServiceFacts,
} from '../core/compose-file.js';
import type { ContainerInfo, MountInfo, MountKind, Unit } from '../core/model.js';
import {
  LABEL_CONFIG_FILES,
  LABEL_DEPENDS_ON,
  LABEL_PROJECT,
  LABEL_SERVICE,
  LABEL_WORKING_DIR,
  environmentFilesOf,
  resolveConfigFiles,
} from '../core/compose-labels.js';
import {
  groupUnits,
  hostInternalReason,
  isAnonymousVolume,
  namespaceJoins,
  volumeBacking,
} from '../core/units.js';
import { errorMessage } from '../errors.js';
import { mapLimit } from '../core/concurrency.js';
import { exists } from '../fsutil.js';

export { composeDependencies } from '../core/compose-file.js';
export * from '../core/compose-labels.js';

/** Inspect calls in flight at once: fast on big hosts without flooding the daemon. */
const INSPECT_CONCURRENCY = 8;

/** `include:` nests at most this deep (Compose itself only stops at a cycle). */
const MAX_INCLUDE_DEPTH = 16;

export interface DiscoverOptions {
  repositoryPath: string;
  signal?: AbortSignal;
}

export interface Discovery {
  units: Unit[];
  dockerRootDir: string;
  warnings: string[];
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
    const driver = kind === 'volume' ? (m.Driver ?? vol?.driver) : undefined;
    const info: MountInfo = {
      kind,
      name: kind === 'volume' ? m.Name : undefined,
      // A volume's data is at its Mountpoint; the mount's Source is the same for the local driver but
      // may be empty for others while the container is stopped.
      source: vol?.mountpoint || m.Source,
      destination: m.Destination,
      readOnly: !m.RW,
      driver,
    };
    if (kind === 'volume' && m.Name !== undefined) {
      info.anonymous = isAnonymousVolume(m.Name, vol?.labels ?? {});
      // driver_opts decide whether the Mountpoint still holds the data once the unit is stopped.
      if (vol) info.backing = volumeBacking(driver ?? vol.driver, vol.options);
    }
    return info;
  });
  const host = c.HostConfig ?? {};
  const workingDir = labels[LABEL_WORKING_DIR] || undefined;
  const dependsLabel = labels[LABEL_DEPENDS_ON];
  const dependencies = dependsLabel === undefined ? [] : parseDependsOnConditions(dependsLabel);
  return {
    id: c.Id,
    name: c.Name.replace(/^\//, ''),
    image: c.Config.Image,
    imageId: c.Image,
    state: c.State.Status,
    running: c.State.Running,
    paused: c.State.Paused === true || c.State.Status === 'paused',
    restarting: c.State.Restarting === true || c.State.Status === 'restarting',
    autoRemove: host.AutoRemove === true,
    joins: namespaceJoins(host),
    hasHealthcheck,
    stopTimeout: typeof c.Config.StopTimeout === 'number' ? c.Config.StopTimeout : undefined,
    labels,
    mounts,
    composeProject: labels[LABEL_PROJECT] || undefined,
    composeService: labels[LABEL_SERVICE] || undefined,
    composeWorkingDir: workingDir,
    composeConfigFiles: resolveConfigFiles(labels[LABEL_CONFIG_FILES], workingDir),
    dependsOn: dependencies.map((d) => d.service),
    dependencies,
    exitCode: typeof c.State.ExitCode === 'number' ? c.State.ExitCode : undefined,
    inspect: c,
  };
}

/** Reads (and caches) one Compose file's facts; undefined when it is missing or unreadable. */
type LoadFacts = (file: string) => Promise<ComposeFileFacts | undefined>;

/** A file a project's Compose files name, resolved, with what named it (for messages). */
interface ProjectRef {
  file: string;
  required: boolean;
  what: string;
}

interface ComposeProjectFiles {
  /** Every service declaration, in load order (a service overridden in a later file appears twice). */
  services: ComposeServiceFacts[];
  refs: ProjectRef[];
  /** Paths as written that need Compose's own environment to resolve (`${VAR}`, `~`, remote). */
  unresolved: string[];
}

/**
 * Walks a project's config files and, recursively, what they `include:`, collecting the services and
 * the files named on the way. Missing or unreadable files are skipped (load reports them); an include
 * cycle (which Compose refuses) is not followed.
 */
async function readComposeProject(
  configFiles: string[],
  projectDir: string,
  load: LoadFacts,
): Promise<ComposeProjectFiles> {
  const out: ComposeProjectFiles = { services: [], refs: [], unresolved: [] };
  const chain: string[] = [];
  const ref = (p: string, base: string, required: boolean, what: string): string | undefined => {
    const file = resolveComposePath(p, base);
    // An optional file Compose may not have read either is not worth a warning.
    if (file === undefined) {
      if (required) out.unresolved.push(`${p} (${what})`);
    } else out.refs.push({ file, required, what });
    return file;
  };
  const walk = async (files: string[], dir: string, depth: number): Promise<void> => {
    for (const f of files) {
      if (chain.includes(f)) continue;
      const facts = await load(f);
      if (!facts) continue;
      chain.push(f);
      for (const s of facts.services) {
        out.services.push(s);
        for (const e of s.envFiles) ref(e.path, dir, e.required, `env_file of service ${s.name} in ${f}`);
        if (s.extendsFile !== undefined)
          ref(s.extendsFile, dir, true, `extends.file of service ${s.name} in ${f}`);
      }
      for (const inc of facts.includes) {
        const paths = inc.paths
          .map((p) => ref(p, dir, true, `included by ${f}`))
          .filter((p): p is string => p !== undefined);
        const first = paths[0];
        if (first === undefined) continue;
        // The included project resolves its own relative paths against its own directory.
        const incDir =
          (inc.projectDirectory === undefined ? undefined : resolveComposePath(inc.projectDirectory, dir)) ??
          path.dirname(first);
        for (const e of inc.envFiles) ref(e, dir, true, `env_file of the include of ${first} in ${f}`);
        if (inc.envFiles.length === 0) {
          out.refs.push({ file: path.join(incDir, '.env'), required: false, what: `env file of ${first}` });
        }
        if (depth < MAX_INCLUDE_DEPTH) await walk(paths, incDir, depth + 1);
      }
      chain.pop();
    }
  };
  await walk(configFiles, projectDir, 0);
  return out;
}

async function isFile(p: string): Promise<boolean> {
  return stat(p).then(
    (st) => st.isFile(),
    () => false,
  );
}

/**
 * Fills in what a Compose unit's files tell beyond the container labels: dependencies (with
 * conditions) for containers without the v2 label, the files the project needs besides its config
 * files (composeReferencedFiles, composeEnvironmentFiles) and the services without a container.
 *
 * @returns warnings, each prefixed `unit <name>:` — required files that are missing, paths that cannot
 *   be resolved here, and one per service without a container.
 */
async function describeComposeProject(u: Unit, load: LoadFacts): Promise<string[]> {
  const warnings: string[] = [];
  const first = u.composeConfigFiles[0];
  const projectDir = u.composeWorkingDir ?? (first === undefined ? undefined : path.dirname(first));
  if (projectDir === undefined) return warnings;
  const project = await readComposeProject(u.composeConfigFiles, projectDir, load);

  const deps = dependenciesByService(project.services);
  for (const c of u.containers) {
    // Compose v1 sets no depends_on label: its files are all there is.
    if (c.labels[LABEL_DEPENDS_ON] !== undefined || c.composeService === undefined) continue;
    c.dependencies = deps.get(c.composeService) ?? [];
    c.dependsOn = c.dependencies.map((d) => d.service);
  }

  const envFiles = [
    ...new Set(
      u.containers.flatMap((c) => environmentFilesOf(c.labels).map((f) => path.resolve(projectDir, f))),
    ),
  ];
  // Compose reads <project dir>/.env unless --env-file names others.
  const projectEnv =
    envFiles.length > 0
      ? envFiles.map((file) => ({ file, required: true, what: 'the --env-file of the project' }))
      : [{ file: path.join(projectDir, '.env'), required: false, what: 'the env file of the project' }];
  const refs: ProjectRef[] = [...projectEnv, ...project.refs];
  const configFiles = new Set(u.composeConfigFiles);
  const referenced: string[] = [];
  const reported = new Set<string>();
  for (const r of refs) {
    if (configFiles.has(r.file) || referenced.includes(r.file) || reported.has(r.file)) continue;
    if (await isFile(r.file)) referenced.push(r.file);
    else if (r.required) {
      reported.add(r.file);
      warnings.push(
        `unit ${u.name}: ${r.file} (${r.what}) does not exist on this host; its recipe will lack it`,
      );
    }
  }
  u.composeReferencedFiles = referenced;
  u.composeEnvironmentFiles = envFiles.filter((f) => referenced.includes(f));
  for (const p of project.unresolved) {
    warnings.push(
      `unit ${u.name}: cannot tell which file ${p} names without Compose's environment; its recipe will lack it`,
    );
  }

  const present = new Set(u.containers.map((c) => c.composeService).filter((s) => s !== undefined));
  u.servicesWithoutContainers = servicesWithoutContainers(project.services, present);
  for (const s of u.servicesWithoutContainers) {
    warnings.push(`unit ${u.name}: ${serviceWithoutContainerWarning(s)}`);
  }
  return warnings;
}

/**
 * All units on the host. Warnings (reported, never fatal): containers that vanished mid-discovery,
 * Compose files named by labels but missing or unreadable, files the Compose files name that are
 * missing or cannot be resolved, services without a container (e.g. an inactive profile), projects
 * whose members disagree on their working directory, and binds that look like data but are skipped
 * because they overlap the repository or Docker's data root.
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

  // Every Compose file is read once, however many units and includes name it.
  const parsed = new Map<string, Promise<ComposeFileFacts | undefined>>();
  const missing = new Set<string>();
  const load: LoadFacts = (file) => {
    let p = parsed.get(file);
    if (!p) {
      p = (async () => {
        if (!(await exists(file))) {
          missing.add(file);
          return undefined;
        }
        try {
          return composeFileFacts(parseYaml(await readFile(file, 'utf8'), { merge: true }));
        } catch (err) {
          warnings.push(`cannot read compose file ${file}: ${errorMessage(err)}`);
          return undefined;
        }
      })();
      parsed.set(file, p);
    }
    return p;
  };

  const units = groupUnits(containers);
  for (const u of units) {
    if (u.kind === 'stack') warnings.push(...(await describeComposeProject(u, load)));
  }
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
