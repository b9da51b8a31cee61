/**
 * A small typed client for the Docker Engine API, spoken over HTTP on the daemon's unix socket (or a
 * plain-HTTP tcp:// endpoint). No shelling out to `docker`: the CLI's output format is not a contract,
 * and the API gives us status codes and the daemon's own error messages.
 *
 * Every call has a timeout (default 30 s) and accepts an AbortSignal, because this client is also used
 * while a unit's containers are down, where a hung daemon must not mean unbounded downtime.
 *
 * The JSON we read is typed with narrow interfaces (only what we use); the raw documents stay
 * available (`ContainerInspect` keeps every field, `VolumeInfo.raw`) for recipes.
 */
import http from 'node:http';
import { dockerHostFromEnv } from '../config/docker-host.js';
import { DockerError } from '../errors.js';

export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';
/** Oldest Engine API we support: Docker 20.10 (Debian 12's docker.io). */
export const MIN_API_VERSION = '1.41';
/**
 * Newest Engine API we speak: the current moby engine the test suite runs against (Engine 29 era;
 * Engine 29 refuses anything below 1.44). A newer daemon still serves this version, so we keep the
 * behaviour we tested; a daemon whose minimum is above it is refused with a clear message.
 */
export const MAX_API_VERSION = '1.56';
export const DEFAULT_TIMEOUT_MS = 30_000;
/** How often waitRunning/waitHealthy look at the container. */
export const POLL_INTERVAL_MS = 500;
/** Extra HTTP time on top of the stop timeout: the daemon answers only after the container is down. */
const STOP_HTTP_GRACE_MS = 30_000;
/** A response larger than this is refused instead of buffered without bound. */
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------------
// Public types

export interface CallOptions {
  /** Milliseconds before the call is abandoned (default 30 s). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface WaitOptions {
  /** Overall deadline in milliseconds. */
  timeoutMs: number;
  signal?: AbortSignal;
}

export type DockerEndpoint =
  | { kind: 'unix'; socketPath: string; display: string }
  | { kind: 'tcp'; host: string; port: number; display: string };

export interface DockerVersion {
  /** Engine version, e.g. "20.10.24+dfsg1". */
  version: string;
  /** The daemon's newest API version, e.g. "1.41". */
  apiVersion: string;
  minApiVersion: string | undefined;
  os: string | undefined;
  arch: string | undefined;
}

export interface DockerInfo {
  /** Docker's data root (`docker info` → Docker Root Dir), e.g. /var/lib/docker. */
  dockerRootDir: string;
  serverVersion: string | undefined;
  /** The daemon host's name. */
  name: string | undefined;
  operatingSystem: string | undefined;
  storageDriver: string | undefined;
  containers: number | undefined;
  containersRunning: number | undefined;
}

export interface ContainerSummary {
  id: string;
  /** First name without the leading "/". */
  name: string;
  image: string;
  imageId: string;
  /** running, exited, created, paused, restarting, dead. */
  state: string;
  /** Human status, e.g. "Up 3 minutes (healthy)". */
  status: string;
  labels: Record<string, string>;
}

export interface VolumeInfo {
  name: string;
  driver: string;
  /** Host path of the volume's data (…/volumes/<name>/_data for the local driver). */
  mountpoint: string;
  labels: Record<string, string>;
  options: Record<string, string>;
  scope: string | undefined;
  createdAt: string | undefined;
  /** The daemon's full document. */
  raw: Record<string, unknown>;
}

/** One entry of State.Health.Log. */
export interface HealthLogJson {
  Start?: string;
  End?: string;
  ExitCode?: number;
  Output?: string;
}

export interface ContainerStateJson {
  Status: string;
  Running: boolean;
  Paused?: boolean;
  Restarting?: boolean;
  OOMKilled?: boolean;
  Dead?: boolean;
  ExitCode?: number;
  Error?: string;
  StartedAt?: string;
  FinishedAt?: string;
  Health?: { Status: string; FailingStreak?: number; Log?: HealthLogJson[] | null } | null;
}

export interface MountJson {
  /** volume, bind, tmpfs, npipe, cluster. */
  Type: string;
  Name?: string;
  Source: string;
  Destination: string;
  Driver?: string;
  Mode?: string;
  RW: boolean;
  Propagation?: string;
}

export interface ContainerConfigJson {
  Image: string;
  Labels?: Record<string, string> | null;
  Healthcheck?: { Test?: string[] | null } | null;
  StopTimeout?: number | null;
  StopSignal?: string;
  [key: string]: unknown;
}

/** The part of HostConfig kopi-docka reads; the rest stays untyped. */
export interface HostConfigJson {
  /** `container:<id>` when it shares another container's network namespace. */
  NetworkMode?: string;
  /** `container:<id>` when it shares another container's PID namespace. */
  PidMode?: string;
  /** `container:<id>` when it shares another container's IPC namespace. */
  IpcMode?: string;
  /** `docker run --rm`: the daemon removes the container when it stops. */
  AutoRemove?: boolean;
  RestartPolicy?: { Name?: string; MaximumRetryCount?: number } | null;
  [key: string]: unknown;
}

/** `GET /containers/{id}/json` in the daemon's own field names; fields we don't read stay untyped. */
export interface ContainerInspect {
  Id: string;
  /** With the leading "/". */
  Name: string;
  /** Image ID (sha256:…); the name the user asked for is Config.Image. */
  Image: string;
  State: ContainerStateJson;
  Config: ContainerConfigJson;
  HostConfig?: HostConfigJson | null;
  Mounts?: MountJson[] | null;
  [key: string]: unknown;
}

export interface DockerClient {
  /** The endpoint in DOCKER_HOST form, for messages. */
  readonly endpoint: string;
  ping(opts?: CallOptions): Promise<void>;
  version(opts?: CallOptions): Promise<DockerVersion>;
  /**
   * The Engine API version this client speaks with the daemon (negotiated once from `GET /version`,
   * see negotiateApiVersion), e.g. "1.44". Throws DockerError like any call when it cannot be agreed.
   */
  apiVersion(opts?: CallOptions): Promise<string>;
  info(opts?: CallOptions): Promise<DockerInfo>;
  listContainers(
    query?: { all?: boolean; filters?: Record<string, string[]> },
    opts?: CallOptions,
  ): Promise<ContainerSummary[]>;
  inspectContainer(id: string, opts?: CallOptions): Promise<ContainerInspect>;
  inspectVolume(name: string, opts?: CallOptions): Promise<VolumeInfo>;
  listVolumes(opts?: CallOptions): Promise<VolumeInfo[]>;
  /** The image's RepoDigests (`name@sha256:…`); empty for images built or imported locally. */
  imageDigests(imageId: string, opts?: CallOptions): Promise<string[]>;
  /**
   * Graceful stop (SIGTERM, SIGKILL after `timeoutSec`). Resolves true when it stopped the container,
   * false when it was not running (HTTP 304). The HTTP timeout is at least timeoutSec + 30 s.
   */
  stopContainer(id: string, timeoutSec: number, opts?: CallOptions): Promise<boolean>;
  /** Resolves true when it started the container, false when it was already running (HTTP 304). */
  startContainer(id: string, opts?: CallOptions): Promise<boolean>;
  /** Polls until State.Running; throws ContainerStateError when it exited/died or on the deadline. */
  waitRunning(id: string, opts: WaitOptions): Promise<ContainerInspect>;
  /**
   * Polls until healthy (State.Health.Status "healthy"; without a healthcheck: running). Throws
   * ContainerStateError when it is unhealthy, exited/died, or on the deadline.
   */
  waitHealthy(id: string, opts: WaitOptions): Promise<ContainerInspect>;
  /** Closes idle keep-alive connections. */
  close(): void;
}

/** A container did not reach the state we waited for. Names the container, its state and last health output. */
export class ContainerStateError extends DockerError {
  readonly container: string;
  readonly state: string;
  readonly health: string | undefined;
  readonly lastHealthOutput: string | undefined;
  readonly timedOut: boolean;
  constructor(
    message: string,
    info: {
      container: string;
      state: string;
      health: string | undefined;
      lastHealthOutput: string | undefined;
      timedOut: boolean;
    },
  ) {
    super(message, { hint: `look at its logs: docker logs --tail 50 ${info.container}` });
    this.container = info.container;
    this.state = info.state;
    this.health = info.health;
    this.lastHealthOutput = info.lastHealthOutput;
    this.timedOut = info.timedOut;
  }
}

/** True for a DockerError the daemon answered with 404 (no such container/volume). */
export function isNotFound(err: unknown): boolean {
  return err instanceof DockerError && err.statusCode === 404;
}

// ---------------------------------------------------------------------------------------------------
// Endpoint and version helpers

/** Parses a DOCKER_HOST value; undefined or empty means the default unix socket. */
export function parseDockerHost(value: string | undefined): DockerEndpoint {
  if (value === undefined || value === '') {
    return { kind: 'unix', socketPath: DEFAULT_DOCKER_SOCKET, display: `unix://${DEFAULT_DOCKER_SOCKET}` };
  }
  if (value.startsWith('unix://')) {
    const socketPath = value.slice('unix://'.length);
    if (!socketPath.startsWith('/')) {
      throw new DockerError(`DOCKER_HOST "${value}" does not name an absolute socket path`, {
        hint: 'use the form unix:///var/run/docker.sock',
      });
    }
    return { kind: 'unix', socketPath, display: value };
  }
  if (value.startsWith('tcp://') || value.startsWith('http://')) {
    let url: URL;
    try {
      url = new URL(value.replace(/^tcp:/, 'http:'));
    } catch (err) {
      throw new DockerError(`DOCKER_HOST "${value}" is not a valid address`, {
        hint: 'use the form tcp://host:2375',
        cause: err,
      });
    }
    // URL keeps IPv6 hosts bracketed; node:http wants them bare.
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = url.port === '' ? 2375 : Number(url.port);
    return { kind: 'tcp', host, port, display: `tcp://${url.host}${url.port === '' ? ':2375' : ''}` };
  }
  throw new DockerError(`unsupported DOCKER_HOST "${value}"`, {
    hint: 'kopi-docka speaks to unix:///path/to/docker.sock or tcp://host:port (plain HTTP); ssh:// and TLS are not supported',
  });
}

/** Compares "1.41"-style API versions numerically (1.9 < 1.10). */
export function compareApiVersions(a: string, b: string): number {
  const pa = a.split('.').map((p) => Number.parseInt(p, 10) || 0);
  const pb = b.split('.').map((p) => Number.parseInt(p, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** The range of Engine API versions a daemon accepts, as `GET /version` reports it. */
export interface DaemonApiRange {
  /** ApiVersion: the newest it speaks, e.g. "1.56". */
  max: string;
  /**
   * MinAPIVersion: the oldest it accepts, e.g. "1.44" (Engine 29). Undefined when the daemon does not
   * say (very old daemons): then only its own version is known to be accepted.
   */
  min: string | undefined;
}

const API_VERSION_RE = /^\d+\.\d+$/;

/**
 * The API version to speak with a daemon: the highest version both sides support — at most the
 * daemon's ApiVersion and our MAX_API_VERSION, at least the daemon's MinAPIVersion and our
 * MIN_API_VERSION. Follows the Engine API's versioning rules (a daemon serves every version in
 * [MinAPIVersion, ApiVersion]; `GET /version` is unversioned).
 *
 * @returns e.g. "1.44"
 * @throws DockerError when the daemon's versions are unreadable or the two ranges do not overlap; the
 *   message names both ranges and the hint says what to upgrade.
 */
export function negotiateApiVersion(daemon: DaemonApiRange): string {
  const { max, min } = daemon;
  if (!API_VERSION_RE.test(max) || (min !== undefined && !API_VERSION_RE.test(min))) {
    throw new DockerError(
      `the Docker daemon reported an unreadable API version range (ApiVersion "${max}", MinAPIVersion "${min ?? ''}")`,
      { hint: 'check the daemon with `docker version`; it may not be a Docker Engine' },
    );
  }
  const ours = `${MIN_API_VERSION}–${MAX_API_VERSION}`;
  const theirs = min === undefined ? `up to ${max}` : `${min}–${max}`;
  if (compareApiVersions(max, MIN_API_VERSION) < 0) {
    throw new DockerError(
      `the Docker daemon speaks Engine API ${theirs}, but kopi-docka needs at least ${MIN_API_VERSION} (it speaks ${ours})`,
      { hint: 'upgrade Docker to 20.10 or newer' },
    );
  }
  if (min !== undefined && compareApiVersions(min, MAX_API_VERSION) > 0) {
    throw new DockerError(
      `the Docker daemon accepts only Engine API ${theirs}, newer than any kopi-docka speaks (${ours})`,
      { hint: 'upgrade kopi-docka to a release that supports this Docker Engine' },
    );
  }
  return compareApiVersions(max, MAX_API_VERSION) > 0 ? MAX_API_VERSION : max;
}

// ---------------------------------------------------------------------------------------------------
// JSON narrowing

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(o: Json, key: string): string | undefined {
  const v = o[key];
  return typeof v === 'string' ? v : undefined;
}

function num(o: Json, key: string): number | undefined {
  const v = o[key];
  return typeof v === 'number' ? v : undefined;
}

function stringMap(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (isObject(v)) for (const [k, val] of Object.entries(v)) if (typeof val === 'string') out[k] = val;
  return out;
}

function toVolumeInfo(v: unknown, what: string): VolumeInfo {
  if (!isObject(v) || typeof v.Name !== 'string') {
    throw new DockerError(`unexpected answer from Docker for ${what}: not a volume document`);
  }
  return {
    name: v.Name,
    driver: str(v, 'Driver') ?? 'local',
    mountpoint: str(v, 'Mountpoint') ?? '',
    labels: stringMap(v.Labels),
    options: stringMap(v.Options),
    scope: str(v, 'Scope'),
    createdAt: str(v, 'CreatedAt'),
    raw: v,
  };
}

function toContainerInspect(v: unknown, what: string): ContainerInspect {
  if (
    !isObject(v) ||
    typeof v.Id !== 'string' ||
    typeof v.Name !== 'string' ||
    !isObject(v.State) ||
    typeof v.State.Status !== 'string' ||
    !isObject(v.Config)
  ) {
    throw new DockerError(`unexpected answer from Docker for ${what}: not a container document`);
  }
  // Checked the fields we rely on above; the rest of the document is passed through untouched.
  return v as ContainerInspect;
}

// ---------------------------------------------------------------------------------------------------
// Waiting helpers

function abortReason(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  return r instanceof Error ? r : new DockerError('Docker API call aborted');
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortReason(signal));
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortReason(signal as AbortSignal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The last non-empty line of the newest health check's output, shortened for messages. */
export function lastHealthOutput(c: ContainerInspect): string | undefined {
  const log = c.State.Health?.Log;
  const last = log && log.length > 0 ? log[log.length - 1] : undefined;
  if (!last) return undefined;
  const lines = (last.Output ?? '')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const line = lines[lines.length - 1];
  const text = `exit ${String(last.ExitCode ?? '?')}${line ? `: ${line}` : ''}`;
  return text.length > 300 ? `${text.slice(0, 297)}...` : text;
}

type Verdict = 'ok' | 'wait' | 'fail';

/** Where a container stands relative to "running" (or "healthy"). */
function judge(c: ContainerInspect, want: 'running' | 'healthy'): Verdict {
  const s = c.State;
  // With a restart policy a crashed container passes through "restarting": keep waiting for it.
  if (s.Restarting === true || s.Status === 'restarting') return 'wait';
  if (s.Status === 'exited' || s.Status === 'dead' || s.Dead === true) return 'fail';
  if (!s.Running) return 'wait';
  if (want === 'running') return 'ok';
  const health = s.Health?.Status;
  if (health === undefined || health === 'none') return 'ok';
  if (health === 'healthy') return 'ok';
  if (health === 'unhealthy') return 'fail';
  return 'wait';
}

/** "300 ms", "30 s", "1.5 s". */
function formatMs(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${Number((ms / 1000).toFixed(1))} s`;
}

function describeState(c: ContainerInspect): string {
  const s = c.State;
  const parts = [`state ${s.Status}`];
  if ((s.Status === 'exited' || s.Status === 'dead') && s.ExitCode !== undefined) {
    parts.push(`exit code ${s.ExitCode}`);
  }
  if (s.OOMKilled === true) parts.push('OOM-killed');
  if (s.Error) parts.push(`error: ${s.Error}`);
  if (s.Health?.Status) parts.push(`health ${s.Health.Status}`);
  return parts.join(', ');
}

// ---------------------------------------------------------------------------------------------------
// The client

export interface DockerClientOptions {
  /** DOCKER_HOST-style address; undefined = unix:///var/run/docker.sock. */
  host?: string | undefined;
  /** Default per-call timeout (ms). */
  defaultTimeoutMs?: number;
}

interface RawResponse {
  status: number;
  body: string;
}

interface RequestSpec extends CallOptions {
  query?: Record<string, string>;
  body?: unknown;
}

export class DockerEngineClient implements DockerClient {
  readonly endpoint: string;
  private readonly target: DockerEndpoint;
  private readonly agent: http.Agent;
  private readonly defaultTimeoutMs: number;
  private prefix: Promise<string> | undefined;
  private negotiated: string | undefined;

  constructor(opts: DockerClientOptions = {}) {
    this.target = parseDockerHost(opts.host);
    this.endpoint = this.target.display;
    this.defaultTimeoutMs = opts.defaultTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    // Keep-alive: discovery makes one call per container. Idle sockets are unref'd by node, so they
    // don't keep the process alive.
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  }

  close(): void {
    this.agent.destroy();
  }

  async apiVersion(opts: CallOptions = {}): Promise<string> {
    await this.apiPrefix(opts);
    // Set by apiPrefix once the negotiation succeeded.
    return this.negotiated ?? MIN_API_VERSION;
  }

  async ping(opts: CallOptions = {}): Promise<void> {
    const res = await this.raw('GET', '/_ping', opts);
    if (res.status !== 200) throw this.httpError('GET', '/_ping', res);
  }

  async version(opts: CallOptions = {}): Promise<DockerVersion> {
    const res = await this.raw('GET', '/version', opts);
    if (res.status !== 200) throw this.httpError('GET', '/version', res);
    const v = this.parse(res, 'GET /version');
    const version = isObject(v) ? str(v, 'Version') : undefined;
    const apiVersion = isObject(v) ? str(v, 'ApiVersion') : undefined;
    if (!isObject(v) || version === undefined || apiVersion === undefined) {
      throw new DockerError('unexpected answer from Docker for GET /version (no Version/ApiVersion)');
    }
    return {
      version,
      apiVersion,
      minApiVersion: str(v, 'MinAPIVersion'),
      os: str(v, 'Os'),
      arch: str(v, 'Arch'),
    };
  }

  async info(opts: CallOptions = {}): Promise<DockerInfo> {
    const v = await this.json('GET', '/info', opts);
    const root = isObject(v) ? str(v, 'DockerRootDir') : undefined;
    if (!isObject(v) || root === undefined) {
      throw new DockerError('unexpected answer from Docker for GET /info (no DockerRootDir)');
    }
    return {
      dockerRootDir: root,
      serverVersion: str(v, 'ServerVersion'),
      name: str(v, 'Name'),
      operatingSystem: str(v, 'OperatingSystem'),
      storageDriver: str(v, 'Driver'),
      containers: num(v, 'Containers'),
      containersRunning: num(v, 'ContainersRunning'),
    };
  }

  async listContainers(
    query: { all?: boolean; filters?: Record<string, string[]> } = {},
    opts: CallOptions = {},
  ): Promise<ContainerSummary[]> {
    const q: Record<string, string> = { all: query.all === false ? '0' : '1' };
    if (query.filters) q.filters = JSON.stringify(query.filters);
    const v = await this.json('GET', '/containers/json', { ...opts, query: q });
    if (!Array.isArray(v)) throw new DockerError('unexpected answer from Docker for GET /containers/json');
    const out: ContainerSummary[] = [];
    for (const c of v as unknown[]) {
      if (!isObject(c) || typeof c.Id !== 'string') continue;
      const names = Array.isArray(c.Names) ? c.Names.filter((n): n is string => typeof n === 'string') : [];
      out.push({
        id: c.Id,
        name: (names[0] ?? c.Id.slice(0, 12)).replace(/^\//, ''),
        image: str(c, 'Image') ?? '',
        imageId: str(c, 'ImageID') ?? '',
        state: str(c, 'State') ?? '',
        status: str(c, 'Status') ?? '',
        labels: stringMap(c.Labels),
      });
    }
    return out;
  }

  async inspectContainer(id: string, opts: CallOptions = {}): Promise<ContainerInspect> {
    const path = `/containers/${encodeURIComponent(id)}/json`;
    return toContainerInspect(await this.json('GET', path, opts), `GET ${path}`);
  }

  async inspectVolume(name: string, opts: CallOptions = {}): Promise<VolumeInfo> {
    const path = `/volumes/${encodeURIComponent(name)}`;
    return toVolumeInfo(await this.json('GET', path, opts), `GET ${path}`);
  }

  async listVolumes(opts: CallOptions = {}): Promise<VolumeInfo[]> {
    const v = await this.json('GET', '/volumes', opts);
    if (!isObject(v)) throw new DockerError('unexpected answer from Docker for GET /volumes');
    const vols = Array.isArray(v.Volumes) ? (v.Volumes as unknown[]) : [];
    return vols.map((x) => toVolumeInfo(x, 'GET /volumes'));
  }

  async imageDigests(imageId: string, opts: CallOptions = {}): Promise<string[]> {
    const path = `/images/${encodeURIComponent(imageId)}/json`;
    const v = await this.json('GET', path, opts);
    if (!isObject(v)) throw new DockerError(`unexpected answer from Docker for GET ${path}`);
    return Array.isArray(v.RepoDigests)
      ? v.RepoDigests.filter((d): d is string => typeof d === 'string')
      : [];
  }

  async stopContainer(id: string, timeoutSec: number, opts: CallOptions = {}): Promise<boolean> {
    const t = Math.max(0, Math.ceil(timeoutSec));
    const path = `/containers/${encodeURIComponent(id)}/stop`;
    // The daemon answers only once the container is down (up to t seconds, then SIGKILL): an HTTP
    // timeout shorter than that would abandon a stop that is still going to succeed.
    const timeoutMs = Math.max(opts.timeoutMs ?? 0, t * 1000 + STOP_HTTP_GRACE_MS);
    const res = await this.call('POST', path, { ...opts, timeoutMs, query: { t: String(t) } });
    return res.status !== 304;
  }

  async startContainer(id: string, opts: CallOptions = {}): Promise<boolean> {
    const path = `/containers/${encodeURIComponent(id)}/start`;
    const res = await this.call('POST', path, opts);
    return res.status !== 304;
  }

  waitRunning(id: string, opts: WaitOptions): Promise<ContainerInspect> {
    return this.waitFor(id, 'running', opts);
  }

  waitHealthy(id: string, opts: WaitOptions): Promise<ContainerInspect> {
    return this.waitFor(id, 'healthy', opts);
  }

  // -------------------------------------------------------------------------------------------------

  private async waitFor(
    id: string,
    want: 'running' | 'healthy',
    opts: WaitOptions,
  ): Promise<ContainerInspect> {
    const deadline = Date.now() + opts.timeoutMs;
    for (;;) {
      const remaining = deadline - Date.now();
      const c = await this.inspectContainer(id, {
        timeoutMs: Math.max(1000, Math.min(this.defaultTimeoutMs, remaining)),
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      const verdict = judge(c, want);
      if (verdict === 'ok') return c;
      const name = c.Name.replace(/^\//, '');
      const info = {
        container: name,
        state: c.State.Status,
        health: c.State.Health?.Status,
        lastHealthOutput: lastHealthOutput(c),
      };
      const check = info.lastHealthOutput ? `; last health check: ${info.lastHealthOutput}` : '';
      if (verdict === 'fail') {
        const what =
          want === 'healthy' && c.State.Health?.Status === 'unhealthy' ? 'is unhealthy' : 'stopped';
        throw new ContainerStateError(
          `container ${name} ${what} while waiting for it to become ${want} (${describeState(c)}${check})`,
          { ...info, timedOut: false },
        );
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new ContainerStateError(
          `timed out after ${formatMs(opts.timeoutMs)} waiting for container ${name} to become ${want} (${describeState(c)}${check})`,
          { ...info, timedOut: true },
        );
      }
      await sleep(Math.min(POLL_INTERVAL_MS, left), opts.signal);
    }
  }

  /** The versioned prefix (/v1.xx), negotiated once per client. */
  private apiPrefix(opts: CallOptions): Promise<string> {
    // Only the signal is passed on: the caller's query/timeout belong to its own call, not to /version.
    this.prefix ??= this.version(opts.signal ? { signal: opts.signal } : {}).then(
      (v) => {
        this.negotiated = negotiateApiVersion({ max: v.apiVersion, min: v.minApiVersion });
        return `/v${this.negotiated}`;
      },
      (err: unknown) => {
        // Don't cache a failure (e.g. the caller's abort): the next call may well succeed.
        this.prefix = undefined;
        throw err;
      },
    );
    return this.prefix;
  }

  /** A versioned call; 4xx/5xx become DockerError with the daemon's message. */
  private async call(method: string, path: string, spec: RequestSpec): Promise<RawResponse> {
    const prefix = await this.apiPrefix(spec);
    const res = await this.raw(method, prefix + path, spec, path);
    if (res.status >= 400) throw this.httpError(method, path, res);
    return res;
  }

  private async json(method: string, path: string, spec: RequestSpec): Promise<unknown> {
    return this.parse(await this.call(method, path, spec), `${method} ${path}`);
  }

  private parse(res: RawResponse, what: string): unknown {
    try {
      return JSON.parse(res.body) as unknown;
    } catch (err) {
      throw new DockerError(`unexpected answer from Docker for ${what}: not JSON`, { cause: err });
    }
  }

  private httpError(method: string, path: string, res: RawResponse): DockerError {
    let message = res.body.trim();
    try {
      const v: unknown = JSON.parse(res.body);
      if (isObject(v) && typeof v.message === 'string') message = v.message;
    } catch {
      /* plain-text body: use it as it is */
    }
    if (message === '') message = http.STATUS_CODES[res.status] ?? 'error';
    return new DockerError(`Docker: ${message} (HTTP ${res.status} from ${method} ${path})`, {
      statusCode: res.status,
    });
  }

  private connectionError(err: unknown, method: string, path: string): DockerError {
    const code = isObject(err) ? str(err, 'code') : undefined;
    const where = this.endpoint;
    const sock = this.target.kind === 'unix' ? this.target.socketPath : where;
    const startHint =
      'start the Docker daemon (`systemctl start docker`, or run `dockerd`), or point DOCKER_HOST at the right socket';
    switch (code) {
      case 'ENOENT':
        return new DockerError(`cannot connect to Docker: the socket ${sock} does not exist`, {
          hint: `is Docker running? ${startHint}`,
          cause: err,
        });
      case 'EACCES':
      case 'EPERM':
        return new DockerError(`cannot connect to Docker: permission denied on ${sock}`, {
          hint: 'run kopi-docka as root (e.g. with sudo), or add this user to the docker group (`usermod -aG docker <user>`, then log in again)',
          cause: err,
        });
      case 'ECONNREFUSED':
        return new DockerError(`cannot connect to Docker at ${where}: connection refused`, {
          hint: `is Docker running? ${startHint}`,
          cause: err,
        });
      default: {
        const msg = err instanceof Error ? err.message : String(err);
        return new DockerError(`cannot talk to Docker at ${where} (${method} ${path}): ${msg}`, {
          hint: `check that the Docker daemon is running and healthy (\`systemctl status docker\`)`,
          cause: err,
        });
      }
    }
  }

  /** One HTTP exchange with a deadline and abort; the body is read in full (bounded). */
  private raw(method: string, path: string, spec: RequestSpec, label = path): Promise<RawResponse> {
    const timeoutMs = spec.timeoutMs ?? this.defaultTimeoutMs;
    const signal = spec.signal;
    const qs = spec.query ? `?${new URLSearchParams(spec.query).toString()}` : '';
    const body = spec.body === undefined ? undefined : JSON.stringify(spec.body);
    return new Promise<RawResponse>((resolve, reject) => {
      if (signal?.aborted) {
        reject(abortReason(signal));
        return;
      }
      let settled = false;
      const onAbort = () => {
        finish(() => reject(abortReason(signal as AbortSignal)));
        req.destroy();
      };
      const finish = (fn: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        fn();
      };
      const headers: http.OutgoingHttpHeaders = {};
      if (body !== undefined) {
        headers['Content-Type'] = 'application/json';
        headers['Content-Length'] = Buffer.byteLength(body);
      }
      const where =
        this.target.kind === 'unix'
          ? { socketPath: this.target.socketPath }
          : { host: this.target.host, port: this.target.port };
      const req = http.request({ ...where, agent: this.agent, method, path: path + qs, headers }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_RESPONSE_BYTES) {
            finish(() =>
              reject(
                new DockerError(`Docker's answer to ${method} ${label} exceeded ${MAX_RESPONSE_BYTES} bytes`),
              ),
            );
            req.destroy();
            return;
          }
          chunks.push(c);
        });
        res.on('end', () =>
          finish(() =>
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
          ),
        );
        res.on('error', (err) => finish(() => reject(this.connectionError(err, method, label))));
      });
      req.on('error', (err) => finish(() => reject(this.connectionError(err, method, label))));
      const timer = setTimeout(() => {
        finish(() =>
          reject(
            new DockerError(`Docker did not answer ${method} ${label} within ${formatMs(timeoutMs)}`, {
              hint: 'the Docker daemon is not responding; check `systemctl status docker` and its logs',
            }),
          ),
        );
        req.destroy();
      }, timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      req.end(body);
    });
  }
}

/** The client every command uses: DOCKER_HOST from the environment, else the default socket. */
export function createDocker(opts: { defaultTimeoutMs?: number } = {}): DockerClient {
  return new DockerEngineClient({ host: dockerHostFromEnv(), ...opts });
}
