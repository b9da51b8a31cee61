/**
 * Finds, reads and validates the configuration: file → environment overrides → defaults, or the
 * embedded default when no config file exists anywhere. Every problem is a ConfigError (exit 3) that
 * names the file, the line and the key; an existing file that cannot be read is never skipped in
 * favour of another file or of the defaults.
 */
import { createHash, randomBytes } from 'node:crypto';
import { constants as fsConstants, type Stats } from 'node:fs';
import { link, mkdir, open, readFile, stat, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, errorMessage } from '../errors.js';
import { envValue, homeDir } from './env.js';
import { parseIni, type IniDocument, type IniEntry } from './ini.js';
import {
  DEFAULTS,
  DEFAULT_STATE_DIR,
  ENCRYPTIONS,
  LEGACY_KEY_HINTS,
  SCHEMA,
  VOLUME_MODES,
  ValueError,
  nearest,
  parseAbsolutePath,
  parseBool,
  parseChoice,
  parseCompression,
  parseIdentityPart,
  parseInteger,
  parseList,
  parseLogLevelValue,
  parseWorkers,
  shortHostname,
  splitShellWords,
} from './schema.js';
import type { Config, Origin } from './types.js';

/** Facts about the machine the defaults depend on (injectable so tests are deterministic). */
export interface SystemInfo {
  cores: number;
  availableMemoryBytes: number;
  hostname: string;
}

export interface LoadOptions {
  /** `--config`; wins over KOPI_DOCKA_CONFIG. A named file that does not exist is an error. */
  explicitPath?: string | undefined;
  /** Candidates tried in order when no file is named; defaults to defaultSearchPaths(). */
  searchPaths?: readonly string[] | undefined;
  /** Read instead of process.env (tests). Empty strings count as unset. */
  env?: Readonly<Record<string, string | undefined>> | undefined;
  system?: Partial<SystemInfo> | undefined;
}

/** The environment variables the loader reads (documented in docs/configuration.md). */
export const ENV = {
  config: 'KOPI_DOCKA_CONFIG',
  password: 'KOPI_DOCKA_PASSWORD',
  logLevel: 'KOPI_DOCKA_LOG_LEVEL',
  stateDir: 'KOPI_DOCKA_STATE_DIR',
  kopiaBin: 'KOPI_DOCKA_KOPIA_BIN',
} as const;

/** /etc first (a backup tool usually runs as root), then the user's; `kopi-docker` is a spelling the original README printed. */
export function defaultSearchPaths(home: string | undefined): string[] {
  const paths = ['/etc/kopi-docka.conf'];
  if (home !== undefined) {
    paths.push(path.join(home, '.config/kopi-docka/config.conf'));
    paths.push(path.join(home, '.config/kopi-docker/config.conf'));
  }
  return paths;
}

/** `<stateDir>/kopia/<12 hex of sha256(repositoryPath)>.config`: a new repository_path never reuses the old connection. */
export function kopiaConfigFileFor(stateDir: string, repositoryPath: string): string {
  const digest = createHash('sha256').update(repositoryPath).digest('hex').slice(0, 12);
  return path.join(stateDir, 'kopia', `${digest}.config`);
}

type EnvGetter = (name: string) => string | undefined;

function envGetter(env: LoadOptions['env']): EnvGetter {
  if (env === undefined) return envValue;
  return (name) => {
    const v = env[name];
    return v === undefined || v === '' ? undefined : v;
  };
}

function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') {
    return err.code;
  }
  return undefined;
}

function describeFsError(err: unknown): string {
  switch (errnoCode(err)) {
    case 'ENOENT':
      return 'it does not exist';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'it is a directory';
    case 'ENOTDIR':
      return 'a parent of it is not a directory';
    default:
      return errorMessage(err);
  }
}

const modeText = (mode: number) => `0${(mode & 0o777).toString(8)}`;

interface FoundFile {
  file: string;
  text: string;
  stats: Stats;
}

/** Reads a config file; any failure on a file that exists is fatal (no fallback to another source). */
async function readConfigFile(file: string): Promise<FoundFile> {
  try {
    const handle = await open(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    try {
      const stats = await handle.stat();
      if (stats.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
      if (!stats.isFile()) throw new Error('not a regular file');
      return { file, text: await handle.readFile('utf8'), stats };
    } finally {
      await handle.close();
    }
  } catch (err) {
    throw new ConfigError(
      `cannot read config file ${file}: ${describeFsError(err)}`,
      'fix the file or its permissions (kopi-docka never falls back to another config or to defaults when a config file exists)',
    );
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    // Cannot even tell whether it exists: guessing "no" could silently pick another config.
    throw new ConfigError(
      `cannot check config file ${file}: ${describeFsError(err)}`,
      'fix the permissions of the file or its directory, or name the config with --config',
    );
  }
}

async function locateConfig(opts: LoadOptions, env: EnvGetter): Promise<FoundFile | undefined> {
  const named =
    opts.explicitPath !== undefined
      ? { file: opts.explicitPath, via: '--config' }
      : env(ENV.config) !== undefined
        ? { file: env(ENV.config) ?? '', via: ENV.config }
        : undefined;
  if (named) {
    if (named.file.trim() === '') throw new ConfigError(`${named.via} names an empty path`);
    const file = path.resolve(named.file);
    if (!(await exists(file))) {
      throw new ConfigError(
        `config file ${file} (named by ${named.via}) does not exist`,
        'check the path, or drop the option to use the default search order (see docs/configuration.md)',
      );
    }
    return readConfigFile(file);
  }
  const candidates = opts.searchPaths ?? defaultSearchPaths(opts.env ? env('HOME') : homeDir());
  for (const candidate of candidates) {
    const file = path.resolve(candidate);
    if (await exists(file)) return readConfigFile(file);
  }
  return undefined;
}

function validateStructure(doc: IniDocument): void {
  const sectionNames = Object.keys(SCHEMA);
  for (const section of doc.sections.values()) {
    const keys = SCHEMA[section.name];
    if (keys === undefined) {
      const guess = nearest(section.name, sectionNames);
      throw new ConfigError(
        `${doc.file}:${section.line}: unknown section [${section.name}]${guess ? `; did you mean [${guess}]?` : ''}`,
        `valid sections: ${sectionNames.map((s) => `[${s}]`).join(', ')}`,
      );
    }
    for (const entry of section.entries.values()) {
      if (keys.includes(entry.key)) continue;
      const where = `${doc.file}:${entry.line}: unknown key "${entry.key}" in [${section.name}]`;
      const legacy = LEGACY_KEY_HINTS[`${section.name}.${entry.key}`];
      if (legacy !== undefined) throw new ConfigError(where, legacy);
      const guess = nearest(entry.key, keys);
      if (guess !== undefined) {
        throw new ConfigError(
          `${where}; did you mean "${guess}"?`,
          `valid keys in [${section.name}]: ${keys.join(', ')}`,
        );
      }
      const home = sectionNames.find((s) => SCHEMA[s]?.includes(entry.key));
      throw new ConfigError(
        where,
        home !== undefined
          ? `"${entry.key}" belongs in the [${home}] section`
          : `valid keys in [${section.name}]: ${keys.join(', ')}`,
      );
    }
  }
}

/** Looks values up in the parsed file, records their origin and turns parse failures into located errors. */
class Reader {
  readonly origins: Record<string, Origin> = {};

  constructor(private readonly doc: IniDocument | undefined) {
    for (const [section, keys] of Object.entries(SCHEMA)) {
      for (const key of keys) this.origins[`${section}.${key}`] = 'default';
    }
  }

  get file(): string | undefined {
    return this.doc?.file;
  }

  entry(section: string, key: string): IniEntry | undefined {
    if (!SCHEMA[section]?.includes(key))
      throw new Error(`internal: ${section}.${key} is not in the config schema`);
    return this.doc?.sections.get(section)?.entries.get(key);
  }

  fail(section: string, key: string, entry: IniEntry, err: unknown, fallback: string | undefined): never {
    if (!(err instanceof ValueError)) throw err;
    throw new ConfigError(
      `${this.file ?? '(config)'}:${entry.line}: [${section}] ${key}: ${err.message}, found ${JSON.stringify(entry.value)}`,
      err.hint ??
        (fallback === undefined
          ? `fix the value on line ${entry.line}`
          : `fix the value on line ${entry.line}, or remove the line to use the default (${fallback})`),
    );
  }

  /** The parsed value from the file, else `fallback` (`fallbackText` names it in error hints). */
  read<T>(
    section: string,
    key: string,
    parse: (raw: string) => T,
    fallback: T,
    fallbackText: string | undefined = fallback === undefined ? undefined : JSON.stringify(fallback),
  ): T {
    const entry = this.entry(section, key);
    if (entry === undefined) return fallback;
    this.origins[`${section}.${key}`] = 'file';
    try {
      return parse(entry.value);
    } catch (err) {
      return this.fail(section, key, entry, err, fallbackText);
    }
  }
}

async function readPasswordFile(file: string, what: string): Promise<{ password: string; stats: Stats }> {
  let text: string;
  let stats: Stats;
  try {
    stats = await stat(file);
    if (stats.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    // A FIFO or device would block or never end; a password lives in a regular file.
    if (!stats.isFile()) throw new Error('not a regular file');
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(
      `${what}: cannot read password file ${file}: ${describeFsError(err)}`,
      'create it with the repository password on one line, owned by root with mode 600',
    );
  }
  const password = text.replace(/[\r\n]+$/, '');
  if (password === '') {
    throw new ConfigError(
      `${what}: password file ${file} is empty`,
      'put the repository password in it (one line)',
    );
  }
  return { password, stats };
}

function loosePermissionWarning(file: string, stats: Stats, what: string): string | undefined {
  if ((stats.mode & 0o077) === 0) return undefined;
  return `${file} ${what} but is accessible to group/others (mode ${modeText(stats.mode)}); run: chmod 600 ${file}`;
}

/**
 * The embedded default's password: generated once and kept in `file`. Written to a private temp file
 * and hard-linked into place, so a concurrent run either creates it or reads a complete one.
 */
async function ensureGeneratedPassword(file: string): Promise<{ password: string; stats: Stats }> {
  const what = 'embedded default';
  if (!(await exists(file))) {
    try {
      await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
      await createPasswordFile(file, `${randomBytes(32).toString('base64url')}\n`);
    } catch (err) {
      throw new ConfigError(
        `no config file found, and the embedded default cannot create its password file ${file}: ${describeFsError(err)}`,
        `run as root, set ${ENV.stateDir} to a writable directory, or write a config file (see docs/configuration.md)`,
      );
    }
  }
  return readPasswordFile(file, what);
}

/** Creates `file` (mode 0600) with `content` unless it already exists; never overwrites, never leaves it half-written. */
async function createPasswordFile(file: string, content: string): Promise<void> {
  const writeExclusive = async (target: string) => {
    const handle = await open(target, 'wx', 0o600);
    try {
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
  };
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  await writeExclusive(tmp);
  try {
    await link(tmp, file);
  } catch (err) {
    const code = errnoCode(err);
    // EEXIST: a concurrent run won the race, and its file is complete; use that one.
    if (code === 'EEXIST') return;
    // No hard links on this filesystem: an exclusive create still never overwrites a password.
    if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP') await writeExclusive(file);
    else throw err;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

function systemInfo(partial: Partial<SystemInfo> | undefined): SystemInfo {
  return {
    cores: partial?.cores ?? os.availableParallelism(),
    availableMemoryBytes: partial?.availableMemoryBytes ?? os.freemem(),
    hostname: partial?.hostname ?? os.hostname(),
  };
}

export async function loadConfig(opts: LoadOptions): Promise<Config> {
  const env = envGetter(opts.env);
  const system = systemInfo(opts.system);
  const warnings: string[] = [];

  const stateDirRaw = env(ENV.stateDir);
  if (stateDirRaw !== undefined && !stateDirRaw.startsWith('/')) {
    throw new ConfigError(
      `${ENV.stateDir}="${stateDirRaw}" is not an absolute path`,
      'set it to an absolute directory',
    );
  }
  const stateDir = stateDirRaw === undefined ? DEFAULT_STATE_DIR : path.resolve(stateDirRaw);
  const binary = env(ENV.kopiaBin) ?? DEFAULTS.kopia.binary;
  const envPassword = env(ENV.password);

  const found = await locateConfig(opts, env);
  const doc = found ? parseIni(found.text, found.file) : undefined;
  if (doc) validateStructure(doc);
  const r = new Reader(doc);
  const file = found?.file;

  // [kopia]
  let repositoryPath: string;
  let password: string;
  let passwordFile: string | undefined;
  let compression: string;
  if (found === undefined) {
    repositoryPath = path.join(stateDir, 'repository');
    compression = DEFAULTS.kopia.compression;
    for (const key of ['repository_path', 'password', 'password_file', 'compression']) {
      r.origins[`kopia.${key}`] = 'embedded-default';
    }
    if (envPassword !== undefined) {
      password = envPassword;
      passwordFile = undefined;
      r.origins['kopia.password'] = 'env';
      r.origins['kopia.password_file'] = 'default';
      warnings.push(
        `no config file found; using the embedded default: filesystem repository ${repositoryPath} (password from ${ENV.password})`,
      );
    } else {
      passwordFile = path.join(stateDir, 'repository.password');
      const generated = await ensureGeneratedPassword(passwordFile);
      password = generated.password;
      const loose = loosePermissionWarning(passwordFile, generated.stats, 'holds the repository password');
      if (loose) warnings.push(loose);
      warnings.push(
        `no config file found; using the embedded default: filesystem repository ${repositoryPath} (password in ${passwordFile})`,
      );
    }
  } else {
    const repoEntry = r.entry('kopia', 'repository_path');
    if (repoEntry === undefined) {
      throw new ConfigError(
        `${found.file}: [kopia] repository_path is missing`,
        'add "repository_path = /absolute/path/of/the/repository" under [kopia]',
      );
    }
    repositoryPath = r.read('kopia', 'repository_path', parseAbsolutePath, '');
    compression = r.read('kopia', 'compression', parseCompression, DEFAULTS.kopia.compression);

    const pwEntry = r.entry('kopia', 'password');
    const pwFileEntry = r.entry('kopia', 'password_file');
    // The password "comes from the file" whether inline or through the password_file it names.
    if (pwEntry !== undefined || pwFileEntry !== undefined) r.origins['kopia.password'] = 'file';
    if (pwFileEntry !== undefined) r.origins['kopia.password_file'] = 'file';
    if (pwEntry !== undefined && pwEntry.value === '') {
      throw new ConfigError(
        `${found.file}:${pwEntry.line}: [kopia] password is empty`,
        'set it, or use password_file = /path/to/file (recommended) instead',
      );
    }
    if (pwFileEntry !== undefined && pwFileEntry.value === '') {
      throw new ConfigError(
        `${found.file}:${pwFileEntry.line}: [kopia] password_file is empty`,
        'name the file that holds the repository password, or remove the line',
      );
    }
    if (pwEntry !== undefined && pwFileEntry !== undefined) {
      warnings.push(
        `${found.file}: both password (line ${pwEntry.line}) and password_file (line ${pwFileEntry.line}) are set in [kopia]; password_file wins — remove the password line`,
      );
    }
    if (envPassword !== undefined) {
      password = envPassword;
      passwordFile = undefined;
      r.origins['kopia.password'] = 'env';
    } else if (pwFileEntry !== undefined) {
      // Relative to the config file, so a config and its password file can move together.
      passwordFile = path.resolve(path.dirname(found.file), pwFileEntry.value);
      const read = await readPasswordFile(
        passwordFile,
        `${found.file}:${pwFileEntry.line}: [kopia] password_file`,
      );
      password = read.password;
      const loose = loosePermissionWarning(passwordFile, read.stats, 'holds the repository password');
      if (loose) warnings.push(loose);
    } else if (pwEntry !== undefined) {
      password = pwEntry.value;
      passwordFile = undefined;
    } else {
      throw new ConfigError(
        `${found.file}: no repository password: [kopia] has neither password_file nor password`,
        `add "password_file = /etc/kopi-docka.password" (recommended; a file with mode 600 holding the password) or "password = …" under [kopia] in ${found.file}, or set ${ENV.password}`,
      );
    }
    if (pwEntry !== undefined) {
      const loose = loosePermissionWarning(found.file, found.stats, 'holds the repository password');
      if (loose) warnings.push(loose);
    }
    if ((found.stats.mode & 0o022) !== 0) {
      warnings.push(
        `${found.file} is writable by group/others (mode ${modeText(found.stats.mode)}); its hooks run as this user — run: chmod go-w ${found.file}`,
      );
    }
  }

  const encryption = r.read(
    'kopia',
    'encryption',
    (v) => parseChoice(v, ENCRYPTIONS),
    DEFAULTS.kopia.encryption,
  );
  const cacheDirectory = r.read('kopia', 'cache_directory', parseAbsolutePath, DEFAULTS.kopia.cacheDirectory);
  const hostname = r.read('kopia', 'hostname', parseIdentityPart, shortHostname(system.hostname));
  const username = r.read('kopia', 'username', parseIdentityPart, DEFAULTS.kopia.username);

  // [backup]
  const b = DEFAULTS.backup;
  const workers = r.read(
    'backup',
    'parallel_workers',
    (v) => parseWorkers(v, system),
    parseWorkers('auto', system),
    'auto',
  );
  const taskEntry = r.entry('backup', 'task_timeout');
  const taskTimeout = r.read('backup', 'task_timeout', (v) => parseInteger(v, 0), b.taskTimeout);
  if (taskEntry !== undefined) {
    warnings.push(
      `${file ?? '(config)'}:${taskEntry.line}: [backup] task_timeout is deprecated (a key of the Python kopi-docka); ` +
        `it is still honoured: each Kopia/tar call while containers are down may take ${taskTimeout === 0 ? 'unlimited time' : `at most ${taskTimeout} s`}`,
    );
  }
  const hook = (v: string) => {
    const argv = splitShellWords(v);
    return argv.length === 0 ? undefined : argv;
  };

  // [logging]
  let level = r.read('logging', 'level', parseLogLevelValue, DEFAULTS.logging.level);
  const envLevel = env(ENV.logLevel);
  if (envLevel !== undefined) {
    try {
      level = parseLogLevelValue(envLevel);
    } catch {
      throw new ConfigError(
        `${ENV.logLevel}="${envLevel}" is not a log level`,
        'use one of: debug, info, warning (or warn), error',
      );
    }
    r.origins['logging.level'] = 'env';
  }

  const retentionKey = (key: string, fallback: number) =>
    r.read('retention', key, (v) => parseInteger(v, 0), fallback);
  const rt = DEFAULTS.retention;

  return {
    file,
    embeddedDefault: found === undefined,
    stateDir,
    kopia: {
      repositoryPath,
      password,
      passwordFile,
      compression,
      encryption,
      cacheDirectory,
      kopiaConfigFile: kopiaConfigFileFor(stateDir, repositoryPath),
      hostname,
      username,
      binary,
    },
    backup: {
      // Defaults follow the state dir, so KOPI_DOCKA_STATE_DIR isolates a whole installation.
      backupBasePath: r.read('backup', 'backup_base_path', parseAbsolutePath, path.join(stateDir, 'backups')),
      parallelWorkers: workers.workers,
      parallelWorkersAuto: workers.auto,
      stopTimeout: r.read('backup', 'stop_timeout', (v) => parseInteger(v, 1, 3600), b.stopTimeout),
      startTimeout: r.read('backup', 'start_timeout', (v) => parseInteger(v, 1, 3600), b.startTimeout),
      taskTimeout,
      excludePatterns: r.read('backup', 'exclude_patterns', parseList, []),
      volumeMode: r.read('backup', 'volume_mode', (v) => parseChoice(v, VOLUME_MODES), b.volumeMode),
      tarDeterministicMtime: r.read('backup', 'tar_deterministic_mtime', parseBool, b.tarDeterministicMtime),
      updateRecoveryBundle: r.read('backup', 'update_recovery_bundle', parseBool, b.updateRecoveryBundle),
      recoveryBundlePath: r.read(
        'backup',
        'recovery_bundle_path',
        parseAbsolutePath,
        path.join(stateDir, 'recovery'),
      ),
      recoveryBundleRetention: r.read(
        'backup',
        'recovery_bundle_retention',
        (v) => parseInteger(v, 1, 100),
        b.recoveryBundleRetention,
      ),
      preBackupHook: r.read('backup', 'pre_backup_hook', hook, undefined),
      postBackupHook: r.read('backup', 'post_backup_hook', hook, undefined),
    },
    retention: {
      latest: retentionKey('latest', rt.latest),
      hourly: retentionKey('hourly', rt.hourly),
      daily: retentionKey('daily', rt.daily),
      weekly: retentionKey('weekly', rt.weekly),
      monthly: retentionKey('monthly', rt.monthly),
      yearly: retentionKey('yearly', rt.yearly),
    },
    logging: { level },
    origins: r.origins,
    warnings,
  };
}
