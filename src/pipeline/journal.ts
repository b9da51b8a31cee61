/**
 * The stop journal: written (and fsynced) before the first container of a unit is stopped, cleared when
 * they run again. A journal left behind means a run died with containers down; `recover`, the next
 * backup, and the daemon's start replay it.
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from './fsutil.js';

export interface JournalEntry {
  pid: number;
  backupId: string;
  unit: string;
  stoppedAt: string;
  /** Containers this run stopped (only these are ever started again). */
  containers: { id: string; name: string }[];
}

export function journalPath(stateDir: string): string {
  return join(stateDir, 'journal.json');
}

export async function readJournal(stateDir: string): Promise<JournalEntry | undefined> {
  try {
    return JSON.parse(await readFile(journalPath(stateDir), 'utf8')) as JournalEntry;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export async function writeJournal(stateDir: string, entry: JournalEntry): Promise<void> {
  await writeFileAtomic(journalPath(stateDir), JSON.stringify(entry, null, 2));
}

export async function clearJournal(stateDir: string): Promise<void> {
  await rm(journalPath(stateDir), { force: true });
}
