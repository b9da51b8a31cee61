/**
 * The pre-flight checks — one set, used by `check` (OK/FAIL and an exit code), `doctor` (which adds
 * more), `init` (Docker and kopia before creating anything), `backup --dry-run` (reported with the
 * plan, same exit code as the run would have) and the run itself (nothing is stopped unless all pass):
 * Docker reachable and speaking an Engine API version kopi-docka supports, kopia present and new
 * enough, GNU tar present, the repository connected to the configured backend (reachability and
 * latency: the time of `kopia repository status`), writable (filesystem: a file is really created and
 * removed there, with free space; other backends: status success is the check), and no other run
 * holding the lock.
 */
import { randomBytes } from 'node:crypto';
import { rm, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  MAX_API_VERSION,
  MIN_API_VERSION,
  createDocker,
  type DaemonApiRange,
  type DockerClient,
} from '../adapters/docker.js';
import { type Kopia, KopiaError } from '../adapters/kopia.js';
import { run, which } from '../adapters/process.js';
import type { Config } from '../config/types.js';
import { formatBytes } from '../core/bytes.js';
import { ExitCode, KopiDockaError, errorMessage } from '../errors.js';
import { processAlive, readLock } from './lock.js';

type Kind = 'dependency' | 'docker' | 'repository' | 'lock';

export interface CheckItem {
  name: string;
  ok: boolean;
  /** 'skipped' items are FAIL too: they could not be checked because something they need failed. */
  skipped?: boolean;
  kind: Kind;
  detail: string;
  hint?: string;
  /** Only on an OK docker item. */
  docker?: DockerFacts;
  /** Only on the repository item (when kopia could be asked): the backend and how it answered. */
  repository?: RepositoryFacts;
}

/**
 * What the repository check learnt: the configured backend (`describeBackend`, no secrets) and the
 * wall time of `kopia repository status --json` in ms — reachability and latency in one real call
 * (it opens the repository: reads its format blob from the storage).
 */
export interface RepositoryFacts {
  backend: string;
  kind: string;
  /** Is the Kopia config connected at all (false: the storage was not asked)? */
  connected: boolean;
  /** Did the storage answer `repository status` (it opened the repository)? */
  reachable: boolean;
  latencyMs: number;
}

const EXIT: Record<Kind, number> = {
  dependency: ExitCode.DEPENDENCY,
  docker: ExitCode.DOCKER,
  repository: ExitCode.REPOSITORY,
  lock: ExitCode.LOCKED,
};

/** Below this much free space on the repository's filesystem a backup is not started (bytes). */
export const MIN_FREE_BYTES = 100 * 1024 * 1024;

function hintOf(err: unknown): string | undefined {
  return err instanceof KopiDockaError ? err.hint : undefined;
}

/**
 * What `doctor` reports about the Docker daemon, gathered by the docker check so that it is asked once.
 * Present on the docker item only when that check is OK.
 */
export interface DockerFacts {
  /** Engine version, e.g. "20.10.24+dfsg1" or "29.0.1". */
  engineVersion: string;
  /** The Engine API version kopi-docka negotiated and speaks with this daemon, e.g. "1.41". */
  apiVersion: string;
  /** The daemon's accepted API range: max = its ApiVersion, min = its MinAPIVersion (undefined: not said). */
  daemonApi: DaemonApiRange;
  /** `docker info` → Storage Driver, e.g. "overlay2"; undefined when the daemon does not say. */
  storageDriver: string | undefined;
  /** e.g. "Debian GNU/Linux 12 (bookworm)"; undefined when the daemon does not say. */
  operatingSystem: string | undefined;
  /** e.g. "linux/amd64"; undefined when the daemon does not say. */
  platform: string | undefined;
}

/** A FAIL docker item; the error's own hint wins over `hint`. */
function dockerFail(docker: DockerClient, what: string, err: unknown, hint: string): CheckItem {
  return {
    name: 'docker',
    kind: 'docker',
    ok: false,
    detail: `${what} at ${docker.endpoint}: ${errorMessage(err)}`,
    hint: hintOf(err) ?? hint,
  };
}

/**
 * Reachable, and does it take kopi-docka's API version? The version is negotiated from the daemon's
 * range and then used for one real versioned call (GET /info): a daemon outside kopi-docka's range
 * (e.g. one that refuses clients below 1.44 while kopi-docka is too old) fails here, not mid-backup.
 */
async function checkDocker(): Promise<CheckItem> {
  const docker = createDocker({ defaultTimeoutMs: 10_000 });
  try {
    try {
      await docker.ping();
    } catch (err) {
      return dockerFail(
        docker,
        'not reachable',
        err,
        'start the Docker daemon, or set DOCKER_HOST; kopi-docka needs access to the socket (root or the docker group)',
      );
    }
    let facts: DockerFacts;
    try {
      const v = await docker.version();
      const apiVersion = await docker.apiVersion();
      const info = await docker.info();
      facts = {
        engineVersion: v.version,
        apiVersion,
        daemonApi: { max: v.apiVersion, min: v.minApiVersion },
        storageDriver: info.storageDriver,
        operatingSystem: info.operatingSystem,
        platform: v.os && v.arch ? `${v.os}/${v.arch}` : undefined,
      };
    } catch (err) {
      return dockerFail(
        docker,
        'reachable but not usable',
        err,
        `check the daemon with \`docker version\`; kopi-docka speaks Engine API ${MIN_API_VERSION}–${MAX_API_VERSION}`,
      );
    }
    return {
      name: 'docker',
      kind: 'docker',
      ok: true,
      detail: `reachable at ${docker.endpoint} (Docker ${facts.engineVersion}, API ${facts.apiVersion})`,
      docker: facts,
    };
  } finally {
    docker.close();
  }
}

async function checkKopia(kopia: Kopia): Promise<CheckItem> {
  try {
    const v = await kopia.assertSupported();
    return { name: 'kopia', kind: 'dependency', ok: true, detail: `kopia ${v} (${kopia.settings.binary})` };
  } catch (err) {
    const hint = hintOf(err);
    return {
      name: 'kopia',
      kind: 'dependency',
      ok: false,
      detail: errorMessage(err),
      ...(hint === undefined ? {} : { hint }),
    };
  }
}

async function checkTar(): Promise<CheckItem> {
  const fail = (detail: string): CheckItem => ({
    name: 'tar',
    kind: 'dependency',
    ok: false,
    detail,
    hint: 'install GNU tar (Debian: apt-get install tar); the tar volume mode needs --xattrs, --acls and --sort',
  });
  const bin = which('tar');
  if (!bin) return fail('tar not found on PATH');
  try {
    const res = await run([bin, '--version'], { timeoutMs: 10_000 });
    const first = res.stdout.split('\n')[0]?.trim() ?? '';
    if (res.code !== 0) return fail(`${bin} --version failed: ${res.stderrTail.trim()}`);
    if (!/GNU tar/.test(first)) return fail(`${bin} is not GNU tar (${first || 'unknown'})`);
    return { name: 'tar', kind: 'dependency', ok: true, detail: `${first} (${bin})` };
  } catch (err) {
    return fail(`${bin}: ${errorMessage(err)}`);
  }
}

async function checkRepository(kopia: Kopia, kopiaOk: boolean): Promise<CheckItem> {
  const repo = kopia.repositoryLabel;
  if (!kopiaOk) {
    return {
      name: 'repository',
      kind: 'repository',
      ok: false,
      skipped: true,
      detail: 'skipped: kopia unavailable',
    };
  }
  const facts = (reachable: boolean, t0: number, connected = true): RepositoryFacts => ({
    backend: repo,
    kind: kopia.backend.kind,
    connected,
    reachable,
    latencyMs: Math.round(performance.now() - t0),
  });
  const t0 = performance.now();
  try {
    const st = await kopia.status({ timeoutMs: 60_000 });
    if (!st) {
      return {
        name: 'repository',
        kind: 'repository',
        ok: false,
        detail: `not connected to ${repo} (${kopia.configFile})`,
        hint: 'run `kopi-docka init`',
        repository: facts(false, t0, false),
      };
    }
    const latency = facts(true, t0);
    const check = await kopia.connectionCheck(st);
    if (check.state !== 'same') {
      // Never write to another repository than the configured one: init reconnects (after checking the
      // password opens the configured one); everything else stops here.
      return {
        name: 'repository',
        kind: 'repository',
        ok: false,
        detail: check.message,
        hint: 'run `kopi-docka init` to connect to the configured repository (nothing is written to the other one)',
        repository: latency,
      };
    }
    const who = `${st.clientOptions.username}@${st.clientOptions.hostname}`;
    return {
      name: 'repository',
      kind: 'repository',
      ok: true,
      detail: `${repo} (connected as ${who}; repository status answered in ${latency.latencyMs} ms)`,
      repository: latency,
    };
  } catch (err) {
    const hint = hintOf(err);
    return {
      name: 'repository',
      kind: 'repository',
      ok: false,
      detail:
        err instanceof KopiaError && err.reason === 'wrong-password'
          ? `wrong password for ${repo}`
          : `${errorMessage(err)} (${repo})`,
      ...(hint === undefined ? {} : { hint }),
      repository: facts(false, t0),
    };
  }
}

/**
 * A file really written and removed in the repository directory: `access(W_OK)` says yes to root on a
 * directory whose filesystem is mounted read-only only on some kernels, and a check that passes where
 * the backup then fails is worse than none. Then the free space of that filesystem.
 */
async function checkWritable(cfg: Config, kopia: Kopia, connected: boolean): Promise<CheckItem> {
  const repo = cfg.kopia.repositoryPath;
  const item = (ok: boolean, detail: string, hint?: string): CheckItem => ({
    name: 'writable',
    kind: 'repository',
    ok,
    detail,
    ...(hint === undefined ? {} : { hint }),
  });
  if (!connected) return { ...item(false, 'skipped: repository not connected'), skipped: true };
  // Only a filesystem repository is a directory kopi-docka can probe; for the others the storage
  // answering `repository status` (which reads from it) is the check.
  if (kopia.backend.kind !== 'filesystem') {
    return item(true, `${kopia.repositoryLabel}: checked by repository status (not a local directory)`);
  }
  const probe = join(repo, `.kopi-docka-write-test-${randomBytes(6).toString('hex')}`);
  try {
    await writeFile(probe, 'kopi-docka write test\n', { flag: 'wx', mode: 0o600 });
  } catch (err) {
    return item(
      false,
      `cannot write to ${repo}: ${errorMessage(err)}`,
      'make the repository filesystem writable (e.g. remount it read-write) for the user running kopi-docka',
    );
  } finally {
    await rm(probe, { force: true }).catch(() => undefined);
  }
  try {
    const fs = await statfs(repo);
    const free = fs.bavail * fs.bsize;
    if (free < MIN_FREE_BYTES) {
      return item(
        false,
        `the repository's filesystem is full: ${formatBytes(free)} free at ${repo} (at least ${formatBytes(MIN_FREE_BYTES)} needed to start)`,
        "free space there; Kopia's maintenance reclaims the partial data a failed snapshot left behind (`kopia maintenance run --full`)",
      );
    }
    return item(true, `${repo} (${formatBytes(free)} free)`);
  } catch (err) {
    return item(true, `${repo} (free space unknown: ${errorMessage(err)})`);
  }
}

/** Another live run holds the lock: a backup would be refused (exit 75); a stale lock is taken over. */
async function checkLock(stateDir: string): Promise<CheckItem> {
  const held = await readLock(stateDir);
  if (!held) return { name: 'lock', kind: 'lock', ok: true, detail: 'free' };
  if (!processAlive(held.pid)) {
    return {
      name: 'lock',
      kind: 'lock',
      ok: true,
      detail: `stale (pid ${held.pid} of a ${held.command} since ${held.since} is gone; the next run takes it over)`,
    };
  }
  return {
    name: 'lock',
    kind: 'lock',
    ok: false,
    detail: `held by a running kopi-docka ${held.command} (pid ${held.pid}, since ${held.since})`,
    hint: 'wait for it to finish',
  };
}

/** Which checks to run: all (check, doctor, dry-run, run) or only the programs and Docker (init). */
export type CheckScope = 'all' | 'dependencies';

/**
 * The pre-flight checks, in a fixed order: docker, kopia, tar, then (scope `all`) repository, writable
 * (with free space) and lock. Never throws: each problem is an item with a hint.
 */
export async function runChecks(cfg: Config, kopia: Kopia, scope: CheckScope = 'all'): Promise<CheckItem[]> {
  const [docker, kopiaItem, tar] = await Promise.all([checkDocker(), checkKopia(kopia), checkTar()]);
  if (scope === 'dependencies') return [docker, kopiaItem, tar];
  const repository = await checkRepository(kopia, kopiaItem.ok);
  const writable = await checkWritable(cfg, kopia, repository.ok);
  return [docker, kopiaItem, tar, repository, writable, await checkLock(cfg.stateDir)];
}

/**
 * The items that decide whether a backup can run: tar only in the tar volume mode (direct mode uses it
 * only as a fallback for special files, and says so per source), and, for reporting commands that run
 * beside a backup (doctor), not the lock.
 */
export function decisiveChecks(
  items: readonly CheckItem[],
  cfg: Config,
  opts: { lock: boolean } = { lock: true },
): CheckItem[] {
  return items.filter(
    (i) => (i.name !== 'tar' || cfg.backup.volumeMode === 'tar') && (opts.lock || i.name !== 'lock'),
  );
}

/**
 * 0 when all OK; otherwise the most fundamental failure decides: dependency (4), Docker (6),
 * repository (5), lock (75).
 */
export function checkExitCode(items: readonly CheckItem[]): number {
  for (const kind of ['dependency', 'docker', 'repository', 'lock'] as const) {
    if (items.some((i) => !i.ok && !i.skipped && i.kind === kind)) return EXIT[kind];
  }
  return items.every((i) => i.ok) ? ExitCode.OK : ExitCode.FAILURE;
}

/**
 * Throw for the failing item that decides the exit code (as checkExitCode), so the run stops before
 * anything is stopped with the same verdict `check` gives.
 *
 * @throws KopiDockaError with the item's exit code, detail and hint.
 */
export function assertReady(items: readonly CheckItem[]): void {
  const code = checkExitCode(items);
  if (code === ExitCode.OK) return;
  const first = items.find((i) => !i.ok && !i.skipped && EXIT[i.kind] === code) ?? items.find((i) => !i.ok);
  throw new KopiDockaError(`pre-flight ${first?.name ?? 'check'}: ${first?.detail ?? 'failed'}`, {
    exitCode: code,
    ...(first?.hint === undefined ? {} : { hint: first.hint }),
  });
}
