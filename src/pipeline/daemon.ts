/**
 * `kopi-docka daemon`: backups on an interval, supervised by systemd (Type=notify, WatchdogSec=).
 *
 * Life cycle:
 *  1. READY=1 (sd_notify(3)) once the config is loaded, and the watchdog timer starts: WATCHDOG=1
 *     every WATCHDOG_USEC/2 from a JS timer (adapters/systemd-notify.ts startWatchdog) — independent of
 *     any backup's promise, so the pings keep coming while a backup runs (every step of a run is
 *     asynchronous I/O or a child process; nothing blocks the event loop for long).
 *  2. A journal a crashed run left behind is replayed (its containers started again) under the run
 *     lock — unless another run holds the lock, whose journal it is.
 *  3. Loop: sleep until the next backup is due, run it through runBackupAndNotify (lock, pre-flight,
 *     units, history, alerts), repeat. Due = the later of the last recorded run's start (history) and
 *     this daemon's last attempt, plus the interval; with no history the first backup runs at once.
 *     An overlap — another run holds the lock (a CLI `backup`, `restore`) — is skipped and logged,
 *     and the next backup is one interval later: never queued twice.
 *  4. stop(signal) — SIGTERM/SIGINT: STOPPING=1, the running backup (if any) is aborted through its
 *     AbortSignal (Kopia/tar stopped, the containers it stopped started again, remaining units
 *     skipped, the run recorded as interrupted and notified), then run() resolves. The daemon exits 0:
 *     a requested stop is a clean stop (systemd does not restart it under Restart=on-failure).
 *  5. reload() — SIGHUP: the config is loaded again; a bad one is logged (error) and the old one kept.
 *     A backup in progress finishes with the config it started with.
 *
 * STATUS= lines (shown by `systemctl status`): `idle; next backup <time>; last: …`, `backing up
 * (started <time>)`, `backing up unit <unit> (started <time>)`, `stopping: …`.
 */
import type { SdNotifier } from '../adapters/systemd-notify.js';
import { startWatchdog } from '../adapters/systemd-notify.js';
import type { Config } from '../config/types.js';
import type { Logger } from '../core/log.js';
import { scrub, settingsSecrets } from '../core/notification.js';
import { LockBusyError, errorMessage } from '../errors.js';
import { readRuns, type RunRecord } from './history.js';
import { acquireLock, lockState, readLock } from './lock.js';
import { runBackupAndNotify } from './notify-run.js';
import { describeReplay, replayJournal } from './recover.js';
import type { RunDeps } from './run.js';

export interface DaemonDeps {
  /** The config to start with. */
  config: Config;
  /** Loads the config again (SIGHUP); throws ConfigError on a bad one. */
  loadConfig(): Promise<Config>;
  /** The run's adapters for a config (a Kopia adapter per config; Docker shared). */
  runDeps(cfg: Config): Omit<RunDeps, 'progress' | 'log'>;
  log: Logger;
  notifier: SdNotifier;
  /** `--interval-minutes`: wins over [daemon] interval_minutes, also after a reload. */
  intervalMinutes?: number | undefined;
  /** Back up only these units (all when empty; `--unit`). */
  unitNames?: string[];
  /** Called with each config (initial and reloaded), e.g. to apply its log level. */
  onConfig?: (cfg: Config) => void;
  /** The run (tests); default runBackupAndNotify. */
  runJob?: typeof runBackupAndNotify;
}

/** What the last scheduled backup came to, for STATUS= and logs. */
interface LastResult {
  at: Date;
  text: string;
}

const MAX_SLEEP_MS = 60 * 60 * 1000;

export class Daemon {
  private cfg: Config;
  private stopped = false;
  private stopReason: string | undefined;
  /** The running backup's abort controller. */
  private current: AbortController | undefined;
  /** Wakes the sleep early (stop, reload). */
  private wake: (() => void) | undefined;
  private lastAttempt: Date | undefined;
  private last: LastResult | undefined;
  private nextAt: Date | undefined;
  /** STOPPING=1 in flight: awaited before run() resolves, so it is sent before the process exits. */
  private stoppingSent: Promise<unknown> = Promise.resolve();

  constructor(private readonly deps: DaemonDeps) {
    this.cfg = deps.config;
  }

  /** Minutes between the starts of two backups. */
  get intervalMinutes(): number {
    return this.deps.intervalMinutes ?? this.cfg.daemon.intervalMinutes;
  }

  /** `text` without the repository password or a notification secret (STATUS= goes into argv). */
  private clean(text: string): string {
    return scrub(text, [this.cfg.kopia.password, ...settingsSecrets(this.cfg.notifications)]);
  }

  private status(text: string): void {
    void this.deps.notifier.status(this.clean(text)).then((r) => {
      if (!r.sent && r.error !== undefined) this.deps.log.warn(`sd_notify STATUS failed: ${r.error}`);
    });
  }

  private idleStatus(): void {
    const next = this.nextAt === undefined ? '' : `; next backup ${this.nextAt.toISOString()}`;
    const last = this.last === undefined ? '' : `; last: ${this.last.text} at ${this.last.at.toISOString()}`;
    this.status(`idle${next}${last}`);
  }

  /** Runs until stop(); resolves when the daemon has shut down cleanly (nothing left stopped). */
  async run(): Promise<void> {
    const { log, notifier } = this.deps;
    const stopWatchdog = startWatchdog(notifier, (e) => log.warn(`sd_notify WATCHDOG failed: ${e}`));
    try {
      log.info(
        `daemon started (pid ${process.pid}): a backup every ${this.intervalMinutes} min` +
          (notifier.enabled
            ? `, systemd notify socket in use${notifier.watchdogIntervalMs !== undefined ? `, watchdog ping every ${Math.round(notifier.watchdogIntervalMs / 1000)} s` : ''}`
            : ''),
      );
      const ready = await notifier.ready();
      if (!ready.sent && ready.error !== undefined) log.warn(`sd_notify READY failed: ${ready.error}`);
      await this.replayAtStart();
      while (!this.stopped) {
        try {
          this.nextAt = await this.nextRunAt();
        } catch (err) {
          log.warn(`cannot read the run history: ${errorMessage(err)}; scheduling from now`);
          this.nextAt = new Date(Date.now() + this.intervalMinutes * 60_000);
        }
        if (this.nextAt.getTime() > Date.now()) {
          this.idleStatus();
          log.info(`next backup at ${this.nextAt.toISOString()}`);
          await this.sleepUntil(this.nextAt);
          // Woken early by a reload (new interval) or stop: compute again.
          if (this.stopped || Date.now() < this.nextAt.getTime()) continue;
        }
        await this.runOnce();
      }
    } finally {
      await this.stoppingSent;
      log.info(`daemon stopped${this.stopReason ? ` (${this.stopReason})` : ''}`);
      stopWatchdog();
    }
  }

  /** SIGTERM/SIGINT: STOPPING=1, abort the running backup (its containers are started again). */
  stop(reason: string): void {
    const { log } = this.deps;
    if (this.stopped) {
      log.warn(`${reason} received again: still stopping (restarting containers), please wait`);
      return;
    }
    this.stopped = true;
    this.stopReason = reason;
    this.stoppingSent = this.deps.notifier.stopping();
    if (this.current !== undefined) {
      log.warn(`${reason} received: stopping the running backup and starting what it stopped again`);
      this.status(`stopping: ${reason}, restarting containers of the interrupted backup`);
      this.current.abort(reason);
    } else {
      log.info(`${reason} received: stopping`);
      this.status(`stopping: ${reason}`);
    }
    this.wake?.();
  }

  /** SIGHUP: load the config again; keep the old one on any error. */
  async reload(): Promise<boolean> {
    const { log } = this.deps;
    log.info('SIGHUP received: reloading the configuration');
    let cfg: Config;
    try {
      cfg = await this.deps.loadConfig();
    } catch (err) {
      log.error(`configuration not reloaded, keeping the previous one: ${errorMessage(err)}`);
      return false;
    }
    this.cfg = cfg;
    this.deps.onConfig?.(cfg);
    log.info(
      `configuration reloaded from ${cfg.file ?? 'the embedded default'}: a backup every ${this.intervalMinutes} min` +
        (this.current !== undefined ? ' (the running backup keeps the previous one)' : ''),
    );
    this.wake?.();
    return true;
  }

  /** The journal of a crashed run: its containers started again before the first backup. */
  private async replayAtStart(): Promise<void> {
    const { log } = this.deps;
    const cfg = this.cfg;
    let lock;
    try {
      lock = await acquireLock(cfg.stateDir, 'daemon');
    } catch (err) {
      if (err instanceof LockBusyError) {
        log.info(`not replaying a journal now: ${err.message} (its journal is its own)`);
        return;
      }
      log.error(`cannot take the run lock to replay a journal: ${errorMessage(err)}`);
      return;
    }
    try {
      const replayed = await replayJournal(cfg.stateDir, this.deps.runDeps(cfg).docker, log);
      if (replayed) log.warn(`a previous run died and left a journal: ${describeReplay(replayed)}`);
    } catch (err) {
      log.error(`replaying the journal of a previous run: ${errorMessage(err)}`);
    } finally {
      await lock.release();
    }
  }

  /** The later of the last recorded start and our last attempt, plus the interval (now if neither). */
  private async nextRunAt(): Promise<Date> {
    const runs: RunRecord[] = await readRuns(this.cfg.backup.backupBasePath);
    let lastStart = 0;
    for (const r of runs) lastStart = Math.max(lastStart, Date.parse(r.startedAt) || 0);
    if (this.lastAttempt !== undefined) lastStart = Math.max(lastStart, this.lastAttempt.getTime());
    if (lastStart === 0) return new Date();
    return new Date(lastStart + this.intervalMinutes * 60_000);
  }

  /** Sleeps until `at` (in slices, so a clock jump or suspend is noticed), or until woken. */
  private async sleepUntil(at: Date): Promise<void> {
    while (!this.stopped && Date.now() < at.getTime()) {
      const ms = Math.min(at.getTime() - Date.now(), MAX_SLEEP_MS);
      const woken = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), ms);
        this.wake = () => {
          clearTimeout(timer);
          resolve(true);
        };
      });
      this.wake = undefined;
      if (woken) return;
    }
  }

  /** One scheduled backup; never throws (everything is logged and shown in STATUS=). */
  private async runOnce(): Promise<void> {
    const { log } = this.deps;
    const cfg = this.cfg;
    const startedAt = new Date();
    this.lastAttempt = startedAt;
    // Set before the first await: a stop() from here on aborts this run.
    const ac = new AbortController();
    this.current = ac;
    // An overlap is skipped before anything is sent (no heartbeat /start for a run that will not be).
    if ((await lockState(cfg.stateDir)) === 'held') {
      const holder = await readLock(cfg.stateDir);
      this.current = undefined;
      this.skipped(holder ? `${holder.command} pid ${holder.pid} since ${holder.since}` : 'lock held');
      return;
    }
    if (ac.signal.aborted) {
      this.current = undefined;
      return;
    }
    const since = startedAt.toISOString();
    this.status(`backing up (started ${since})`);
    let unit: string | undefined;
    const progress = {
      update: (key: string) => {
        const u = key.split(' ')[0];
        if (u !== undefined && u !== unit) {
          unit = u;
          this.status(`backing up unit ${u} (started ${since})`);
        }
      },
      done: () => undefined,
    };
    // The unit being backed up also shows when it has no data source to report progress on.
    const runLog: Logger = {
      get level() {
        return log.level;
      },
      set level(l) {
        log.level = l;
      },
      debug: (m) => log.debug(m),
      info: (m) => {
        const u = /^unit ([^\s:]+):/.exec(m)?.[1];
        if (u !== undefined && u !== unit) progress.update(u);
        log.info(m);
      },
      warn: (m) => log.warn(m),
      error: (m) => log.error(m),
    };
    try {
      const rec = await (this.deps.runJob ?? runBackupAndNotify)(
        cfg,
        { ...this.deps.runDeps(cfg), log: runLog, progress },
        { unitNames: this.deps.unitNames ?? [], signal: ac.signal, lockBusy: 'skip' },
      );
      const failed = rec.units.filter((u) => u.status === 'failed').length;
      const text = rec.interrupted
        ? `backup ${rec.backupId} interrupted by ${rec.interrupted}`
        : failed > 0
          ? `backup ${rec.backupId} FAILED: ${failed} of ${rec.units.length} unit(s)`
          : `backup ${rec.backupId} OK: ${rec.units.length} unit(s)`;
      this.last = { at: new Date(), text };
      if (failed > 0 || rec.interrupted) log.error(text);
      else log.info(text);
    } catch (err) {
      if (err instanceof LockBusyError) {
        this.skipped(err.message);
        return;
      }
      const why = this.clean(errorMessage(err));
      this.last = { at: new Date(), text: `backup FAILED before any unit: ${why}` };
      log.error(`scheduled backup failed before any unit: ${why}`);
    } finally {
      this.current = undefined;
    }
  }

  private skipped(why: string): void {
    this.deps.log.warn(`scheduled backup skipped: another kopi-docka run holds the lock (${why})`);
    this.last = { at: new Date(), text: `skipped (another run held the lock)` };
  }
}
