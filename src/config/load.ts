/**
 * Finds, reads and validates the configuration: file → environment overrides → defaults, or the
 * embedded default when no config file exists anywhere. Which keys exist and what their values
 * must look like is declared once per key in src/config/schema.ts; this module walks that table.
 * Every problem is a ConfigError (exit 3) that names the file, the line and the key, says what was
 * expected and what to do; an existing file that cannot be read is never skipped in favour of
 * another file or of the defaults.
 */
import { createHash } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { ConfigError } from '../errors.js';
import { envValue, homeDir } from './env.js';
import { parseIni } from './ini.js';
import { ENV, locateConfig, type EnvGetter } from './locate.js';
import { buildSettings, checkStructure, initialOrigins, readKeys } from './read.js';
import { embeddedRepository, fileRepository } from './repository.js';
import { backendIdentity, type RepositoryBackend } from '../core/repository-backend.js';
import { DEFAULT_STATE_DIR, parseLogLevelValue, type Settings } from './schema.js';
import { checkNotificationSettings } from './keys-notifications.js';
import type { Config, Origin } from './types.js';

export { defaultSearchPaths, ENV } from './locate.js';

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

/**
 * `<stateDir>/kopia/<12 hex of sha256(where)>.config`: a new repository location never reuses the old
 * connection. `where` is the filesystem path (as it always was) or, for another backend, its
 * `backendIdentity` (kind + bucket/endpoint/prefix, host/port/path, URL…).
 */
export function kopiaConfigFileFor(stateDir: string, where: string | RepositoryBackend): string {
  const key =
    typeof where === 'string' ? where : where.kind === 'filesystem' ? where.path : backendIdentity(where);
  const digest = createHash('sha256').update(key).digest('hex').slice(0, 12);
  return path.join(stateDir, 'kopia', `${digest}.config`);
}

function envGetter(env: LoadOptions['env']): EnvGetter {
  if (env === undefined) return envValue;
  return (name) => {
    const v = env[name];
    return v === undefined || v === '' ? undefined : v;
  };
}

function systemInfo(partial: Partial<SystemInfo> | undefined): SystemInfo {
  return {
    cores: partial?.cores ?? os.availableParallelism(),
    availableMemoryBytes: partial?.availableMemoryBytes ?? os.freemem(),
    hostname: partial?.hostname ?? os.hostname(),
  };
}

function stateDirFrom(env: EnvGetter): string {
  const raw = env(ENV.stateDir);
  if (raw === undefined) return DEFAULT_STATE_DIR;
  if (!raw.startsWith('/')) {
    throw new ConfigError(
      `${ENV.stateDir}="${raw}" is not an absolute path`,
      'set it to an absolute directory',
    );
  }
  return path.resolve(raw);
}

/** KOPI_DOCKA_LOG_LEVEL overrides [logging] level. */
function applyLogLevelEnv(settings: Settings, env: EnvGetter, origins: Record<string, Origin>): void {
  const raw = env(ENV.logLevel);
  if (raw === undefined) return;
  try {
    settings.logging.level = parseLogLevelValue(raw);
  } catch {
    throw new ConfigError(
      `${ENV.logLevel}="${raw}" is not a log level`,
      'use one of: debug, info, warning (or warn), error',
    );
  }
  origins['logging.level'] = 'env';
}

/**
 * The effective configuration. Throws ConfigError (exit 3) for every problem in the file or the
 * environment; `warnings` of the result holds the non-fatal findings, each to be printed once.
 */
export async function loadConfig(opts: LoadOptions): Promise<Config> {
  const env = envGetter(opts.env);
  const stateDir = stateDirFrom(env);
  const base = { system: systemInfo(opts.system), stateDir };
  const home = opts.env ? env('HOME') : homeDir();
  const found = await locateConfig(
    { explicitPath: opts.explicitPath, searchPaths: opts.searchPaths, home },
    env,
  );
  const doc = found ? parseIni(found.text, found.file) : undefined;

  const warnings = doc ? checkStructure(doc) : [];
  const values = readKeys(doc, base, warnings);
  const settings = buildSettings(values, base);
  const origins = initialOrigins(values);
  const envPassword = env(ENV.password);
  const source = found
    ? await fileRepository(found, values, envPassword, origins, warnings, env)
    : await embeddedRepository(stateDir, envPassword, origins, warnings, env);
  applyLogLevelEnv(settings, env, origins);

  return {
    file: found?.file,
    embeddedDefault: found === undefined,
    stateDir,
    kopia: {
      ...settings.kopia,
      ...source,
      kopiaConfigFile: kopiaConfigFileFor(stateDir, source.backend),
      binary: env(ENV.kopiaBin) ?? 'kopia',
    },
    backup: settings.backup,
    retention: settings.retention,
    logging: settings.logging,
    notifications: checkNotificationSettings(settings.notifications, found?.file),
    daemon: settings.daemon,
    origins,
    warnings,
  };
}
