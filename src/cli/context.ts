/** What every command receives: global options, output, logger and a lazily loaded config. */
import type { Command } from '@commander-js/extra-typings';
import { createDocker, type DockerClient } from '../adapters/docker.js';
import { Kopia } from '../adapters/kopia.js';
import { loadConfig } from '../config/load.js';
import type { Config } from '../config/types.js';
import { createLogger, parseLogLevel, type Logger } from './logger.js';
import { createOutput, type Output } from './output.js';
import { UsageError } from '../errors.js';

export interface GlobalOptions {
  config?: string;
  logLevel?: string;
  json?: boolean;
}

export interface Context {
  global: GlobalOptions;
  out: Output;
  log: Logger;
  /** Loads (once) and validates the configuration; config warnings are logged on first load. */
  config(): Promise<Config>;
  /**
   * The Kopia adapter for the loaded config, built once per command (call after `config()`).
   * @throws Error (a bug) when the config was not loaded first.
   */
  kopia(): Kopia;
  /** The Docker adapter, built once per command; its connections are closed by close(). */
  docker(): DockerClient;
  /** Release what the adapters hold (idle Docker connections). Called by each command when done. */
  close(): void;
}

export function createContext(global: GlobalOptions, jsonOverride?: boolean): Context {
  const cliLevel = global.logLevel === undefined ? undefined : parseLogLevel(global.logLevel);
  if (global.logLevel !== undefined && cliLevel === undefined) {
    throw new UsageError(
      `invalid --log-level "${global.logLevel}"`,
      'use one of: debug, info, warning, error',
    );
  }
  const log = createLogger(cliLevel ?? 'info');
  const out = createOutput(jsonOverride ?? global.json ?? false);
  let cached: Promise<Config> | undefined;
  let loaded: Config | undefined;
  let kopia: Kopia | undefined;
  let docker: DockerClient | undefined;
  return {
    global,
    out,
    log,
    config() {
      cached ??= loadConfig({ explicitPath: global.config }).then((cfg) => {
        if (cliLevel === undefined) log.level = cfg.logging.level;
        for (const w of cfg.warnings) log.warn(w);
        loaded = cfg;
        return cfg;
      });
      return cached;
    },
    kopia() {
      if (!loaded) throw new Error('bug: ctx.kopia() before ctx.config()');
      kopia ??= new Kopia(loaded.kopia, { debug: (m) => log.debug(m) });
      return kopia;
    },
    docker() {
      docker ??= createDocker();
      return docker;
    },
    close() {
      docker?.close();
    },
  };
}

/** The exit code a command action produced; main.ts reads it after parsing. */
export const exitState = { code: 0 };

type AnyCommand = Command<unknown[], Record<string, unknown>, Record<string, unknown>>;

/** Global options of the root program, wherever they were given on the command line. */
export function globalsOf(cmd: AnyCommand): GlobalOptions {
  return cmd.optsWithGlobals();
}
