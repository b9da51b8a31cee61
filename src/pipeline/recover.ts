/**
 * Replaying a journal a dead run left behind: start the containers it had stopped (only those), then
 * clear it. Containers that are already running are left alone. What could not be started stays in the
 * journal, so `kopi-docka recover` can retry it.
 */
import type { Logger } from '../core/log.js';
import { errorMessage, KopiDockaError } from '../errors.js';
import { readJournalEntries, replaceJournal, type JournalEntry } from './journal.js';

export interface RecoverDocker {
  /** false when it was already running (Engine API 304). */
  startContainer(id: string): Promise<unknown>;
  waitRunning(id: string, opts: { timeoutMs: number }): Promise<unknown>;
}

/** What a replay did, container by container (names). */
export interface Replay {
  /** Started by this replay: they were stopped. */
  started: string[];
  /** Already running (started by someone else, or never stopped): left alone. */
  alreadyRunning: string[];
  /** Removed since: nothing to start. */
  gone: string[];
}

/**
 * Start what a dead run's journal names. Returns what happened to each container, or undefined when
 * there was no journal.
 *
 * @throws KopiDockaError when some could not be started (they stay in the journal for a retry).
 */
export async function replayJournal(
  stateDir: string,
  docker: RecoverDocker,
  log: Logger,
  timeoutMs = 120_000,
): Promise<Replay | undefined> {
  const entries = await readJournalEntries(stateDir);
  if (entries.length === 0) return undefined;
  const failed: string[] = [];
  const started: string[] = [];
  const alreadyRunning: string[] = [];
  const gone: string[] = [];
  const kept: JournalEntry[] = [];
  for (const j of entries) {
    log.warn(
      `found a journal from backup ${j.backupId} (pid ${j.pid}, unit ${j.unit}, stopped at ${j.stoppedAt}): starting its containers`,
    );
    const notStarted: JournalEntry['containers'] = [];
    for (const c of j.containers) {
      try {
        // false: Docker answered 304, it was running already.
        const didStart = await docker.startContainer(c.id);
        await docker.waitRunning(c.id, { timeoutMs });
        (didStart === false ? alreadyRunning : started).push(c.name);
      } catch (err) {
        // A container removed since then cannot be started, and that is not ours to fix.
        if (/no such container|not found/i.test(errorMessage(err))) {
          log.warn(`${c.name} no longer exists; skipping`);
          gone.push(c.name);
          continue;
        }
        failed.push(`${c.name}: ${errorMessage(err)}`);
        notStarted.push(c);
      }
    }
    if (notStarted.length > 0) kept.push({ ...j, containers: notStarted });
  }
  await replaceJournal(stateDir, kept);
  if (failed.length > 0) {
    throw new KopiDockaError(
      `could not start containers left stopped by a previous run: ${failed.join('; ')}`,
      {
        hint: 'check them with `docker ps -a`; the journal is kept so `kopi-docka recover` can retry',
      },
    );
  }
  return { started, alreadyRunning, gone };
}

/** One line saying what a replay did, in words (never an empty list). */
export function describeReplay(r: Replay): string {
  const parts: string[] = [];
  if (r.started.length) parts.push(`started again: ${r.started.join(', ')}`);
  if (r.alreadyRunning.length) parts.push(`already running: ${r.alreadyRunning.join(', ')}`);
  if (r.gone.length) parts.push(`no longer exist: ${r.gone.join(', ')}`);
  return parts.join('; ') || 'nothing to start';
}
