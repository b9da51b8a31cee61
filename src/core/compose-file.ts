/**
 * Pure reading of Compose files, as far as a backup cares: which services a project declares (with
 * their profiles, scale and dependency conditions), and which other files the project needs to be
 * brought up again — `include:`d Compose files, `env_file:`s, `extends.file`s and the env files of an
 * include. Also the v2 `com.docker.compose.depends_on` label. No I/O: callers parse the YAML and
 * read the files; paths are resolved as strings (node:path's posix helpers).
 *
 * Relative paths follow Compose v2 (compose-go): in a project's own files they are relative to the
 * project directory (the `com.docker.compose.project.working_dir` label); an `include:` path and its
 * `env_file` are relative to the including project's directory, and the included file gets its own
 * project directory (`project_directory`, else the directory of its first file) for everything it
 * names. Compose v1 resolves paths of its (single) project the same way.
 */
import path from 'node:path';

export type DependsOnCondition = 'service_started' | 'service_healthy' | 'service_completed_successfully';

/** One `depends_on` edge (links, volumes_from and `service:` namespaces count as service_started). */
export interface ServiceDependency {
  service: string;
  condition: DependsOnCondition;
}

/** A file a service or an include names, exactly as written (not resolved). */
export interface FileRef {
  path: string;
  /** False for `env_file: [{path: x, required: false}]`: Compose itself tolerates its absence. */
  required: boolean;
}

/** What one Compose file says about one service. */
export interface ComposeServiceFacts {
  name: string;
  /** `profiles:` (empty: always active). */
  profiles: string[];
  /** `scale:` or `deploy.replicas:` when given as a number; undefined otherwise. */
  scale: number | undefined;
  dependencies: ServiceDependency[];
  envFiles: FileRef[];
  /** `extends.file`, as written; undefined for `extends` within the same file or no `extends`. */
  extendsFile: string | undefined;
}

/** One entry of the top-level `include:` (short form `- path` or long form `- path: …`). */
export interface ComposeIncludeFacts {
  /** The included file(s), as written: the first is the main one, the others override it. */
  paths: string[];
  projectDirectory: string | undefined;
  /** `env_file:` of the include, as written (used by Compose to interpolate the included file). */
  envFiles: string[];
}

export interface ComposeFileFacts {
  services: ComposeServiceFacts[];
  includes: ComposeIncludeFacts[];
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const strings = (v: unknown): string[] =>
  typeof v === 'string' ? [v] : Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];

const CONDITIONS: readonly DependsOnCondition[] = [
  'service_started',
  'service_healthy',
  'service_completed_successfully',
];

/** A condition as written, or `service_started` (Compose's default) for anything else. */
export function toCondition(v: unknown): DependsOnCondition {
  return CONDITIONS.find((c) => c === v) ?? 'service_started';
}

/** One edge per service: when a service is named twice the strictest condition wins (CONDITIONS order). */
function addStrictest(into: Map<string, DependsOnCondition>, d: ServiceDependency): void {
  const prev = into.get(d.service);
  if (prev === undefined || CONDITIONS.indexOf(d.condition) > CONDITIONS.indexOf(prev)) {
    into.set(d.service, d.condition);
  }
}

const edges = (m: Map<string, DependsOnCondition>): ServiceDependency[] =>
  [...m].map(([service, condition]) => ({ service, condition }));

function envFileRefs(v: unknown): FileRef[] {
  const out: FileRef[] = [];
  for (const e of Array.isArray(v) ? (v as unknown[]) : [v]) {
    if (typeof e === 'string') out.push({ path: e, required: true });
    // Long form (Compose ≥ 2.24): `- path: x` with `required: false` for optional files.
    else if (isObject(e) && typeof e.path === 'string')
      out.push({ path: e.path, required: e.required !== false });
  }
  return out;
}

function serviceFacts(name: string, svc: Json): ComposeServiceFacts {
  const deps: ServiceDependency[] = [];
  const started = (s: string) => deps.push({ service: s, condition: 'service_started' });
  const dependsOn = svc.depends_on;
  if (Array.isArray(dependsOn)) {
    for (const d of dependsOn) if (typeof d === 'string') started(d);
  } else if (isObject(dependsOn)) {
    for (const [dep, spec] of Object.entries(dependsOn)) {
      deps.push({ service: dep, condition: toCondition(isObject(spec) ? spec.condition : undefined) });
    }
  }
  for (const l of strings(svc.links)) started(l.split(':')[0] ?? '');
  for (const v of strings(svc.volumes_from)) {
    if (v.startsWith('container:')) continue;
    started((v.startsWith('service:') ? v.slice('service:'.length) : v).split(':')[0] ?? '');
  }
  for (const key of ['network_mode', 'ipc', 'pid']) {
    const v = svc[key];
    if (typeof v === 'string' && v.startsWith('service:')) started(v.slice('service:'.length));
  }
  const byService = new Map<string, DependsOnCondition>();
  for (const d of deps) if (d.service !== '' && d.service !== name) addStrictest(byService, d);
  const deploy = isObject(svc.deploy) ? svc.deploy : {};
  const scale =
    typeof svc.scale === 'number'
      ? svc.scale
      : typeof deploy.replicas === 'number'
        ? deploy.replicas
        : undefined;
  const ext = svc.extends;
  return {
    name,
    profiles: strings(svc.profiles),
    scale,
    dependencies: edges(byService),
    envFiles: envFileRefs(svc.env_file),
    extendsFile: isObject(ext) && typeof ext.file === 'string' ? ext.file : undefined,
  };
}

/**
 * The facts of one parsed Compose document (YAML already parsed; anything not a mapping yields no
 * facts). Compose file format 1 (no `services:` and no `version:`) has its services at the top level.
 */
export function composeFileFacts(doc: unknown): ComposeFileFacts {
  if (!isObject(doc)) return { services: [], includes: [] };
  const services = isObject(doc.services) ? doc.services : doc.version === undefined ? doc : {};
  const out: ComposeFileFacts = { services: [], includes: [] };
  // Format 1 has no `include:`; in later formats the top-level keys are not services.
  for (const [name, svc] of Object.entries(services)) {
    const topLevel = ['include', 'name', 'volumes', 'networks', 'secrets', 'configs'];
    if (services === doc && (topLevel.includes(name) || name.startsWith('x-'))) continue;
    if (isObject(svc)) out.services.push(serviceFacts(name, svc));
  }
  if (Array.isArray(doc.include)) {
    for (const inc of doc.include as unknown[]) {
      if (typeof inc === 'string')
        out.includes.push({ paths: [inc], projectDirectory: undefined, envFiles: [] });
      else if (isObject(inc)) {
        const paths = strings(inc.path);
        if (paths.length === 0) continue;
        out.includes.push({
          paths,
          projectDirectory: typeof inc.project_directory === 'string' ? inc.project_directory : undefined,
          envFiles: strings(inc.env_file),
        });
      }
    }
  }
  return out;
}

/**
 * service → the services it depends on, from one parsed Compose document. Besides `depends_on` (list or
 * map form) this counts what Compose itself treats as a dependency: `links`, `volumes_from` and
 * `network_mode`/`ipc`/`pid: service:<name>`.
 */
export function composeDependencies(doc: unknown): Map<string, string[]> {
  return new Map(composeFileFacts(doc).services.map((s) => [s.name, s.dependencies.map((d) => d.service)]));
}

/**
 * Dependencies per service over all its declarations (an override file or an included file may add
 * some), one edge per dependency with the strictest condition.
 */
export function dependenciesByService(
  services: readonly ComposeServiceFacts[],
): Map<string, ServiceDependency[]> {
  const out = new Map<string, Map<string, DependsOnCondition>>();
  for (const s of services) {
    const deps = out.get(s.name) ?? new Map<string, DependsOnCondition>();
    for (const d of s.dependencies) addStrictest(deps, d);
    out.set(s.name, deps);
  }
  return new Map([...out].map(([name, deps]) => [name, edges(deps)]));
}

/**
 * The v2 label `com.docker.compose.depends_on` — `svc:condition:restart,other:condition:restart` — as
 * edges, in label order, one per service. An entry without a condition is `service_started`; an empty
 * label (a service without dependencies) gives none.
 */
export function parseDependsOnConditions(label: string): ServiceDependency[] {
  const seen = new Set<string>();
  const out: ServiceDependency[] = [];
  for (const entry of label.split(',')) {
    const [service = '', condition] = entry.trim().split(':');
    if (service === '' || seen.has(service)) continue;
    seen.add(service);
    out.push({ service, condition: toCondition(condition) });
  }
  return out;
}

/**
 * An absolute path for `p` as written in a Compose file, relative to `baseDir`; undefined when it
 * cannot be known without Compose's own environment — `${VAR}`/`$VAR` interpolation, `~` (the home
 * directory of whoever ran Compose) — or is not a local file (a remote include: `oci://…`,
 * `https://…`, `git@…`).
 */
export function resolveComposePath(p: string, baseDir: string): string | undefined {
  if (p.includes('$') || p.startsWith('~') || p.trim() === '') return undefined;
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(p) || p.startsWith('git@')) return undefined;
  return path.posix.resolve(baseDir, p);
}

/** A service the Compose files declare that has no container in the project. */
export interface ServiceWithoutContainer {
  service: string;
  /** Its `profiles:` (empty when it is not in a profile). */
  profiles: string[];
  /** `scale`/`deploy.replicas` when set (0 explains the missing container). */
  scale: number | undefined;
}

/**
 * The services of `declared` (merged over all files; for a service declared twice the later file's
 * profiles/scale win, as in a Compose override) that no container of the project belongs to, in the
 * order declared. These are never backed up: no container means no mounts to find.
 */
export function servicesWithoutContainers(
  declared: readonly ComposeServiceFacts[],
  present: ReadonlySet<string>,
): ServiceWithoutContainer[] {
  const merged = new Map<string, ServiceWithoutContainer>();
  for (const s of declared) {
    const prev = merged.get(s.name);
    merged.set(s.name, {
      service: s.name,
      profiles: s.profiles.length > 0 ? s.profiles : (prev?.profiles ?? []),
      scale: s.scale ?? prev?.scale,
    });
  }
  return [...merged.values()].filter((s) => !present.has(s.service));
}

/** Why a service has no container, for messages: "in inactive profile debug", "scaled to 0", … */
export function whyNoContainer(s: ServiceWithoutContainer): string {
  if (s.profiles.length > 0) {
    return `in profile${s.profiles.length > 1 ? 's' : ''} ${s.profiles.join(', ')}, not active`;
  }
  if (s.scale === 0) return 'scaled to 0';
  return 'never created, or removed';
}

/**
 * The warning for such a service (the same text in `list`, the dry-run plan and the run record):
 * `service debug has no container (in profile debug, not active): it is not running and nothing of
 * it is backed up`.
 */
export function serviceWithoutContainerWarning(s: ServiceWithoutContainer): string {
  return `service ${s.service} has no container (${whyNoContainer(s)}): it is not running and nothing of it is backed up`;
}
