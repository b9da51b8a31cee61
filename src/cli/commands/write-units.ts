/**
 * `kopi-docka write-units [--output-dir DIR] [--force]`: writes kopi-docka-backup.service,
 * kopi-docka.timer and kopi-docka.service (text from src/core/systemd-units.ts) for the loaded config:
 * its state, cache, Kopia config, repository, backup_base_path and Docker socket paths become the only
 * writable paths of the sandbox, and a non-default config file is passed as `--config`.
 *
 * Existing unit files are refused (UsageError, exit 2, naming them) unless --force. The writable
 * directories kopi-docka creates itself (state, cache, Kopia config, backup_base_path, recovery bundle)
 * are created here (mode 0700) when missing, because systemd refuses to start a unit whose
 * ReadWritePaths= do not exist. Secrets never go into a unit file (they are world-readable).
 */
import type { Command } from '@commander-js/extra-typings';
import { realpathSync } from 'node:fs';
import { lstat, mkdir, realpath } from 'node:fs/promises';
import path from 'node:path';
import { lastLines, run, which } from '../../adapters/process.js';
import { dockerHostFromEnv } from '../../config/docker-host.js';
import { defaultSearchPaths, ENV } from '../../config/load.js';
import type { Config } from '../../config/types.js';
import { renderUnits, UnitSpecError, type UnitSpec } from '../../core/systemd-units.js';
import { ConfigError, UsageError } from '../../errors.js';
import { exists, writeFileAtomic } from '../../fsutil.js';
import { createContext, exitState, globalsOf } from '../context.js';
import { backendOf } from '../../config/keys-repository.js';

export const DEFAULT_UNIT_DIR = '/etc/systemd/system';
const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';
/** systemd's default PATH for system services (systemd.exec(5), "Environment variables"). */
const SYSTEMD_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/**
 * How this kopi-docka was started, as absolute paths: `[node, /…/main.js]`, or `[binary]` for a
 * single executable (argv[1] is then the binary itself or absent).
 */
export function programArgv(execPath: string, script: string | undefined): string[] {
  const node = realpathSync(execPath);
  if (script === undefined) return [node];
  const main = realpathSync(path.resolve(script));
  return main === node ? [node] : [node, main];
}

/** The Docker socket's directory (bound writable: connect(2) on a socket needs write access), if unix. */
async function dockerSocketDir(dockerHost: string | undefined): Promise<string | undefined> {
  let socket = DEFAULT_DOCKER_SOCKET;
  if (dockerHost !== undefined) {
    if (!dockerHost.startsWith('unix://')) return undefined;
    socket = dockerHost.slice('unix://'.length);
  }
  const dir = path.dirname(socket);
  // The directory, not the socket: a socket bind-mounted into the namespace goes stale when dockerd
  // re-creates it. /var/run → /run: systemd wants the real path.
  return realpath(dir).catch(() => dir);
}

export interface UnitPlan {
  spec: UnitSpec;
  /** Directories kopi-docka writes that must exist before the unit starts (created when missing). */
  createDirs: string[];
  warnings: string[];
}

/** Turns the effective config (and this process's facts) into a UnitSpec. No writes. */
export async function planUnits(
  cfg: Config,
  facts: {
    program: string[];
    dockerHost: string | undefined;
    /** Resolves a bare command on PATH (the kopia binary). */
    which: (cmd: string) => string | undefined;
  },
  opts: { onCalendar?: string; watchdogSec?: number } = {},
): Promise<UnitPlan> {
  const warnings: string[] = [];
  const environment: Record<string, string> = { [ENV.stateDir]: cfg.stateDir };
  const kopia = path.isAbsolute(cfg.kopia.binary) ? cfg.kopia.binary : facts.which(cfg.kopia.binary);
  if (kopia === undefined) {
    warnings.push(`"${cfg.kopia.binary}" is not on PATH: the units will not find Kopia`);
  } else if (path.isAbsolute(cfg.kopia.binary) || !SYSTEMD_PATH.includes(path.dirname(kopia))) {
    environment[ENV.kopiaBin] = kopia;
  }
  if (cfg.origins['logging.level'] === 'env') environment[ENV.logLevel] = cfg.logging.level;
  if (facts.dockerHost !== undefined) environment.DOCKER_HOST = facts.dockerHost;
  if (cfg.origins['kopia.password'] === 'env') {
    warnings.push(
      `the repository password comes from ${ENV.password}, which the service will not have: ` +
        'set password_file in the config (a unit file is world-readable, so it is not written there)',
    );
  }

  const createDirs = [cfg.stateDir, cfg.kopia.cacheDirectory, path.dirname(cfg.kopia.kopiaConfigFile)];
  createDirs.push(cfg.backup.backupBasePath);
  if (cfg.backup.updateRecoveryBundle) createDirs.push(cfg.backup.recoveryBundlePath);
  // Only a filesystem repository is written on this host; other backends are reached over the network.
  const backend = backendOf(cfg.kopia);
  const writable = [...createDirs, ...(backend.kind === 'filesystem' ? [backend.path] : [])];
  const socketDir = await dockerSocketDir(facts.dockerHost);
  if (socketDir !== undefined) {
    if (await exists(socketDir)) writable.push(socketDir);
    else warnings.push(`the Docker socket directory ${socketDir} does not exist (is Docker running?)`);
  }
  const hidden = writable.filter((p) => /^\/(var\/)?tmp(\/|$)/.test(path.resolve(p)));
  if (hidden.length > 0) {
    warnings.push(
      `PrivateTmp=yes gives the units their own /tmp and /var/tmp, so they will not see ${hidden.join(', ')}`,
    );
  }
  if (backend.kind === 'filesystem' && !(await exists(backend.path))) {
    warnings.push(
      `the repository ${backend.path} does not exist yet: run \`kopi-docka init\` before starting the units`,
    );
  }
  if (cfg.backup.preBackupHook !== undefined || cfg.backup.postBackupHook !== undefined) {
    warnings.push(
      'backup hooks run inside the sandbox and can write only to the ReadWritePaths= of the unit; ' +
        'add paths with `systemctl edit kopi-docka-backup.service` if a hook writes elsewhere',
    );
  }
  if (facts.program.some((p) => p.endsWith('.ts'))) {
    warnings.push(
      'kopi-docka runs from its TypeScript source: the units need the built or installed kopi-docka',
    );
  }

  const defaultConfig = defaultSearchPaths(undefined)[0];
  if (cfg.file === undefined) warnings.push('no config file: the units will use the embedded default');
  const spec: UnitSpec = {
    program: facts.program,
    configFile: cfg.file !== undefined && cfg.file !== defaultConfig ? path.resolve(cfg.file) : undefined,
    writablePaths: writable,
    environment,
    timeoutStopSec: Math.max(300, cfg.backup.startTimeout + 180),
    ...(opts.onCalendar === undefined ? {} : { onCalendar: opts.onCalendar }),
    ...(opts.watchdogSec === undefined ? {} : { watchdogSec: opts.watchdogSec }),
  };
  return { spec, createDirs, warnings };
}

async function present(file: string): Promise<boolean> {
  try {
    await lstat(file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

function parseSeconds(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n <= 0)
    throw new UsageError(`invalid number of seconds "${v}"`, 'give a whole number > 0');
  return n;
}

/**
 * Checks an OnCalendar= spec with `systemd-analyze calendar` when it is installed (a bad spec would
 * make the timer fail to load). Throws UsageError with systemd's message.
 */
async function checkCalendar(spec: string): Promise<void> {
  if (which('systemd-analyze') === undefined) return;
  const r = await run(['systemd-analyze', 'calendar', '--', spec], { timeoutMs: 10_000 });
  if (r.code !== 0) {
    throw new UsageError(
      `invalid --on-calendar "${spec}": ${lastLines(r.stderrTail, 1) || 'refused by systemd-analyze'}`,
      'see systemd.time(7), e.g. "*-*-* 02:00:00" or "Mon..Sat 03:30"',
    );
  }
}

export function register(program: Command): void {
  program
    .command('write-units')
    .description('write the systemd units: kopi-docka-backup.service, kopi-docka.timer, kopi-docka.service')
    .option('--output-dir <dir>', 'where to write the unit files', DEFAULT_UNIT_DIR)
    .option('--force', 'overwrite existing unit files')
    .option('--on-calendar <spec>', 'when the timer runs (systemd.time(7))', '*-*-* 02:00:00')
    .option('--watchdog-sec <seconds>', "the daemon's WatchdogSec", parseSeconds, 120)
    .action(async (opts, cmd) => {
      const ctx = createContext(globalsOf(cmd));
      await checkCalendar(opts.onCalendar);
      const cfg = await ctx.config();
      const plan = await planUnits(
        cfg,
        { program: programArgv(process.execPath, process.argv[1]), dockerHost: dockerHostFromEnv(), which },
        { onCalendar: opts.onCalendar, watchdogSec: opts.watchdogSec },
      );
      let units;
      try {
        units = renderUnits(plan.spec);
      } catch (err) {
        if (err instanceof UnitSpecError) throw new ConfigError(`cannot write the units: ${err.message}`);
        throw err;
      }
      const outDir = path.resolve(opts.outputDir);
      const targets = units.map((u) => ({ ...u, file: path.join(outDir, u.name) }));
      const existing: string[] = [];
      for (const t of targets) if (await present(t.file)) existing.push(t.file);
      if (existing.length > 0 && opts.force !== true) {
        throw new UsageError(
          `not overwriting existing unit file${existing.length > 1 ? 's' : ''}: ${existing.join(', ')}`,
          'compare them with `kopi-docka write-units --output-dir /tmp/units`, or pass --force to replace them',
        );
      }
      for (const w of plan.warnings) ctx.log.warn(w);
      for (const dir of plan.createDirs) {
        if (await exists(dir)) continue;
        await mkdir(dir, { recursive: true, mode: 0o700 });
        ctx.out.line(`created ${dir}`);
      }
      await mkdir(outDir, { recursive: true });
      for (const t of targets) {
        await writeFileAtomic(t.file, t.text, 0o644);
        ctx.out.line(`wrote ${t.file}`);
      }
      ctx.out.line();
      if (outDir !== DEFAULT_UNIT_DIR) {
        ctx.out.line(`copy them to ${DEFAULT_UNIT_DIR} (or run again without --output-dir), then:`);
      } else {
        ctx.out.line('next, for daily backups by the timer:');
      }
      ctx.out.line('  systemctl daemon-reload');
      ctx.out.line('  systemctl enable --now kopi-docka.timer');
      ctx.out.line('check the schedule with `systemctl list-timers kopi-docka.timer`; run one now with');
      ctx.out.line('  systemctl start kopi-docka-backup.service');
      exitState.code = 0;
    });
}
