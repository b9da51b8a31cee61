/**
 * A backup run with its alerts (issue #13): the one wrapper `kopi-docka backup` and the daemon call.
 *
 *   heartbeat `<url>/start`  ─┐ (sent concurrently with the run's start; awaited before the end)
 *   runBackupJob(…)           │
 *   notifyRunEnd(summary)    ─┘ heartbeat success or `/fail` (always), webhook/ntfy/e-mail on failure
 *                               (or always with notify_on = always): one message per run.
 *
 * A run that never reached its units — runBackupJob threw (lock held, Docker down, repository
 * unreachable or not writable, an unknown unit) — is a failure too: notified as
 * preflightFailure(host, started, finished, error) and the error is re-thrown unchanged, so the
 * command's exit code stays that of the error. With `lockBusy: 'skip'` (the daemon: an overlapping run
 * is skipped, not a failure) a LockBusyError sends no end message: the run holding the lock reports.
 *
 * Never fails the backup, and never delays it beyond the notifiers' own deadline: every channel is
 * bounded by [notifications] timeout_seconds (src/adapters/notify/), the /start ping runs alongside the
 * run, and no notifier error is thrown — each channel's outcome is logged (info when sent, warning when
 * not). The repository password is scrubbed from every message and log line besides the settings' own
 * secrets.
 */
import { notifyRunEnd, notifyRunStart, resultLines, type ChannelResult } from '../adapters/notify/index.js';
import type { Config } from '../config/types.js';
import type { Logger } from '../core/log.js';
import {
  configuredChannels,
  preflightFailure,
  summaryFromRun,
  type RunSummary,
} from '../core/notification.js';
import { KopiDockaError, LockBusyError, errorMessage } from '../errors.js';
import type { RunRecord } from './history.js';
import { runBackupJob, type RunDeps } from './run.js';

export interface NotifyRunOptions {
  unitNames: string[];
  signal: AbortSignal;
  /** Write a disaster-recovery bundle after the run (`backup --update-recovery`; see runBackupJob). */
  updateRecovery?: boolean | undefined;
  /** What a LockBusyError means: a failure to notify (`backup`, default) or an overlap to skip (daemon). */
  lockBusy?: 'notify' | 'skip';
  /** The run itself (tests); default runBackupJob. */
  runJob?: typeof runBackupJob;
  /** The clock (tests). */
  now?: () => Date;
}

/** The text a pre-flight failure is reported with: the error and its hint. */
function preflightText(err: unknown): string {
  const hint = err instanceof KopiDockaError && err.hint ? ` (hint: ${err.hint})` : '';
  return `${errorMessage(err)}${hint}`;
}

function logResults(log: Logger, results: readonly ChannelResult[]): void {
  for (const l of resultLines(results)) {
    if (l.level === 'info') log.info(l.text);
    else log.warn(l.text);
  }
}

/**
 * runBackupJob with the run's notifications (see the module comment).
 * @returns the run record, as runBackupJob does.
 * @throws whatever runBackupJob threw (after notifying it as a pre-flight failure).
 */
export async function runBackupAndNotify(
  cfg: Config,
  deps: RunDeps,
  opts: NotifyRunOptions,
): Promise<RunRecord> {
  const { log } = deps;
  const settings = cfg.notifications;
  const now = opts.now ?? (() => new Date());
  const secrets = [cfg.kopia.password];
  const enabled = configuredChannels(settings).length > 0;
  const startedAt = now().toISOString();
  const started: Promise<ChannelResult[]> = enabled
    ? notifyRunStart(settings, secrets).catch((): ChannelResult[] => [])
    : Promise.resolve([]);

  const finish = async (summary: RunSummary) => {
    if (!enabled) return;
    // The /start ping first: a monitor that saw the end before the start would think a run hangs.
    logResults(log, await started);
    logResults(
      log,
      await notifyRunEnd(settings, summary, secrets).catch((err: unknown): ChannelResult[] => {
        log.warn(`notifications failed: ${errorMessage(err)}`);
        return [];
      }),
    );
  };

  let rec: RunRecord;
  try {
    rec = await (opts.runJob ?? runBackupJob)(cfg, deps, {
      unitNames: opts.unitNames,
      signal: opts.signal,
      updateRecovery: opts.updateRecovery,
    });
  } catch (err) {
    if (err instanceof LockBusyError && opts.lockBusy === 'skip') {
      // Another run holds the lock and reports for itself; only the /start ping went out.
      if (enabled) logResults(log, await started);
      throw err;
    }
    await finish(preflightFailure(cfg.kopia.hostname, startedAt, now().toISOString(), preflightText(err)));
    throw err;
  }
  await finish(summaryFromRun(rec));
  return rec;
}
