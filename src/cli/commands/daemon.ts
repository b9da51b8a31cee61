/**
 * `kopi-docka daemon [--interval-minutes N]`: backups on an interval until stopped — the long-running
 * alternative to the timer (docs/scheduling.md "The daemon"), written as `kopi-docka.service`
 * (Type=notify, WatchdogSec=) by `write-units`. The loop itself is src/pipeline/daemon.ts.
 *
 * Signals: SIGTERM and SIGINT stop it (a running backup is aborted, its containers started again;
 * exit 0, a clean stop); SIGHUP reloads the config (a bad one is logged, the old one kept). The
 * notify socket comes from NOTIFY_SOCKET (sd_notify(3)); without it the daemon runs the same, silent.
 */
import type { Command } from '@commander-js/extra-typings';
import { Kopia } from '../../adapters/kopia.js';
import { createNotifier } from '../../adapters/systemd-notify.js';
import { notifyEnvironment } from '../../config/env.js';
import { MAX_DAEMON_INTERVAL_MINUTES } from '../../config/keys-notifications.js';
import { loadConfig } from '../../config/load.js';
import type { Config } from '../../config/types.js';
import { UsageError } from '../../errors.js';
import { Daemon } from '../../pipeline/daemon.js';
import { createContext, exitState, globalsOf } from '../context.js';
import { parseLogLevel } from '../logger.js';

function parseInterval(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || n < 1 || n > MAX_DAEMON_INTERVAL_MINUTES) {
    throw new UsageError(
      `invalid --interval-minutes "${v}"`,
      `a whole number of minutes from 1 to ${MAX_DAEMON_INTERVAL_MINUTES}`,
    );
  }
  return n;
}

export function register(program: Command): void {
  program
    .command('daemon')
    .description(
      'run backups on an interval until stopped (systemd Type=notify: READY, STATUS, WATCHDOG); SIGHUP reloads the config',
    )
    .option(
      '--interval-minutes <n>',
      'minutes between the starts of two backups (default: [daemon] interval_minutes, 1440)',
    )
    .option(
      '-u, --unit <name>',
      'back up only this unit (repeatable; default: every unit)',
      (v: string, prev: string[]) => [...prev, v],
      [] as string[],
    )
    .action(async (opts, cmd) => {
      const globals = globalsOf(cmd);
      const intervalMinutes =
        opts.intervalMinutes === undefined ? undefined : parseInterval(opts.intervalMinutes);
      const ctx = createContext(globals);
      const cfg = await ctx.config();
      const levelFlag = globals.logLevel === undefined ? undefined : parseLogLevel(globals.logLevel);
      // One Kopia adapter per config: a reload may change the repository or the password.
      let kopia: { cfg: Config; kopia: Kopia } | undefined;
      const kopiaFor = (c: Config): Kopia => {
        if (kopia?.cfg !== c)
          kopia = { cfg: c, kopia: new Kopia(c.kopia, { debug: (m) => ctx.log.debug(m) }) };
        return kopia.kopia;
      };
      const daemon = new Daemon({
        config: cfg,
        loadConfig: () => loadConfig({ explicitPath: globals.config }),
        runDeps: (c) => ({ docker: ctx.docker(), kopia: kopiaFor(c) }),
        log: ctx.log,
        notifier: createNotifier(notifyEnvironment()),
        intervalMinutes,
        unitNames: opts.unit,
        onConfig: (c) => {
          if (levelFlag === undefined) ctx.log.level = c.logging.level;
          for (const w of c.warnings) ctx.log.warn(w);
        },
      });
      const onStop = (sig: NodeJS.Signals) => daemon.stop(sig);
      const onHup = () => void daemon.reload();
      process.on('SIGTERM', onStop);
      process.on('SIGINT', onStop);
      process.on('SIGHUP', onHup);
      try {
        await daemon.run();
        // A requested stop is a clean stop, also mid-backup (the containers were started again).
        exitState.code = 0;
      } finally {
        process.off('SIGTERM', onStop);
        process.off('SIGINT', onStop);
        process.off('SIGHUP', onHup);
        ctx.close();
      }
    });
}
