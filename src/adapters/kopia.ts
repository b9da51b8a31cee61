/**
 * The Kopia adapter: one typed method per `kopia` command kopi-docka uses, each building an argv array
 * and running it through ./process.js. Contract details (flags, JSON shapes, pitfalls) are in
 * /work/shared/reference/kopia-cli.md; where the real v0.23.1 binary behaved differently, the comment
 * next to the code says so.
 *
 * Every call:
 *  - passes `--config-file=<absolute>` (kopi-docka's own profile, never the user's default one),
 *  - passes `--log-dir=<dir>` (or `--disable-file-logging`) so nothing depends on $HOME,
 *  - passes `--no-progress` (or `--progress` when the caller asked for progress lines),
 *  - passes `--no-auto-maintenance`: maintenance is run explicitly (maintenanceRun*), so a write
 *    command's exit code says only whether *that* command worked (reference §3.7),
 *  - puts the password only into the child's KOPIA_PASSWORD (never argv, never a log line),
 *  - sets KOPIA_CHECK_FOR_UPDATES=false, and leaves stdin /dev/null so kopia can never prompt.
 * Output is judged JSON first, exit code second (reference §3.7, §11.4).
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { backendOf } from '../config/keys-repository.js';
import type { KopiaSettings } from '../config/types.js';
import {
  BackendConfigError,
  checkConnection,
  creatable,
  describeBackend,
  repositoryArgs,
  type BackendSecrets,
  type ConnectionCheck,
  type RepositoryArgs,
  type RepositoryBackend,
} from '../core/repository-backend.js';
import { ConfigError, DependencyError, ExitCode, KopiDockaError, RepositoryError, doing } from '../errors.js';
import { exists, makeDirectory } from '../fsutil.js';
import { lastLines, pipeline, run, type RunOptions, type RunResult } from './process.js';
import {
  GLOBAL_POLICY,
  MIN_KOPIA_VERSION,
  type CallOptions,
  type DefinedPolicy,
  type DesiredPolicy,
  type EnsureResult,
  type KopiaOptions,
  type KopiaPolicy,
  type KopiaRunner,
  type MaintenanceInfo,
  type RepoStatus,
  type RestoreOptions,
  type SnapshotCreateOptions,
  type SnapshotManifest,
} from './kopia/types.js';
import {
  KopiaError,
  asManifest,
  asPolicy,
  asStatus,
  classifyStderr,
  cutShort,
  compareVersions,
  describeResult,
  isRecord,
  lastLine,
  normalizeSource,
  parseJson,
  parseKopiaVersion,
  parseSnapshotCreateOutput,
  parseSource,
  policyDiffFlags,
  policyTargetOf,
  statusStoragePath,
  tagFlags,
  unexpected,
} from './kopia/parse.js';

export * from './kopia/types.js';
export {
  KopiaError,
  tagsOf,
  parseSource,
  normalizeSource,
  tagFlags,
  parseKopiaVersion,
  compareVersions,
  classifyStderr,
  asManifest,
  statusStoragePath,
  policyTargetOf,
  policyDiffFlags,
  parseSnapshotCreateOutput,
} from './kopia/parse.js';

const INSTALL_HINT =
  'install Kopia >= 0.23.0 (https://kopia.io/docs/installation/ or `go install github.com/kopia/kopia@v0.23.1`), ' +
  'put it on PATH or set KOPI_DOCKA_KOPIA_BIN to its absolute path';

// ---------------------------------------------------------------------------------------------------

interface ExecOptions extends CallOptions {
  /** Use this config file instead of the configured one (the probe connect). */
  configFile?: string;
  /** Cache directory exported as KOPIA_CACHE_DIRECTORY (the probe connect uses its own). */
  cacheDirectory?: string;
  progress?: boolean;
  onStderrLine?: (line: string) => void;
  stdoutTo?: Writable;
  input?: Readable;
  /** The stall watchdog (RunOptions.stallTimeoutMs), fed by Kopia's progress counters. */
  stallTimeoutMs?: number;
  /** Backend credentials for a connect/create (never in every call's env: restore scripts copy that). */
  extraEnv?: Record<string, string>;
}

/** What `ensureRepository` did; `reconnected`: the Kopia config was connected elsewhere and now is not. */
export type EnsureOutcome = EnsureResult | 'reconnected';

/**
 * What counts as progress in Kopia's progress line (` | 3 hashing, 120 hashed (1.2 GB), 5 cached (3 MB),
 * uploaded 300 MB, estimated 5 GB (24%) 1m left`): its counters only — the spinner and the estimate
 * change while nothing moves. Other lines (log lines) are not progress.
 */
export function progressCounters(line: string): string | undefined {
  if (!/\bhashing\b|\bhashed\b/.test(line)) return undefined;
  return line
    .replace(/^[\s*|/\\-]+/, '')
    .replace(/,?\s*estimat.*$/, '')
    .trim();
}

export class Kopia {
  readonly settings: KopiaSettings;
  readonly configFile: string;
  /**
   * Kopia's own cache: a subdirectory of cacheDirectory per kopia config file. Kopia caches the
   * repository's format blob there (so two repositories must never share one), and a failed
   * connect/create `rm -rf`s it (verified on 0.23.1), so nothing else may live in it.
   */
  readonly kopiaCacheDirectory: string;
  readonly logDir: string | false;
  private readonly runner: KopiaRunner;
  private readonly debug: ((msg: string) => void) | undefined;

  constructor(settings: KopiaSettings, opts: KopiaOptions = {}) {
    this.settings = settings;
    // Kopia resolves a bare name against ~/.config/kopia; always hand it an absolute path (§1.1).
    this.configFile = path.resolve(settings.kopiaConfigFile);
    const digest = createHash('sha256').update(this.configFile).digest('hex').slice(0, 12);
    this.kopiaCacheDirectory = path.join(path.resolve(settings.cacheDirectory), `kopia-${digest}`);
    this.logDir = opts.logDir ?? path.join(path.resolve(settings.cacheDirectory), 'logs');
    this.runner = opts.runner ?? run;
    this.debug = opts.debug;
  }

  /** The `user@host` this client records snapshots and policies under. */
  get identity(): string {
    return `${this.settings.username}@${this.settings.hostname}`;
  }

  /** `user@host:/abs/path` for a path under this client's identity (normalized). */
  sourceFor(p: string): string {
    return normalizeSource(`${this.identity}:${p}`);
  }

  /** The child's environment: the only place the password goes. */
  private env(cacheDirectory = this.kopiaCacheDirectory): Record<string, string | undefined> {
    return {
      KOPIA_PASSWORD: this.settings.password,
      KOPIA_CHECK_FOR_UPDATES: 'false',
      // An absolute KOPIA_CACHE_DIRECTORY overrides the cache dir stored at connect on every open
      // (§1.3), so the configured one always wins, even after it was changed in kopi-docka's config.
      KOPIA_CACHE_DIRECTORY: path.resolve(cacheDirectory),
      // Neutralise the user's own kopia environment: we pass these as flags, and a stray
      // KOPIA_SNAPSHOT_FAIL_FAST or keyring setting would change behaviour behind our back.
      KOPIA_CONFIG_PATH: undefined,
      KOPIA_LOG_DIR: undefined,
      KOPIA_PERSIST_CREDENTIALS_ON_CONNECT: undefined,
      KOPIA_USE_KEYRING: undefined,
      KOPIA_SNAPSHOT_FAIL_FAST: undefined,
    };
  }

  /**
   * The environment a restore script exports before it calls kopia (the same settings every call here
   * gets), without the password: a script is a file a person may read or keep. `withPassword` gives
   * only KOPIA_PASSWORD, for the child that runs the script now.
   */
  scriptEnvironment(withPassword: boolean): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(this.env())) {
      if (v !== undefined && (k === 'KOPIA_PASSWORD') === withPassword) out[k] = v;
    }
    return out;
  }

  /** The full argv of a call: subcommand, its flags, our common flags, then `--` and positionals. */
  argv(
    sub: readonly string[],
    flags: readonly string[],
    positionals: readonly string[] = [],
    o: { configFile?: string; progress?: boolean } = {},
  ): string[] {
    const common = [
      `--config-file=${o.configFile ?? this.configFile}`,
      this.logDir === false ? '--disable-file-logging' : `--log-dir=${this.logDir}`,
      ...(o.progress ? ['--progress', '--progress-update-interval=2s'] : ['--no-progress']),
      '--no-auto-maintenance',
    ];
    // `--` so a positional can never be taken for a flag (verified: kingpin honours it).
    return [
      this.settings.binary,
      ...sub,
      ...flags,
      ...common,
      ...(positionals.length ? ['--', ...positionals] : []),
    ];
  }

  private redact(text: string): string {
    let out = text;
    const backendSecrets: BackendSecrets = this.settings.backendSecrets ?? {};
    for (const secret of [
      this.settings.password,
      ...Object.values<string | undefined>({ ...backendSecrets }),
    ]) {
      if (typeof secret === 'string' && secret.length >= 3) out = out.split(secret).join('***');
    }
    return out;
  }

  /**
   * Every kopia process this adapter started that opens the repository, in order: the subcommand
   * (e.g. `snapshot create`), its wall time in ms and its exit code (null: killed). What a run costs in
   * repository opens (~0.2 s each for the key derivation) is read from here; the debug log says the
   * same per call.
   */
  readonly processes: { command: string; ms: number; code: number | null }[] = [];

  /** Record one finished kopia process (and say it in the debug log). */
  private record(argv: readonly string[], startedMs: number, code: number | null): void {
    const command = argv
      .slice(1)
      .filter((a) => !a.startsWith('-'))
      .slice(0, 2)
      .join(' ');
    const ms = Date.now() - startedMs;
    this.processes.push({ command, ms, code });
    this.debug?.(`kopia: ${command} took ${(ms / 1000).toFixed(2)}s (exit ${String(code)})`);
  }

  /** Run one kopia call. Resolves whatever the exit code; throws only when kopia cannot start. */
  private async exec(argv: string[], o: ExecOptions = {}): Promise<RunResult> {
    this.assertPassword();
    this.debug?.(`kopia: ${argv.slice(1).join(' ')}`);
    const started = Date.now();
    let res: RunResult;
    try {
      res = await this.runner(argv, {
        env: { ...this.env(o.cacheDirectory), ...o.extraEnv },
        ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
        ...(o.signal === undefined ? {} : { signal: o.signal }),
        ...(o.onStderrLine === undefined ? {} : { onStderrLine: o.onStderrLine }),
        ...(o.stdoutTo === undefined ? {} : { stdoutTo: o.stdoutTo }),
        ...(o.input === undefined ? {} : { input: o.input }),
        ...(o.stallTimeoutMs ? { stallTimeoutMs: o.stallTimeoutMs, progressKey: progressCounters } : {}),
      });
    } catch (err) {
      throw this.spawnError(err);
    }
    this.record(argv, started, res.code);
    return { ...res, stderrTail: this.redact(res.stderrTail) };
  }

  private spawnError(err: unknown): Error {
    const code = isRecord(err) ? err.code : undefined;
    if (code === 'ENOENT') {
      return new DependencyError(`kopia not found: ${this.settings.binary}`, INSTALL_HINT);
    }
    if (code === 'EACCES') {
      return new DependencyError(`kopia is not executable: ${this.settings.binary}`, INSTALL_HINT);
    }
    return err instanceof Error ? err : new Error(String(err));
  }

  /** Turn a non-successful result into a KopiaError with a classification and hint. */
  private failure(sub: readonly string[], res: RunResult, extraHint?: string): KopiaError {
    const command = `kopia ${sub.join(' ')}`;
    if (res.stalled || res.timedOut || res.aborted || (res.signal && res.code === null)) {
      return new KopiaError(`${command} ${describeResult(res)}`, {
        reason: cutShort(res) ?? 'killed',
        command,
        result: res,
      });
    }
    const c = classifyStderr(res.stderrTail);
    const hint = extraHint ?? c.hint;
    return new KopiaError(`${command} failed: ${lastLine(res.stderrTail) || describeResult(res)}`, {
      reason: c.reason,
      command,
      result: res,
      ...(hint === undefined ? {} : { hint }),
    });
  }

  /** Run, require exit 0, return stdout. */
  private async call(
    sub: readonly string[],
    flags: readonly string[],
    positionals: readonly string[] = [],
    o: ExecOptions = {},
  ): Promise<string> {
    const res = await this.exec(this.argv(sub, flags, positionals, o), o);
    if (res.code !== 0 || res.timedOut || res.aborted) throw this.failure(sub, res);
    return res.stdout;
  }

  /** Run a --json command, require exit 0 and parse its stdout. */
  private async callJson(
    sub: readonly string[],
    flags: readonly string[],
    positionals: readonly string[] = [],
    o: ExecOptions = {},
  ): Promise<unknown> {
    const res = await this.exec(this.argv(sub, ['--json', ...flags], positionals, o), o);
    if (res.code !== 0 || res.timedOut || res.aborted) throw this.failure(sub, res);
    return parseJson(res.stdout, sub.join(' '), res);
  }

  // -------------------------------------------------------------------------------------------------
  // Version

  /** The installed kopia version, e.g. "0.23.1". */
  async version(opts: CallOptions = {}): Promise<string> {
    let res: RunResult;
    try {
      res = await this.runner([this.settings.binary, '--version'], {
        env: { KOPIA_CHECK_FOR_UPDATES: 'false' },
        timeoutMs: opts.timeoutMs ?? 30_000,
        ...(opts.signal === undefined ? {} : { signal: opts.signal }),
      });
    } catch (err) {
      throw this.spawnError(err);
    }
    const v = parseKopiaVersion(`${res.stdout}\n${res.stderrTail}`);
    if (res.code !== 0 || v === undefined) {
      throw new DependencyError(
        `cannot determine the kopia version of ${this.settings.binary}: ${lastLine(res.stderrTail) || describeResult(res)}`,
        INSTALL_HINT,
      );
    }
    return v;
  }

  /** Refuse kopia older than MIN_KOPIA_VERSION; returns the found version. */
  async assertSupported(opts: CallOptions = {}): Promise<string> {
    const v = await this.version(opts);
    if (compareVersions(v, MIN_KOPIA_VERSION) < 0) {
      throw new DependencyError(
        `kopia ${v} at ${this.settings.binary} is too old: kopi-docka requires kopia >= ${MIN_KOPIA_VERSION}`,
        INSTALL_HINT,
      );
    }
    return v;
  }

  // -------------------------------------------------------------------------------------------------
  // Repository

  /** `repository status --json`; undefined when this config is not connected. */
  async status(opts: CallOptions = {}): Promise<RepoStatus | undefined> {
    const sub = ['repository', 'status'];
    const res = await this.exec(this.argv(sub, ['--json']), opts);
    if (res.code === 0 && !res.timedOut && !res.aborted) {
      return asStatus(parseJson(res.stdout, 'repository status', res));
    }
    if (!res.timedOut && !res.aborted && classifyStderr(res.stderrTail).reason === 'not-connected') {
      return undefined;
    }
    throw this.failure(sub, res);
  }

  /** The configured backend (`[kopia] backend`; filesystem at repositoryPath for hand-built settings). */
  get backend(): RepositoryBackend {
    return backendOf(this.settings);
  }

  /** One line naming the configured repository, no secrets: the path for filesystem, else describeBackend. */
  get repositoryLabel(): string {
    const b = this.backend;
    return b.kind === 'filesystem' ? path.resolve(b.path) : describeBackend(b);
  }

  /**
   * Is `st` (`repository status --json`) connected to the configured repository? Filesystem: the same
   * directory (symlinks resolved). Other backends: `checkConnection` (same kind, bucket/endpoint/
   * prefix, host/port/path, URL…); a repository-server connection is read from the Kopia config file,
   * since the status JSON does not show it.
   */
  async isConfiguredRepository(st: RepoStatus): Promise<boolean> {
    return (await this.connectionCheck(st)).state === 'same';
  }

  /** `isConfiguredRepository` with what the Kopia config is connected to and a message when not ours. */
  async connectionCheck(st: RepoStatus): Promise<ConnectionCheck> {
    const b = this.backend;
    if (b.kind === 'filesystem') {
      const p = statusStoragePath(st);
      const want = path.resolve(b.path);
      const check = checkConnection({ kind: 'filesystem', path: want }, st);
      if (p === undefined || check.state === 'same') return check;
      // The same directory reached through a symlink is still the same repository.
      const [x, y] = await Promise.all([realpath(p).catch(() => p), realpath(want).catch(() => want)]);
      return x === y ? { state: 'same', connected: { kind: 'filesystem', path: p } } : check;
    }
    if (b.kind === 'server') {
      const text = await readFile(this.configFile, 'utf8').catch(() => undefined);
      let json: unknown;
      try {
        json = text === undefined ? undefined : JSON.parse(text);
      } catch {
        json = undefined;
      }
      return checkConnection(b, json);
    }
    return checkConnection(b, st);
  }

  /**
   * `repository create|connect` argv and credential env for the configured backend (repositoryArgs).
   * @throws ConfigError when a credential the backend needs is missing (message names the variables).
   */
  private repositoryArgs(): RepositoryArgs {
    try {
      return repositoryArgs(this.backend, this.settings.backendSecrets ?? {});
    } catch (err) {
      if (err instanceof BackendConfigError) {
        throw new ConfigError(
          err.message,
          'export the variables before running kopi-docka, or name a credentials_file (mode 600) under [kopia]',
        );
      }
      throw err;
    }
  }

  private connectFlags(cacheDirectory: string): string[] {
    return [
      `--override-hostname=${this.settings.hostname}`,
      `--override-username=${this.settings.username}`,
      `--cache-directory=${path.resolve(cacheDirectory)}`,
      '--no-check-for-updates',
      // The password lives in kopi-docka's config; a second copy next to kopia's config
      // (<config>.kopia-password, base64) would only widen the exposure.
      '--no-persist-credentials',
    ];
  }

  /**
   * Make this config connected to the configured repository (`[kopia] backend`), creating it when it
   * does not exist. Safe to run repeatedly. A wrong password changes nothing.
   *
   * Kopia commands: `repository status --json`; a probe `repository connect <backend argv>` against a
   * throw-away config; then `repository connect|create <backend argv> --override-hostname …
   * --override-username … --cache-directory … --no-persist-credentials` (credentials only in the
   * child's environment, see repositoryArgs); `repository disconnect` first when the Kopia config was
   * connected to another repository (reported as 'reconnected': never a silent write to the old one).
   *
   * Why the probe: on 0.23.1, a `repository connect` whose verification fails (wrong password)
   * DELETES the file at --config-file and `rm -rf`s the --cache-directory, even when they existed
   * before (verified). So the password is first tried against a throw-away config and cache in a temp
   * directory; only a connect that is known to succeed touches the real ones.
   *
   * @throws KopiaError (wrong-password, …) with nothing changed; ConfigError for missing credentials;
   *   RepositoryError for a repository server that does not answer (its repository is made on the server).
   */
  async ensureRepository(opts: CallOptions = {}): Promise<EnsureOutcome> {
    const backend = this.backend;
    let result: EnsureOutcome | undefined;
    let st: RepoStatus | undefined;
    try {
      st = await this.status(opts);
    } catch (err) {
      // A stale or unopenable config (repo moved, password changed) is repaired below; a timeout or
      // abort is not something to repair.
      if (!(err instanceof KopiaError) || err.timedOut || err.aborted) throw err;
    }
    const check = st ? await this.connectionCheck(st) : undefined;
    if (st && check?.state === 'same') {
      // status opened the repository with our password, so the password is right.
      if (
        st.clientOptions.hostname !== this.settings.hostname ||
        st.clientOptions.username !== this.settings.username
      ) {
        await this.call(
          ['repository', 'set-client'],
          [`--hostname=${this.settings.hostname}`, `--username=${this.settings.username}`],
          [],
          opts,
        );
      }
      result = 'already-connected';
    } else {
      const repo = this.repositoryArgs();
      const probe = await this.probeConnect(repo, opts);
      // Connected elsewhere: only now, with the configured repository known to open (or to be
      // absent and creatable), is the old connection dropped.
      const elsewhere = st !== undefined;
      if (elsewhere) {
        this.debug?.(
          `kopia: ${check?.state === 'different' ? check.message : 'the Kopia config is connected to another repository'}; reconnecting to ${this.repositoryLabel}`,
        );
        await this.call(['repository', 'disconnect'], [], [], opts);
      }
      if (probe === 'ok') {
        await mkdir(path.dirname(this.configFile), { recursive: true, mode: 0o700 });
        await this.call(
          ['repository', 'connect', ...repo.argv],
          this.connectFlags(this.kopiaCacheDirectory),
          [],
          { ...opts, extraEnv: repo.env },
        );
        result = elsewhere ? 'reconnected' : 'connected';
      } else {
        if (!creatable(backend)) {
          throw new RepositoryError(`the repository server ${this.repositoryLabel} has no repository`, {
            hint: 'a repository server serves a repository created on the server itself',
          });
        }
        if (backend.kind === 'filesystem') {
          await doing('creating the repository directory', () => makeDirectory(path.resolve(backend.path)), {
            exitCode: ExitCode.REPOSITORY,
          });
        }
        await doing('creating the directory of the Kopia config file', () =>
          mkdir(path.dirname(this.configFile), { recursive: true, mode: 0o700 }),
        );
        await this.call(
          ['repository', 'create', ...repo.argv],
          [...this.connectFlags(this.kopiaCacheDirectory), `--encryption=${this.settings.encryption}`],
          [],
          { ...opts, extraEnv: repo.env },
        );
        result = elsewhere ? 'reconnected' : 'created';
      }
    }
    // Kopia makes the creator the maintenance owner. A host that only connects (a second host, a restore
    // on a new machine) must not take it over, or ownership would flip between hosts on every init.
    if (result === 'created') await this.ensureMaintenanceOwner(opts);
    // A repository server's user cannot set global policies; the server's admin does.
    if (backend.kind !== 'server') {
      await this.ensurePolicy(GLOBAL_POLICY, { compression: this.settings.compression }, opts);
    }
    return result;
  }

  /**
   * Try the password against the repository with a throw-away config. 'ok' when it opens,
   * 'absent' when there is no repository (missing directory or not initialized); throws otherwise.
   */
  private async probeConnect(repoArgs: RepositoryArgs, opts: CallOptions): Promise<'ok' | 'absent'> {
    const backend = this.backend;
    const label = this.repositoryLabel;
    const dir = await mkdtemp(path.join(tmpdir(), 'kopi-docka-probe-'));
    try {
      const configFile = path.join(dir, 'probe.config');
      const cache = path.join(dir, 'cache');
      const sub = ['repository', 'connect', ...repoArgs.argv];
      const res = await this.exec(this.argv(sub, this.connectFlags(cache), [], { configFile }), {
        ...opts,
        cacheDirectory: cache,
        extraEnv: repoArgs.env,
      });
      if (res.code === 0 && !res.timedOut && !res.aborted) return 'ok';
      const c = classifyStderr(res.stderrTail);
      if (!res.timedOut && !res.aborted) {
        if (c.reason === 'not-initialized') return 'absent';
        // Only a directory that does not exist at all is ours to create; "permission denied" or a
        // path that is a file must stay an error.
        if (
          c.reason === 'storage-missing' &&
          backend.kind === 'filesystem' &&
          !(await exists(path.resolve(backend.path)))
        ) {
          return 'absent';
        }
        if (c.reason === 'wrong-password') {
          throw new KopiaError(`wrong password for the existing repository at ${label}`, {
            reason: 'wrong-password',
            command: `kopia repository connect ${backend.kind}`,
            result: res,
            hint:
              'the repository exists but the configured password does not open it; set the password it ' +
              'was created with (nothing was changed)',
          });
        }
      }
      throw this.failure(['repository', 'connect', backend.kind], res);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  // -------------------------------------------------------------------------------------------------
  // Maintenance

  async maintenanceInfo(opts: CallOptions = {}): Promise<MaintenanceInfo> {
    const v = await this.callJson(['maintenance', 'info'], [], [], opts);
    if (!isRecord(v) || typeof v.owner !== 'string')
      throw unexpected('maintenance info', JSON.stringify(v).slice(0, 200));
    return v as MaintenanceInfo;
  }

  /** Make this identity the maintenance owner (read before write). Returns whether it changed. */
  async ensureMaintenanceOwner(opts: CallOptions = {}): Promise<boolean> {
    const info = await this.maintenanceInfo(opts);
    if (info.owner === this.identity) return false;
    await this.call(['maintenance', 'set'], ['--owner=me'], [], opts);
    return true;
  }

  async maintenanceRun(opts: CallOptions & { full?: boolean } = {}): Promise<void> {
    await this.call(['maintenance', 'run'], [opts.full ? '--full' : '--no-full'], [], opts);
  }

  /**
   * What auto-maintenance would do (we pass --no-auto-maintenance everywhere): run full or quick
   * maintenance when due and this identity is the owner. `info`: a `maintenanceInfo()` read earlier
   * in the run (e.g. concurrently with other reads), which spares this call its own repository open.
   */
  async maintenanceRunIfDue(
    opts: CallOptions & { info?: MaintenanceInfo | undefined } = {},
  ): Promise<'full' | 'quick' | 'not-due' | 'not-owner'> {
    const info = opts.info ?? (await this.maintenanceInfo(opts));
    if (info.owner !== this.identity) return 'not-owner';
    const now = Date.now();
    const due = (t: string | undefined) => t === undefined || Date.parse(t) <= now;
    if (info.full?.enabled !== false && due(info.schedule?.nextFullMaintenance)) {
      await this.maintenanceRun({ ...opts, full: true });
      return 'full';
    }
    if (info.quick?.enabled !== false && due(info.schedule?.nextQuickMaintenance)) {
      await this.maintenanceRun({ ...opts, full: false });
      return 'quick';
    }
    return 'not-due';
  }

  // -------------------------------------------------------------------------------------------------
  // Snapshots

  private snapshotFlags(opts: {
    source: string;
    tags: Record<string, string>;
    description?: string;
  }): string[] {
    if (opts.description !== undefined && opts.description.length > 1024) {
      throw new KopiDockaError('snapshot description longer than 1024 characters');
    }
    return [
      '--json',
      `--override-source=${normalizeSource(opts.source)}`,
      ...tagFlags(opts.tags),
      ...(opts.description === undefined ? [] : [`--description=${opts.description}`]),
    ];
  }

  /** Snapshot the directory (or file) `dir` under the identity `opts.source`. */
  async snapshotCreate(dir: string, opts: SnapshotCreateOptions): Promise<SnapshotManifest> {
    if (!path.isAbsolute(dir)) throw new KopiDockaError(`snapshot path must be absolute: ${dir}`);
    // The stall watchdog reads Kopia's progress counters: it needs the progress line.
    const progress = opts.onProgress !== undefined || Boolean(opts.stallTimeoutMs);
    const argv = this.argv(['snapshot', 'create'], this.snapshotFlags(opts), [dir], { progress });
    const res = await this.exec(argv, {
      ...opts,
      ...(opts.onProgress === undefined ? {} : { onStderrLine: (l: string) => opts.onProgress?.(l.trim()) }),
    });
    return parseSnapshotCreateOutput(res);
  }

  /**
   * argv and env for `kopia snapshot create --stdin-file=<name>` (the tar pipeline runs it through
   * process.pipeline). The snapshot root is a directory holding the one file `name`; read it back with
   * showToStream(`${m.rootEntry.obj}/${name}`). The env holds the password: never log it.
   */
  stdinSnapshotArgv(
    name: string,
    opts: { source: string; tags: Record<string, string>; description?: string },
    progress = false,
  ): string[] {
    if (!name || name.includes('/') || name === '.' || name === '..') {
      throw new KopiDockaError(`invalid stdin file name "${name}"`);
    }
    const src = parseSource(normalizeSource(opts.source));
    // The positional path need not exist (§3.5); using the source path keeps the root name telling.
    const argv = this.argv(
      ['snapshot', 'create'],
      [...this.snapshotFlags(opts), `--stdin-file=${name}`],
      [src.path],
      { progress },
    );
    return argv;
  }

  private assertPassword(): void {
    if (!this.settings.password) {
      // Without a password kopia would try to prompt (and fail on the non-TTY stdin).
      throw new RepositoryError('no repository password configured', {
        hint: 'set `password` or `password_file` in the [kopia] section of the config',
      });
    }
  }

  /**
   * `producer | kopia snapshot create --stdin-file=<name> <source path>` (reference §3.5), without a
   * shell: the snapshot root is a directory holding the one file `name`; read it back with
   * showInto(`${m.rootEntry.obj}/${name}`). Both exit statuses come back — a snapshot of a truncated
   * stream is recorded by Kopia as if it were whole, so the caller judges the producer too; read the
   * manifest with parseSnapshotCreateOutput(result.kopia), a mid-stream failure with
   * stdinSnapshotFailure(result.kopia, …) when `kopiaFailedFirst`.
   *
   * @throws RepositoryError without a password; DependencyError when kopia or the producer cannot start.
   */
  async snapshotCreateFromStream(
    producer: readonly string[],
    name: string,
    opts: {
      source: string;
      tags: Record<string, string>;
      description?: string;
      timeoutMs?: number | undefined;
      signal?: AbortSignal | undefined;
      /** The stall watchdog on Kopia (ms; 0 = off): no hashed bytes for this long stops the pipeline. */
      stallTimeoutMs?: number | undefined;
    },
  ): Promise<{ producer: RunResult; kopia: RunResult; kopiaFailedFirst: boolean }> {
    this.assertPassword();
    const argv = this.stdinSnapshotArgv(name, opts, Boolean(opts.stallTimeoutMs));
    const env = this.env();
    const bounds: RunOptions = {
      ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
      ...(opts.signal === undefined ? {} : { signal: opts.signal }),
    };
    this.debug?.(`${producer.join(' ')} | kopia ${argv.slice(1).join(' ')}`);
    const stall: RunOptions = opts.stallTimeoutMs
      ? { stallTimeoutMs: opts.stallTimeoutMs, progressKey: progressCounters }
      : {};
    const started = Date.now();
    const res = await pipeline(producer, argv, bounds, { ...bounds, ...stall, env }).catch((err: unknown) => {
      throw this.spawnError(err);
    });
    this.record(argv, started, res.consumer.code);
    return {
      producer: res.producer,
      kopia: { ...res.consumer, stderrTail: this.redact(res.consumer.stderrTail) },
      kopiaFailedFirst: res.consumerFailedFirst,
    };
  }

  /**
   * `kopia show <object> | consumer` (reference: `kopia show` writes an object's bytes to stdout), e.g.
   * a tar stream snapshot into `tar -x`. Returns both results; the consumer's stdout is captured up to
   * `consumer.maxStdoutBytes`.
   *
   * @throws RepositoryError without a password; DependencyError when kopia or the consumer cannot start.
   */
  async showInto(
    object: string,
    consumer: readonly string[],
    consumerOpts: Pick<RunOptions, 'maxStdoutBytes' | 'timeoutMs' | 'signal' | 'cwd'> = {},
  ): Promise<{ kopia: RunResult; consumer: RunResult }> {
    this.assertPassword();
    const argv = this.argv(['show'], [], [object]);
    this.debug?.(`kopia ${argv.slice(1).join(' ')} | ${consumer.join(' ')}`);
    const started = Date.now();
    const res = await pipeline(argv, consumer, { env: this.env() }, consumerOpts).catch((err: unknown) => {
      throw this.spawnError(err);
    });
    this.record(argv, started, res.producer.code);
    return {
      kopia: { ...res.producer, stderrTail: this.redact(res.producer.stderrTail) },
      consumer: res.consumer,
    };
  }

  /**
   * The error for a `snapshot create --stdin-file` that gave up mid-stream (repository full or gone):
   * Kopia's own last words (password scrubbed), classified (e.g. 'storage-full' for "no space left on
   * device") with the matching hint.
   */
  stdinSnapshotFailure(result: RunResult, what: string): KopiaError {
    const stderr = this.redact(result.stderrTail);
    const { reason, hint } = classifyStderr(stderr);
    const last = lastLines(stderr);
    const how =
      result.stalled || result.timedOut
        ? describeResult(result)
        : `exited ${String(result.code ?? result.signal)}`;
    return new KopiaError(`kopia failed while reading the tar stream of ${what} (${how}): ${last}`, {
      reason,
      command: 'kopia snapshot create --stdin-file',
      result: { ...result, stderrTail: stderr },
      hint: hint ?? 'check the repository (free space, reachability) with `kopi-docka doctor`',
    });
  }

  /** parseSnapshotCreateOutput with the password scrubbed from anything kopia printed. */
  parseSnapshotCreateOutput(result: RunResult): SnapshotManifest {
    return parseSnapshotCreateOutput({ ...result, stderrTail: this.redact(result.stderrTail) });
  }

  /**
   * `snapshot list --json`. With `source`, only that exact source (kopia also returns ancestor
   * paths); without it, this identity's snapshots, or every user's and host's with `all`.
   * Incomplete snapshots are included; check `incomplete`.
   */
  async snapshotList(
    opts: CallOptions & { source?: string; tags?: Record<string, string>; all?: boolean } = {},
  ): Promise<SnapshotManifest[]> {
    const src = opts.source === undefined ? undefined : normalizeSource(opts.source);
    const v = await this.callJson(
      ['snapshot', 'list'],
      tagFlags(opts.tags ?? {}),
      src === undefined ? [] : [src],
      opts,
    );
    if (!Array.isArray(v)) throw unexpected('snapshot list', 'not a JSON array');
    const all = v.map((x) => asManifest(x, 'snapshot list'));
    if (src !== undefined) {
      const want = parseSource(src);
      return all.filter(
        (m) =>
          m.source.path === want.path && m.source.host === want.host && m.source.userName === want.userName,
      );
    }
    if (opts.all) return all;
    return all.filter(
      (m) => m.source.host === this.settings.hostname && m.source.userName === this.settings.username,
    );
  }

  /** IDs of all snapshot manifests, cheaply (labels only, no manifest bodies). */
  private async snapshotIds(opts: CallOptions): Promise<Set<string>> {
    const v = await this.callJson(['manifest', 'list'], ['--filter=type:snapshot'], [], opts);
    if (!Array.isArray(v)) throw unexpected('manifest list', 'not a JSON array');
    const ids = new Set<string>();
    for (const e of v) if (isRecord(e) && typeof e.id === 'string') ids.add(e.id);
    return ids;
  }

  /**
   * Delete snapshot manifests by ID, then verify they are gone. IDs already gone are fine. Only
   * manifest IDs are accepted: kopia would treat a root object ID as "every snapshot with this root".
   */
  async snapshotDelete(ids: readonly string[], opts: CallOptions = {}): Promise<void> {
    for (const id of ids) {
      if (!/^[0-9a-f]{32}$/.test(id)) throw new KopiDockaError(`not a snapshot manifest ID: "${id}"`);
    }
    if (ids.length === 0) return;
    const before = await this.snapshotIds(opts);
    const present = ids.filter((id) => before.has(id));
    if (present.length > 0) {
      // Without --delete it is a dry run (§4.3).
      await this.call(['snapshot', 'delete'], ['--delete'], present, opts);
    }
    const after = await this.snapshotIds(opts);
    const left = ids.filter((id) => after.has(id));
    if (left.length > 0) {
      throw new KopiaError(`kopia did not delete snapshot(s) ${left.join(', ')}`, {
        reason: 'failed',
        command: 'kopia snapshot delete',
      });
    }
  }

  /**
   * `kopia snapshot delete --delete <id>...` in ONE process (reference §4.3), without the before/after
   * `manifest list` snapshotDelete makes: for IDs this run just listed or created (warm snapshots).
   * Only manifest IDs are accepted.
   *
   * @throws KopiDockaError for a non-manifest ID; KopiaError when kopia fails (e.g. an ID is gone).
   */
  async snapshotDeleteMany(ids: readonly string[], opts: CallOptions = {}): Promise<void> {
    for (const id of ids) {
      if (!/^[0-9a-f]{32}$/.test(id)) throw new KopiDockaError(`not a snapshot manifest ID: "${id}"`);
    }
    if (ids.length === 0) return;
    await this.call(['snapshot', 'delete'], ['--delete'], ids, opts);
  }

  /** Apply the source's retention policy now (`snapshot expire --delete`). */
  async expire(source: string, opts: CallOptions = {}): Promise<void> {
    await this.call(['snapshot', 'expire'], ['--delete'], [normalizeSource(source)], opts);
  }

  /** Restore a snapshot (manifest ID, object ID, either + /sub/path, or a source) into `target`. */
  async restore(snapshotIdOrPath: string, target: string, opts: RestoreOptions = {}): Promise<void> {
    if (!path.isAbsolute(target)) throw new KopiDockaError(`restore target must be absolute: ${target}`);
    // Holes stay holes (sparse files are not written out in full).
    const flags = [
      '--write-sparse-files',
      ...(opts.skipOwners ? ['--skip-owners'] : []),
      ...(opts.skipPermissions ? ['--skip-permissions'] : []),
      ...(opts.skipTimes ? ['--skip-times'] : []),
      ...(opts.deleteExtra ? ['--delete-extra'] : []),
      ...(opts.ignorePermissionErrors === false ? ['--no-ignore-permission-errors'] : []),
    ];
    await this.call(['snapshot', 'restore'], flags, [snapshotIdOrPath, target], opts);
  }

  /**
   * `kopia show <objectPath>` streamed into `out` (never buffered). `out` is ended when kopia's output
   * ends; resolves once it has finished. objectPath is an object ID (e.g. `${rootEntry.obj}/name`),
   * not a manifest ID.
   */
  /** Entry names directly under `<snapshot or object id>[/path]` (directories end with '/'). */
  async ls(objectPath: string, opts: CallOptions = {}): Promise<string[]> {
    const out = await this.call(['ls'], [], [objectPath], opts);
    return out.split('\n').filter((l) => l.length > 0);
  }

  async showToStream(objectPath: string, out: Writable, opts: CallOptions = {}): Promise<void> {
    const sub = ['show'];
    const res = await this.exec(this.argv(sub, [], [objectPath]), { ...opts, stdoutTo: out });
    if (res.code !== 0 || res.timedOut || res.aborted) {
      out.destroy();
      throw this.failure(sub, res);
    }
    if (out.writableEnded && !out.writableFinished) await finished(out);
  }

  // -------------------------------------------------------------------------------------------------
  // Policies

  private policyTargetArgs(target: string): { flags: string[]; positionals: string[] } {
    if (target === GLOBAL_POLICY) return { flags: ['--global'], positionals: [] };
    const t = policyTargetOf(target);
    const s = t.path
      ? `${t.userName}@${t.host}:${t.path}`
      : t.userName
        ? `${t.userName}@${t.host}`
        : `@${t.host}`;
    return { flags: [], positionals: [s] };
  }

  /** The EFFECTIVE (merged) policy for a target, `(global)` for the global one. */
  async policyShow(target: string, opts: CallOptions = {}): Promise<KopiaPolicy> {
    const t = this.policyTargetArgs(target);
    const stdout = await this.call(['policy', 'show'], ['--json', ...t.flags], t.positionals, opts);
    return asPolicy(parseJson(stdout, 'policy show', { stdout }), 'policy show');
  }

  /** Policies that are defined (not inherited), each with its exact target. */
  async policyList(opts: CallOptions = {}): Promise<DefinedPolicy[]> {
    const v = await this.callJson(['policy', 'list'], [], [], opts);
    if (!Array.isArray(v)) throw unexpected('policy list', 'not a JSON array');
    return v.map((p) => {
      const pol = asPolicy(p, 'policy list');
      const r = p as Record<string, unknown>;
      if (typeof r.id !== 'string' || !isRecord(r.target))
        throw unexpected('policy list', 'entry without id/target');
      return pol as DefinedPolicy;
    });
  }

  /** The policy defined for exactly this target, if any. */
  async policyDefined(target: string, opts: CallOptions = {}): Promise<DefinedPolicy | undefined> {
    const want = policyTargetOf(target);
    const list = await this.policyList(opts);
    return list.find(
      (p) =>
        p.target.host === want.host && p.target.userName === want.userName && p.target.path === want.path,
    );
  }

  /** `policy set <flags> <target>`; flags must be non-empty (kopia fails on "no changes"). */
  async policySet(target: string, flags: readonly string[], opts: CallOptions = {}): Promise<void> {
    await this.policySetMany([target], flags, opts);
  }

  /** One `policy set` applying the same flags to every target (the global policy only alone). */
  async policySetMany(
    targets: readonly string[],
    flags: readonly string[],
    opts: CallOptions = {},
  ): Promise<void> {
    if (flags.length === 0) throw new KopiDockaError('policySet: no flags');
    for (const f of flags) if (!f.startsWith('--')) throw new KopiDockaError(`policySet: not a flag: "${f}"`);
    if (targets.length > 1 && targets.includes(GLOBAL_POLICY)) {
      throw new KopiDockaError('policySet: the global policy cannot share a call with other targets');
    }
    const args = targets.map((t) => this.policyTargetArgs(t));
    await this.call(
      ['policy', 'set'],
      [...flags, ...args.flatMap((a) => a.flags)],
      args.flatMap((a) => a.positionals),
      opts,
    );
  }

  /**
   * Make the policy DEFINED for `target` match `desired` (only the keys given). Reads before it writes
   * and writes only what differs; returns whether it wrote. Compares against `policy list`, not
   * `policy show`, because show merges inherited values: a value equal to the parent's would look
   * "set" and never be written, and the target would silently follow later parent changes.
   */
  async ensurePolicy(target: string, desired: DesiredPolicy, opts: CallOptions = {}): Promise<boolean> {
    return (await this.ensurePolicies([{ target, desired }], opts)) > 0;
  }

  /**
   * ensurePolicy for several targets with one `policy list` to read them all (every kopia call opens
   * the repository, so per-target reads cost seconds per unit). Returns how many were written.
   * `defined`: that listing, read beforehand (a run reads it beside its pre-flight and writes only
   * once the pre-flight has passed); then only the writes and their verifying list are made here.
   */
  async ensurePolicies(
    items: readonly { target: string; desired: DesiredPolicy }[],
    opts: CallOptions = {},
    defined?: readonly DefinedPolicy[],
  ): Promise<number> {
    const find = (list: readonly DefinedPolicy[], target: string) => {
      const want = policyTargetOf(target);
      return list.find(
        (p) =>
          p.target.host === want.host && p.target.userName === want.userName && p.target.path === want.path,
      );
    };
    const before = defined ?? (await this.policyList(opts));
    // Targets needing the same change share one `policy set` (it takes several targets): each call
    // opens the repository, which costs a key derivation.
    const groups = new Map<string, { flags: string[]; targets: string[] }>();
    for (const { target, desired } of items) {
      const flags = policyDiffFlags(find(before, target), desired);
      if (flags.length === 0) continue;
      const key =
        target === GLOBAL_POLICY ? `${GLOBAL_POLICY}\u0000${flags.join('\u0000')}` : flags.join('\u0000');
      const g = groups.get(key) ?? { flags, targets: [] };
      g.targets.push(target);
      groups.set(key, g);
    }
    let written = 0;
    for (const g of groups.values()) {
      await this.policySetMany(g.targets, g.flags, opts);
      written += g.targets.length;
    }
    if (written === 0) return 0;
    const after = await this.policyList(opts);
    for (const { target, desired } of items) {
      const rest = policyDiffFlags(find(after, target), desired);
      if (rest.length > 0) {
        throw new KopiaError(
          `kopia policy set did not apply to ${target}: still differs in ${rest.join(' ')}`,
          {
            reason: 'failed',
            command: 'kopia policy set',
          },
        );
      }
    }
    return written;
  }
}
