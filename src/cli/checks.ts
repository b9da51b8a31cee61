/**
 * The readiness checks shared by `check` (OK/FAIL and an exit code) and `doctor` (which adds more):
 * Docker reachable and speaking an Engine API version kopi-docka supports, kopia present and new
 * enough, GNU tar present, the repository connected at the configured path.
 */
import {
  MAX_API_VERSION,
  MIN_API_VERSION,
  createDocker,
  type DaemonApiRange,
  type DockerClient,
} from '../adapters/docker.js';
import { Kopia, KopiaError, statusStoragePath } from '../adapters/kopia.js';
import { run, which } from '../adapters/process.js';
import type { Config } from '../config/types.js';
import { ExitCode, KopiDockaError, errorMessage } from '../errors.js';

type Kind = 'dependency' | 'docker' | 'repository';

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
}

const EXIT: Record<Kind, number> = {
  dependency: ExitCode.DEPENDENCY,
  docker: ExitCode.DOCKER,
  repository: ExitCode.REPOSITORY,
};

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

async function checkRepository(kopia: Kopia, cfg: Config, kopiaOk: boolean): Promise<CheckItem> {
  const repo = cfg.kopia.repositoryPath;
  if (!kopiaOk) {
    return {
      name: 'repository',
      kind: 'repository',
      ok: false,
      skipped: true,
      detail: 'skipped: kopia unavailable',
    };
  }
  try {
    const st = await kopia.status({ timeoutMs: 60_000 });
    if (!st) {
      return {
        name: 'repository',
        kind: 'repository',
        ok: false,
        detail: `not connected (${kopia.configFile})`,
        hint: 'run `kopi-docka init`',
      };
    }
    if (!(await kopia.isConfiguredRepository(st))) {
      return {
        name: 'repository',
        kind: 'repository',
        ok: false,
        detail: `connected to ${statusStoragePath(st) ?? st.storage?.type ?? 'another repository'}, not to ${repo}`,
        hint: 'run `kopi-docka init` to connect to the configured repository',
      };
    }
    const who = `${st.clientOptions.username}@${st.clientOptions.hostname}`;
    return { name: 'repository', kind: 'repository', ok: true, detail: `${repo} (connected as ${who})` };
  } catch (err) {
    const hint = hintOf(err);
    return {
      name: 'repository',
      kind: 'repository',
      ok: false,
      detail:
        err instanceof KopiaError && err.reason === 'wrong-password'
          ? `wrong password for ${repo}`
          : errorMessage(err),
      ...(hint === undefined ? {} : { hint }),
    };
  }
}

export async function runChecks(cfg: Config, kopia = new Kopia(cfg.kopia)): Promise<CheckItem[]> {
  const [docker, kopiaItem, tar] = await Promise.all([checkDocker(), checkKopia(kopia), checkTar()]);
  const repository = await checkRepository(kopia, cfg, kopiaItem.ok);
  return [docker, kopiaItem, tar, repository];
}

/** 0 when all OK; otherwise the most fundamental failure decides: dependency, then Docker, then repository. */
export function checkExitCode(items: readonly CheckItem[]): number {
  for (const kind of ['dependency', 'docker', 'repository'] as const) {
    if (items.some((i) => !i.ok && !i.skipped && i.kind === kind)) return EXIT[kind];
  }
  return items.every((i) => i.ok) ? ExitCode.OK : ExitCode.FAILURE;
}
