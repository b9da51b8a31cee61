/**
 * Replaying a journal a dead run left behind: start the containers it had stopped (only those), then
 * clear it. Containers that are already running are left alone. What could not be started stays in the
 * journal, so `kopi-docka recover` can retry it.
 */
import type { Logger } from '../core/log.js';
import { errorMessage, KopiDockaError } from '../errors.js';
import { readJournalEntries, replaceJournal, type JournalEntry } from './journal.js';

export interface RecoverDocker {
  startContainer(id: string): Promise<unknown>;
  waitRunning(id: string, opts: { timeoutMs: number }): Promise<unknown>;
}

/** Returns the names of the containers it started, or undefined when there was no journal. */
export async function replayJournal(
  stateDir: string,
  docker: RecoverDocker,
  log: Logger,
  timeoutMs = 120_000,
): Promise<string[] | undefined> {
  const entries = await readJournalEntries(stateDir);
  if (entries.length === 0) return undefined;
  const failed: string[] = [];
  const started: string[] = [];
  const kept: JournalEntry[] = [];
  for (const j of entries) {
    log.warn(
      `found a journal from backup ${j.backupId} (pid ${j.pid}, unit ${j.unit}, stopped at ${j.stoppedAt}): starting its containers`,
    );
    const notStarted: JournalEntry['containers'] = [];
    for (const c of j.containers) {
      try {
        await docker.startContainer(c.id);
        await docker.waitRunning(c.id, { timeoutMs });
        started.push(c.name);
      } catch (err) {
        // A container removed since then cannot be started, and that is not ours to fix.
        if (/no such container|not found/i.test(errorMessage(err))) {
          log.warn(`${c.name} no longer exists; skipping`);
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
  return started;
}
