/**
 * Finding and reading the config file. Any failure on a file that exists (or may exist) is fatal:
 * kopi-docka never falls back to another config or to the defaults, because backing up into a
 * different repository than the one configured is worse than not backing up.
 */
import { constants as fsConstants, type Stats } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, errorMessage } from '../errors.js';

/** The environment variables the loader reads (documented in docs/configuration.md). */
export const ENV = {
  config: 'KOPI_DOCKA_CONFIG',
  password: 'KOPI_DOCKA_PASSWORD',
  logLevel: 'KOPI_DOCKA_LOG_LEVEL',
  stateDir: 'KOPI_DOCKA_STATE_DIR',
  kopiaBin: 'KOPI_DOCKA_KOPIA_BIN',
} as const;

/** Reads one environment variable; empty counts as unset. */
export type EnvGetter = (name: string) => string | undefined;

/** /etc first (a backup tool usually runs as root), then the user's; `kopi-docker` is a spelling the original README printed. */
export function defaultSearchPaths(home: string | undefined): string[] {
  const paths = ['/etc/kopi-docka.conf'];
  if (home !== undefined) {
    paths.push(path.join(home, '.config/kopi-docka/config.conf'));
    paths.push(path.join(home, '.config/kopi-docker/config.conf'));
  }
  return paths;
}

export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string') {
    return err.code;
  }
  return undefined;
}

export function describeFsError(err: unknown): string {
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

export const modeText = (mode: number) => `0${(mode & 0o777).toString(8)}`;

export interface FoundFile {
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

export async function exists(file: string): Promise<boolean> {
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

/** Where to look: `--config`, else KOPI_DOCKA_CONFIG, else the first existing search path. */
export interface Locate {
  explicitPath?: string | undefined;
  searchPaths?: readonly string[] | undefined;
  /** The home directory for the default search paths. */
  home: string | undefined;
}

/** The config file to use, read; undefined when none exists (the embedded default applies). */
export async function locateConfig(opts: Locate, env: EnvGetter): Promise<FoundFile | undefined> {
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
  const candidates = opts.searchPaths ?? defaultSearchPaths(opts.home);
  for (const candidate of candidates) {
    const file = path.resolve(candidate);
    if (await exists(file)) return readConfigFile(file);
  }
  return undefined;
}
