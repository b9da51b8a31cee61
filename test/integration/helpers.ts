/**
 * Shared helpers for integration tests: real Docker (the daemon DOCKER_HOST names, else the default
 * socket), real Docker Compose — v2 (`docker compose`) or v1 (`docker-compose`), chosen by
 * KD_TEST_COMPOSE (see COMPOSE_FLAVOUR) — real Kopia, and the built CLI (`dist/main.js`, built by
 * scripts/test.sh before the tests run).
 *
 * Compose v1 names containers `<project>_<service>_1`, v2 `<project>-<service>-1`: tests never build
 * container names, they look them up by label (composeContainer). Volumes are `<project>_<volume>`
 * in both.
 *
 * Every process is spawned from an argv array (never a shell). Everything a helper creates is removed
 * by a cleanup registered with node:test (`t.after()`), which runs even when the test fails.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { accessSync, constants as fsConstants, existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';

/** Repository root (the directory holding package.json). */
export const REPO_ROOT: string = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The built CLI entry point run by runCli/startCli. */
export const CLI_PATH: string = path.join(REPO_ROOT, 'dist', 'main.js');

/** Local image built by scripts/provision.sh (no registry needed). Has sh, sleep, sha256sum, … */
export const TEST_IMAGE = 'kd-test-busybox:latest';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

interface SpawnOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  input?: string;
  timeoutMs?: number;
}

interface Spawned {
  child: ChildProcess;
  done: Promise<CliResult>;
  output: () => { stdout: string; stderr: string };
}

const DEFAULT_TOOL_TIMEOUT_MS = 300_000;

function tail(text: string, max = 4000): string {
  return text.length <= max ? text : `…${text.slice(-max)}`;
}

/**
 * Spawns argv in its own process group (so a timeout kills the whole tree: the CLI and its kopia/tar
 * children). stdin is a pipe that gets `input` (or nothing) and is then closed: never a TTY.
 */
function spawnProcess(command: string, args: readonly string[], opts: SpawnOptions = {}): Spawned {
  const child = spawn(command, [...args], {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ['pipe', 'pipe', 'pipe'],
    detached: true,
  });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout?.on('data', (b: Buffer) => out.push(b));
  child.stderr?.on('data', (b: Buffer) => err.push(b));
  const output = (): { stdout: string; stderr: string } => ({
    stdout: Buffer.concat(out).toString('utf8'),
    stderr: Buffer.concat(err).toString('utf8'),
  });
  // The child may exit without reading its stdin (EPIPE): that is not a test failure.
  child.stdin?.on('error', () => undefined);
  child.stdin?.end(opts.input ?? '');

  const timeoutMs = opts.timeoutMs ?? DEFAULT_TOOL_TIMEOUT_MS;
  const done = new Promise<CliResult>((resolve, reject) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child, 'SIGKILL');
    }, timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${command}: ${e.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const o = output();
      if (timedOut) {
        reject(
          new Error(
            `${command} ${args.join(' ')} timed out after ${timeoutMs} ms and was killed\n` +
              `stdout: ${tail(o.stdout)}\nstderr: ${tail(o.stderr)}`,
          ),
        );
        return;
      }
      resolve({ code, signal, stdout: o.stdout, stderr: o.stderr });
    });
  });
  return { child, done, output };
}

/** Sends a signal to the child's whole process group (it was spawned detached); ignores "already gone". */
function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already exited
    }
  }
}

async function runChecked(
  command: string,
  args: readonly string[],
  opts: SpawnOptions & { allowFail?: boolean },
): Promise<ExecResult> {
  const r = await spawnProcess(command, args, opts).done;
  const code = r.code ?? -1;
  if (code !== 0 && !opts.allowFail) {
    throw new Error(
      `${command} ${args.join(' ')} failed (${r.signal ? `signal ${r.signal}` : `exit ${code}`}): ${tail(r.stderr.trim() || r.stdout.trim())}`,
    );
  }
  return { code, stdout: r.stdout, stderr: r.stderr };
}

/** `kdt-<prefix>-<random6>`: lowercase, valid as a Compose project, container, volume or network name. */
export function uniqueName(prefix: string): string {
  const clean =
    prefix
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/^-+|-+$/g, '') || 'x';
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const suffix = Array.from(randomBytes(6), (b) => alphabet[b % alphabet.length]).join('');
  return `kdt-${clean}-${suffix}`;
}

/** Runs the docker CLI. Throws (with stderr) on a non-zero exit unless allowFail. */
export function docker(
  args: string[],
  opts: { input?: string; allowFail?: boolean } = {},
): Promise<ExecResult> {
  return runChecked('docker', args, { input: opts.input, allowFail: opts.allowFail });
}

export type ComposeFlavour = 'v1' | 'v2';

/**
 * The Compose the tests drive: KD_TEST_COMPOSE=`v2` (`docker compose`) or `v1` (`docker-compose`);
 * unset or empty: v2 when `docker compose version` runs, else v1. Any other value is an error.
 */
function chooseComposeFlavour(): ComposeFlavour {
  const wanted = process.env.KD_TEST_COMPOSE?.trim() ?? '';
  if (wanted === 'v1' || wanted === 'v2') return wanted;
  if (wanted !== '') throw new Error(`KD_TEST_COMPOSE must be v1 or v2, not "${wanted}"`);
  const probe = spawnSync('docker', ['compose', 'version'], { stdio: 'ignore', timeout: 30_000 });
  return probe.status === 0 ? 'v2' : 'v1';
}

/** The Compose flavour under test (KD_TEST_COMPOSE, else detected). Skip v2-only cases on 'v1'. */
export const COMPOSE_FLAVOUR: ComposeFlavour = chooseComposeFlavour();

/**
 * node:test options that skip a test or suite unless Compose `flavour` is under test, with the reason:
 * `it('…', onlyWithCompose('v2'), async () => …)`.
 */
export function onlyWithCompose(flavour: ComposeFlavour): { skip: string | false } {
  return {
    skip:
      COMPOSE_FLAVOUR === flavour
        ? false
        : `needs Compose ${flavour}; Compose ${COMPOSE_FLAVOUR} is under test (KD_TEST_COMPOSE=${process.env.KD_TEST_COMPOSE ?? 'unset'})`,
  };
}

/** The command that runs that Compose; Compose arguments are appended to it. */
export const COMPOSE_COMMAND: readonly string[] =
  COMPOSE_FLAVOUR === 'v2' ? ['docker', 'compose'] : ['docker-compose'];

/** argv of `<compose> -p <project> ...args` (e.g. for a runner other than compose()). */
export function composeArgv(project: string, args: readonly string[]): string[] {
  return [...COMPOSE_COMMAND, '-p', project, ...args];
}

/**
 * Runs `<compose> -p <project> <args>` (COMPOSE_COMMAND) in projectDir. Throws (with stderr) on a
 * non-zero exit unless allowFail.
 */
export function compose(
  projectDir: string,
  project: string,
  args: string[],
  opts: { allowFail?: boolean } = {},
): Promise<ExecResult> {
  const [command = 'docker-compose', ...rest] = composeArgv(project, args);
  return runChecked(command, rest, { cwd: projectDir, allowFail: opts.allowFail });
}

/**
 * The name of the one container (running or not) of Compose service `service` in `project`, found by
 * its labels (`com.docker.compose.project`, `com.docker.compose.service`) — whatever naming scheme the
 * Compose that made it uses. Throws unless there is exactly one.
 */
export async function composeContainer(project: string, service: string): Promise<string> {
  const r = await docker([
    'ps',
    '-a',
    '--filter',
    `label=com.docker.compose.project=${project}`,
    '--filter',
    `label=com.docker.compose.service=${service}`,
    '--format',
    '{{.Names}}',
  ]);
  const names = r.stdout.split('\n').filter(Boolean);
  if (names.length !== 1) {
    throw new Error(
      `expected one container of service ${service} in project ${project}, found ${names.length}: ${names.join(', ')}`,
    );
  }
  return names[0] as string;
}

/** composeContainer for each service: `{ [service]: container name }`. */
export async function composeContainers<S extends string>(
  project: string,
  services: readonly S[],
): Promise<Record<S, string>> {
  const out = {} as Record<S, string>;
  for (const s of services) out[s] = await composeContainer(project, s);
  return out;
}

/** Escapes `text` for use as a literal inside a RegExp. */
export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A fresh directory under os.tmpdir(). The caller removes it (or uses registerCleanup). */
export function makeTempDir(prefix: string): Promise<string> {
  const clean = prefix.replace(/[^A-Za-z0-9._-]+/g, '-');
  return mkdtemp(path.join(os.tmpdir(), `kdt-${clean}-`));
}

/**
 * Runs fn after the test (`t.after`) — or, without a test context, after the current suite/file
 * (`after`) — even when the test fails. A failing cleanup is reported on stderr, never thrown.
 */
export function registerCleanup(t: TestContext | undefined, fn: () => Promise<void> | void): void {
  const safe = async (): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      process.stderr.write(`[test cleanup] ${err instanceof Error ? err.message : String(err)}\n`);
    }
  };
  if (t) t.after(safe);
  else after(safe);
}

/** Removes every container, volume and network carrying the Compose project label (no compose file needed). */
async function removeProjectResources(project: string): Promise<void> {
  const label = `label=com.docker.compose.project=${project}`;
  const containers = (await docker(['ps', '-aq', '--filter', label], { allowFail: true })).stdout
    .split('\n')
    .filter(Boolean);
  if (containers.length > 0) await docker(['rm', '-f', '-v', ...containers], { allowFail: true });
  const volumes = (await docker(['volume', 'ls', '-q', '--filter', label], { allowFail: true })).stdout
    .split('\n')
    .filter(Boolean);
  if (volumes.length > 0) await docker(['volume', 'rm', '-f', ...volumes], { allowFail: true });
  const networks = (await docker(['network', 'ls', '-q', '--filter', label], { allowFail: true })).stdout
    .split('\n')
    .filter(Boolean);
  if (networks.length > 0) await docker(['network', 'rm', ...networks], { allowFail: true });
}

export interface Stack {
  project: string;
  dir: string;
  /**
   * `<compose> down -v --remove-orphans`, then removes whatever is still labelled with the project
   * (e.g. recreated by a restore). Keeps `dir`. Safe to call more than once; never throws.
   */
  down: () => Promise<void>;
}

/**
 * Writes `files` (paths relative to a fresh temp dir, e.g. `docker-compose.yml`, `.env`, `data/x`) and,
 * unless `up === false`, runs `<compose> up -d` (COMPOSE_COMMAND). The project is `name` (verbatim) or
 * a uniqueName. Cleanup (registered before `up`, so a failed `up` is cleaned too): down() and `rm -rf dir`.
 */
export async function createStack(
  t: TestContext | undefined,
  opts: { name?: string; files: Record<string, string>; up?: boolean },
): Promise<Stack> {
  const project = opts.name ?? uniqueName('stack');
  const dir = await makeTempDir(project.replace(/^kdt-/, ''));
  const down = async (): Promise<void> => {
    try {
      if (existsSync(dir)) {
        await compose(dir, project, ['down', '-v', '--remove-orphans', '-t', '10'], { allowFail: true });
      }
      await removeProjectResources(project);
    } catch (err) {
      process.stderr.write(
        `[test cleanup] stack ${project}: ${err instanceof Error ? err.message : String(err)}\n`,
      );
    }
  };
  registerCleanup(t, async () => {
    await down();
    await rm(dir, { recursive: true, force: true });
  });
  for (const [rel, content] of Object.entries(opts.files)) {
    if (path.isAbsolute(rel) || rel.split(/[\\/]/).includes('..')) {
      throw new Error(`createStack: file path must be relative and inside the stack dir: ${rel}`);
    }
    const file = path.join(dir, rel);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, content);
  }
  if (opts.up !== false) await compose(dir, project, ['up', '-d']);
  return { project, dir, down };
}

function findOnPath(name: string): string | undefined {
  for (const d of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!d) continue;
    const p = path.join(d, name);
    try {
      accessSync(p, fsConstants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The kopia binary: $KOPI_DOCKA_KOPIA_BIN, else `kopia` on PATH (resolved to a path when found). */
export const KOPIA_BIN: string = process.env.KOPI_DOCKA_KOPIA_BIN || findOnPath('kopia') || 'kopia';

/** Writes `<dir>/kopi-docka.conf` with mode 0600 and returns its path. */
export async function writeConfig(dir: string, ini: string): Promise<string> {
  const file = path.join(dir, 'kopi-docka.conf');
  await writeFile(file, ini, { mode: 0o600 });
  await chmod(file, 0o600);
  return file;
}

/** Environment for running the CLI isolated from the host's state and config. */
export function testEnv(stateDir: string): Record<string, string> {
  return {
    KOPI_DOCKA_STATE_DIR: stateDir,
    KOPIA_CHECK_FOR_UPDATES: 'false',
    NO_COLOR: '1',
    HOME: stateDir,
  };
}

export interface CliOptions {
  env?: Record<string, string>;
  input?: string;
  /** Kill the CLI (and its children) and fail after this long. Default 300 000 ms. */
  timeoutMs?: number;
}

export interface StartedCli {
  child: ChildProcess;
  /** Resolves when the CLI has exited (rejects only on spawn failure or timeout). */
  done: Promise<CliResult>;
  /** Resolves once stdout+stderr so far match `pattern`; rejects after timeoutMs (default 60 000). */
  waitFor: (pattern: RegExp, timeoutMs?: number) => Promise<void>;
}

function assertBuilt(): void {
  if (!existsSync(CLI_PATH)) throw new Error(`${CLI_PATH} does not exist: run \`npm run build\` first`);
}

/**
 * Starts `node dist/main.js ...args` (process.env merged with opts.env; no shell) and returns at once,
 * so a test can signal it mid-run: `child.kill('SIGTERM')` signals the CLI process only.
 */
export function startCli(args: string[], opts: CliOptions = {}): StartedCli {
  assertBuilt();
  const s = spawnProcess(process.execPath, [CLI_PATH, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...opts.env },
    input: opts.input,
    timeoutMs: opts.timeoutMs,
  });
  let exited = false;
  s.done.then(
    () => (exited = true),
    () => (exited = true),
  );
  const waitFor = async (pattern: RegExp, timeoutMs = 60_000): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const o = s.output();
      if (pattern.test(o.stdout + o.stderr)) return;
      if (exited) {
        throw new Error(
          `CLI exited before its output matched ${String(pattern)}\nstdout: ${tail(o.stdout)}\nstderr: ${tail(o.stderr)}`,
        );
      }
      if (Date.now() > deadline) {
        throw new Error(
          `CLI output did not match ${String(pattern)} within ${timeoutMs} ms\nstdout: ${tail(o.stdout)}\nstderr: ${tail(o.stderr)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  return { child: s.child, done: s.done, waitFor };
}

/** Runs `node dist/main.js ...args` to completion (process.env merged with opts.env; never a shell). */
export function runCli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return startCli(args, opts).done;
}

/** Timeout of one `cli`/`cliOk` run. */
export const CLI_TIMEOUT_MS = 180_000;

/** A CLI run's exit, signal, stdout and stderr: the message of a failed assertion about it. */
export function describeRun(r: CliResult): string {
  return `exit ${String(r.code)} signal ${String(r.signal)}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

/**
 * Runs the built CLI with the repository's env (see makeRepoConfig) and CLI_TIMEOUT_MS. KD_TIMING=1
 * logs each run's duration on stderr (the test runner shows it as comments); KDT_DEBUG=1 its stderr too.
 */
export async function cli(repo: { env: Record<string, string> }, args: string[]): Promise<CliResult> {
  const t0 = Date.now();
  const r = await runCli(args, { env: repo.env, timeoutMs: CLI_TIMEOUT_MS });
  if (process.env.KD_TIMING || process.env.KDT_DEBUG) {
    process.stderr.write(`--- ${args.join(' ')} (${Date.now() - t0} ms)\n`);
  }
  if (process.env.KDT_DEBUG) process.stderr.write(`${r.stderr}\n`);
  return r;
}

/** cli, asserting exit 0 (the message describes the run). */
export async function cliOk(repo: { env: Record<string, string> }, args: string[]): Promise<CliResult> {
  const r = await cli(repo, args);
  assert.equal(r.code, 0, `kopi-docka ${args.join(' ')} failed: ${describeRun(r)}`);
  return r;
}

/** Keys of the config's sections, merged over makeRepoConfig's defaults (a key given here wins). */
export interface RepoSections {
  kopia?: Record<string, string>;
  backup?: Record<string, string>;
  retention?: Record<string, string>;
}

export interface RepoConfig {
  dir: string;
  stateDir: string;
  repoPath: string;
  configPath: string;
  /** `backup_base_path` (the run history): `<dir>/history`. */
  historyDir: string;
  password: string;
  env: Record<string, string>;
  /** Rewrites the config: the defaults with the options' sections, then `sections`, merged over them. */
  configure: (sections?: RepoSections) => Promise<void>;
}

/**
 * A temp dir with `state/`, `cache/` and `kopi-docka.conf` pointing at a filesystem repository
 * `<dir>/repo` (not created: `kopi-docka init` creates it; `repoPath` names another one, e.g. to make a
 * second client of the same repository). The config has [kopia] (path, password, zstd, cache dir),
 * [backup] (stop_timeout 10, start_timeout 60, backup_base_path `<dir>/history`) and [retention]
 * (daily 7), with `sections` merged over them, then `extra` verbatim. `env` isolates the CLI and
 * selects the config via KOPI_DOCKA_CONFIG. The dir is removed after the test (after `beforeRemove`).
 */
export async function makeRepoConfig(
  t: TestContext | undefined,
  opts: {
    /** Of the temp dir's name. Default `repo`. */
    prefix?: string;
    password?: string;
    repoPath?: string;
    sections?: RepoSections;
    extra?: string;
    /** Runs in the cleanup before the dir is removed. */
    beforeRemove?: (r: { dir: string; stateDir: string }) => Promise<void>;
  } = {},
): Promise<RepoConfig> {
  const dir = await makeTempDir(opts.prefix ?? 'repo');
  const stateDir = path.join(dir, 'state');
  registerCleanup(t, async () => {
    await opts.beforeRemove?.({ dir, stateDir });
    await rm(dir, { recursive: true, force: true });
  });
  const cacheDir = path.join(dir, 'cache');
  const repoPath = opts.repoPath ?? path.join(dir, 'repo');
  const historyDir = path.join(dir, 'history');
  await mkdir(stateDir, { recursive: true });
  await mkdir(cacheDir, { recursive: true });
  const password = opts.password ?? 'test-password-1';
  const configure = async (more: RepoSections = {}): Promise<void> => {
    const section = (name: keyof RepoSections, defaults: Record<string, string>): string[] => [
      `[${name}]`,
      ...Object.entries({ ...defaults, ...opts.sections?.[name], ...more[name] }).map(
        ([k, v]) => `${k} = ${v}`,
      ),
    ];
    let ini = [
      ...section('kopia', {
        repository_path: repoPath,
        password,
        compression: 'zstd',
        cache_directory: cacheDir,
      }),
      ...section('backup', { stop_timeout: '10', start_timeout: '60', backup_base_path: historyDir }),
      ...section('retention', { daily: '7' }),
      '',
    ].join('\n');
    if (opts.extra) ini += opts.extra.endsWith('\n') ? opts.extra : `${opts.extra}\n`;
    await writeConfig(dir, ini);
  };
  await configure();
  const configPath = path.join(dir, 'kopi-docka.conf');
  return {
    dir,
    stateDir,
    repoPath,
    configPath,
    historyDir,
    password,
    env: { ...testEnv(stateDir), KOPI_DOCKA_CONFIG: configPath },
    configure,
  };
}
