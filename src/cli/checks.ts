/**
 * The readiness checks shared by `check` (OK/FAIL and an exit code) and `doctor` (which adds more):
 * Docker reachable, kopia present and new enough, GNU tar present, the repository connected at the
 * configured path.
 */
import { createDocker } from '../adapters/docker.js';
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
}

const EXIT: Record<Kind, number> = {
  dependency: ExitCode.DEPENDENCY,
  docker: ExitCode.DOCKER,
  repository: ExitCode.REPOSITORY,
};

function hintOf(err: unknown): string | undefined {
  return err instanceof KopiDockaError ? err.hint : undefined;
}

async function checkDocker(): Promise<CheckItem> {
  const docker = createDocker({ defaultTimeoutMs: 10_000 });
  try {
    await docker.ping();
    const v = await docker.version().catch(() => undefined);
    const api = v ? ` (Docker ${v.version}, API ${v.apiVersion})` : '';
    return { name: 'docker', kind: 'docker', ok: true, detail: `reachable at ${docker.endpoint}${api}` };
  } catch (err) {
    const hint = hintOf(err);
    return {
      name: 'docker',
      kind: 'docker',
      ok: false,
      detail: `not reachable at ${docker.endpoint}: ${errorMessage(err)}`,
      hint:
        hint ??
        'start the Docker daemon, or set DOCKER_HOST; kopi-docka needs access to the socket (root or the docker group)',
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
