/**
 * Pure unit logic: grouping containers into units, classifying bind mounts, and the order in which a
 * unit's containers are stopped and started. No I/O here (node:path's posix helpers are string work).
 */
import path from 'node:path';
import type { ContainerInfo, NamespaceJoin, Unit, VolumeBacking } from './model.js';

// ---------------------------------------------------------------------------------------------------
// Grouping

/** Suffix given to a standalone container's unit when its name is already a Compose project's unit. */
export const STANDALONE_SUFFIX = '.container';

function byName<T extends { name: string }>(a: T, b: T): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** Items in order of first appearance, without repeats. */
function unique(items: Iterable<string>): string[] {
  return [...new Set(items)];
}

/**
 * One unit per Compose project (every container carrying its project label, running or not) and one
 * per standalone container. Units and their containers are sorted by name.
 *
 * Name rule: a project's unit is the project name. A standalone container's unit is the container name,
 * unless that name is already taken by a project (or by another unit), in which case it becomes
 * `<name>.container`, then `<name>.container.2`, `.3`, … until unique. Compose project names never
 * contain a dot (v1 strips it, v2 rejects it), so `<name>.container` can only collide with another
 * container literally called that, and a unit's name stays stable as long as the set of names does.
 */
export function groupUnits(containers: ContainerInfo[]): Unit[] {
  const projects = new Map<string, ContainerInfo[]>();
  const standalone: ContainerInfo[] = [];
  for (const c of containers) {
    if (c.composeProject !== undefined && c.composeProject !== '') {
      const list = projects.get(c.composeProject) ?? [];
      list.push(c);
      projects.set(c.composeProject, list);
    } else {
      standalone.push(c);
    }
  }

  const units: Unit[] = [];
  for (const [project, members] of projects) {
    const sorted = [...members].sort(byName);
    units.push({
      name: project,
      kind: 'stack',
      containers: sorted,
      // Members of one project normally agree; when they don't (two directories using the same project
      // name) the first container by name decides and discovery reports the disagreement.
      composeWorkingDir: sorted.find((c) => c.composeWorkingDir !== undefined)?.composeWorkingDir,
      composeConfigFiles: unique(sorted.flatMap((c) => c.composeConfigFiles)),
      missingConfigFiles: [],
    });
  }

  // Names taken first: projects, then standalone containers whose own name is free. Colliding
  // containers are suffixed afterwards, so a suffix never steals a name a container has as its own.
  const taken = new Set(projects.keys());
  const sortedStandalone = [...standalone].sort(byName);
  const colliding: ContainerInfo[] = [];
  const assigned = new Map<ContainerInfo, string>();
  for (const c of sortedStandalone) {
    if (taken.has(c.name)) colliding.push(c);
    else {
      taken.add(c.name);
      assigned.set(c, c.name);
    }
  }
  for (const c of colliding) {
    let candidate = `${c.name}${STANDALONE_SUFFIX}`;
    for (let n = 2; taken.has(candidate); n++) candidate = `${c.name}${STANDALONE_SUFFIX}.${n}`;
    taken.add(candidate);
    assigned.set(c, candidate);
  }
  for (const c of sortedStandalone) {
    units.push({
      name: assigned.get(c) ?? c.name,
      kind: 'standalone',
      containers: [c],
      composeWorkingDir: undefined,
      composeConfigFiles: [],
      missingConfigFiles: [],
    });
  }
  return units.sort(byName);
}

// ---------------------------------------------------------------------------------------------------
// Bind classification

export type BindClassification = 'data' | 'host-internal';

export interface BindContext {
  /** Docker's data root (`docker info` → DockerRootDir). */
  dockerRootDir: string;
  /** The Kopia filesystem repository. */
  repositoryPath: string;
  /** More host paths (and everything under them) never to back up. */
  extraHostInternal?: string[];
}

/** Pseudo filesystems and runtime state: never data, and walking them can hang or explode. */
const SYSTEM_TREES = ['/proc', '/sys', '/dev', '/run', '/var/run'];
/** Single host files containers commonly bind for time and name resolution. */
const HOST_FILES = ['/etc/localtime', '/etc/timezone', '/etc/hosts', '/etc/resolv.conf'];

function norm(p: string): string {
  const n = path.posix.normalize(p);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

/** `p` is `root` or lies below it. */
export function isSameOrUnder(p: string, root: string): boolean {
  const a = norm(p);
  const b = norm(root);
  if (b === '/') return true;
  return a === b || a.startsWith(`${b}/`);
}

/**
 * Why a bind source is host-internal, or undefined when it is data. The reason is for messages
 * ("not backed up because …").
 *
 * Host-internal: `/` itself; /proc, /sys, /dev, /run, /var/run and below; Docker's data root, below it,
 * or a parent of it (snapshotting a parent would walk every image layer and every other unit's
 * volumes); anything ending in docker.sock; the repository, anything under it, or any parent of it (a
 * parent would make Kopia back up the repository into itself); /etc/localtime, /etc/timezone,
 * /etc/hosts, /etc/resolv.conf; and `extraHostInternal` paths and below.
 *
 * Paths are compared as strings: callers that care about symlinks pass resolved paths.
 */
export function hostInternalReason(source: string, ctx: BindContext): string | undefined {
  const p = norm(source);
  if (p === '/') return 'the host root filesystem';
  for (const t of SYSTEM_TREES) if (isSameOrUnder(p, t)) return `system path ${t}`;
  if (p.endsWith('docker.sock')) return 'the Docker socket';
  if (HOST_FILES.includes(p)) return `host file ${p}`;
  if (ctx.repositoryPath !== '') {
    if (isSameOrUnder(p, ctx.repositoryPath)) return 'inside the Kopia repository';
    if (isSameOrUnder(ctx.repositoryPath, p)) return 'a parent of the Kopia repository';
  }
  if (ctx.dockerRootDir !== '') {
    if (isSameOrUnder(p, ctx.dockerRootDir)) return "inside Docker's data root";
    if (isSameOrUnder(ctx.dockerRootDir, p)) return "a parent of Docker's data root";
  }
  for (const x of ctx.extraHostInternal ?? []) {
    if (x !== '' && isSameOrUnder(p, x)) return `configured as host-internal (${x})`;
  }
  return undefined;
}

/** 'host-internal' for binds that are part of the host or of kopi-docka itself; everything else is data. */
export function classifyBind(source: string, ctx: BindContext): BindClassification {
  return hostInternalReason(source, ctx) === undefined ? 'data' : 'host-internal';
}

// ---------------------------------------------------------------------------------------------------
// Volumes

/** Label Docker (Engine 23+) puts on a volume it created for an unnamed mount. */
export const LABEL_ANONYMOUS_VOLUME = 'com.docker.volume.anonymous';

/**
 * An anonymous volume: labelled so by the engine, or (older engines set no label) named with the 64
 * lowercase hex digits Docker generates. A person naming a volume like that is not a case worth a miss.
 */
export function isAnonymousVolume(name: string, labels: Readonly<Record<string, string>>): boolean {
  return Object.hasOwn(labels, LABEL_ANONYMOUS_VOLUME) || /^[0-9a-f]{64}$/.test(name);
}

/**
 * Where a volume's data lives, from its driver and driver options (Docker's `Options`: `type`, `o`,
 * `device`, as the local driver passes them to mount(2)). Only the local driver is judged; other
 * drivers are `directory` here and refused elsewhere for not being local.
 *
 * - no `type`/`device`: `directory`;
 * - `o` lists `bind` or `rbind` and `device` is absolute: `bind` (mount(2) ignores the type then);
 * - `type` tmpfs: `tmpfs`;
 * - anything else (nfs, nfs4, cifs, a block device, a bind to a relative path): `mount`.
 */
export function volumeBacking(driver: string, options: Readonly<Record<string, string>>): VolumeBacking {
  const type = (options.type ?? '').trim();
  const device = (options.device ?? '').trim();
  if (driver !== 'local' || (type === '' && device === '')) return { kind: 'directory' };
  const flags = (options.o ?? '').split(',').map((f) => f.trim());
  if ((flags.includes('bind') || flags.includes('rbind')) && path.posix.isAbsolute(device)) {
    return { kind: 'bind', device: norm(device) };
  }
  if (type === 'tmpfs') return { kind: 'tmpfs' };
  return { kind: 'mount', type: type || '(none)', device };
}

// ---------------------------------------------------------------------------------------------------
// Shared namespaces

/**
 * The namespaces a container joins, from its HostConfig: `NetworkMode`, `PidMode`, `IpcMode` of the
 * form `container:<id or name>` (Compose's `network_mode: service:x` arrives here as `container:<id>`).
 */
export function namespaceJoins(hostConfig: {
  NetworkMode?: unknown;
  PidMode?: unknown;
  IpcMode?: unknown;
}): NamespaceJoin[] {
  const out: NamespaceJoin[] = [];
  const modes: [NamespaceJoin['namespace'], unknown][] = [
    ['network', hostConfig.NetworkMode],
    ['pid', hostConfig.PidMode],
    ['ipc', hostConfig.IpcMode],
  ];
  for (const [namespace, mode] of modes) {
    if (typeof mode === 'string' && mode.startsWith('container:') && mode.length > 'container:'.length) {
      out.push({ namespace, target: mode.slice('container:'.length) });
    }
  }
  return out;
}

/** `target` (an ID, an ID prefix of 12+ digits, or a name, as Docker records joins) names container c. */
export function refersTo(target: string, c: Pick<ContainerInfo, 'id' | 'name'>): boolean {
  const t = target.replace(/^\//, '');
  return c.id === t || c.name === t || (t.length >= 12 && c.id.startsWith(t));
}

// ---------------------------------------------------------------------------------------------------
// Ordering

/**
 * The unit's containers in start order: every container after the containers of the services it
 * depends on (Compose `depends_on`, matched by service name) and after the containers whose network,
 * PID or IPC namespace it joins (Docker refuses to start it before them). Never throws. Ties are
 * broken by container name, so the order is stable. Containers in a dependency cycle start together,
 * in name order, after everything the cycle depends on and before everything that depends on the
 * cycle. Dependencies on services or containers outside the unit are ignored.
 */
export function startOrder(unit: Unit): ContainerInfo[] {
  return startOrderOf(unit.containers);
}

/**
 * startOrder for any set of containers, possibly from several units (a unit's own containers plus
 * other units' containers stopped with it): a service dependency only counts within one Compose
 * project, so two projects' `db` services are never confused.
 */
export function startOrderOf(list: readonly ContainerInfo[]): ContainerInfo[] {
  const containers = [...list].sort(byName);
  const byService = new Map<string, number[]>();
  const serviceKey = (project: string | undefined, svc: string) => `${project ?? ''}\u0000${svc}`;
  containers.forEach((c, i) => {
    if (c.composeService === undefined) return;
    const k = serviceKey(c.composeProject, c.composeService);
    byService.set(k, [...(byService.get(k) ?? []), i]);
  });
  const deps: number[][] = containers.map((c, i) => [
    ...new Set(
      [
        ...c.dependsOn.flatMap((svc) => byService.get(serviceKey(c.composeProject, svc)) ?? []),
        ...(c.joins ?? []).flatMap((j) => containers.flatMap((o, k) => (refersTo(j.target, o) ? [k] : []))),
      ].filter((d) => d !== i),
    ),
  ]);

  // Tarjan's strongly connected components: each cycle collapses into one component.
  const comp = new Array<number>(containers.length).fill(-1);
  const index = new Array<number>(containers.length).fill(-1);
  const low = new Array<number>(containers.length).fill(0);
  const onStack = new Array<boolean>(containers.length).fill(false);
  const stack: number[] = [];
  let counter = 0;
  let comps = 0;
  const visit = (v: number): void => {
    index[v] = low[v] = counter++;
    stack.push(v);
    onStack[v] = true;
    for (const w of deps[v] ?? []) {
      if (index[w] === -1) {
        visit(w);
        low[v] = Math.min(low[v] ?? 0, low[w] ?? 0);
      } else if (onStack[w]) {
        low[v] = Math.min(low[v] ?? 0, index[w] ?? 0);
      }
    }
    if (low[v] === index[v]) {
      for (let w = stack.pop(); w !== undefined; w = stack.pop()) {
        onStack[w] = false;
        comp[w] = comps;
        if (w === v) break;
      }
      comps++;
    }
  };
  for (let v = 0; v < containers.length; v++) if (index[v] === -1) visit(v);

  // Kahn over the components; among the ready ones the one holding the smallest name goes first.
  const members: number[][] = Array.from({ length: comps }, () => []);
  containers.forEach((_c, i) => members[comp[i] ?? 0]?.push(i)); // indexes ascend = names ascend
  const compDeps = members.map(
    (ms, k) =>
      new Set(
        ms
          .flatMap((m) => deps[m] ?? [])
          .map((d) => comp[d])
          .filter((x) => x !== k),
      ),
  );
  const done = new Set<number>();
  const order: ContainerInfo[] = [];
  while (done.size < comps) {
    let next: number | undefined;
    for (let k = 0; k < comps; k++) {
      if (done.has(k) || ![...(compDeps[k] ?? [])].every((d) => d !== undefined && done.has(d))) continue;
      if (next === undefined || (members[k]?.[0] ?? 0) < (members[next]?.[0] ?? 0)) next = k;
    }
    // The condensation is acyclic, so something is always ready; the guard only satisfies the types.
    if (next === undefined) break;
    done.add(next);
    for (const m of members[next] ?? []) order.push(containers[m] as ContainerInfo);
  }
  return order;
}

/**
 * The unit's one-shot services: those another container of the unit depends on with
 * `service_completed_successfully` (Compose runs them to completion before starting their
 * dependants; `restart: "no"` and exit 0 is their healthy end state). Matched by service name.
 */
export function oneShotServices(unit: Unit): Set<string> {
  const out = new Set<string>();
  for (const c of unit.containers) {
    for (const d of c.dependencies ?? []) {
      if (d.condition === 'service_completed_successfully') out.add(d.service);
    }
  }
  return out;
}

/**
 * A one-shot container (see oneShotServices) that has run to completion: exited with code 0. It is
 * done, not down — a backup neither starts it again nor counts it as left stopped.
 */
export function isCompletedOneShot(c: ContainerInfo, oneShots: ReadonlySet<string>): boolean {
  return (
    c.composeService !== undefined &&
    oneShots.has(c.composeService) &&
    !c.running &&
    c.state === 'exited' &&
    c.exitCode === 0
  );
}

/** The reverse of startOrder: dependants stop before what they depend on. */
export function stopOrder(unit: Unit): ContainerInfo[] {
  return startOrder(unit).reverse();
}
