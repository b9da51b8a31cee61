/**
 * The stop journal: written (and fsynced) before the first container of a unit is stopped, cleared when
 * they run again. A journal left behind means a run died with containers down; `recover`, the next
 * backup, and the daemon's start replay it.
 *
 * It holds one entry per unit: a unit whose containers did not all come back keeps its entry while the
 * run goes on with the next unit, so the next unit's entry must not overwrite it.
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { KopiDockaError } from '../errors.js';
import { writeFileAtomic } from '../fsutil.js';

const journalEntry = z.object({
  pid: z.number(),
  backupId: z.string(),
  unit: z.string(),
  stoppedAt: z.string(),
  /** Containers this run stopped (only these are ever started again). */
  containers: z.array(z.object({ id: z.string(), name: z.string() })),
});
/** The current format, or a single entry (the first format). */
const journalFile = z.union([z.object({ entries: z.array(journalEntry) }), journalEntry]);

export type JournalEntry = z.infer<typeof journalEntry>;

interface JournalFile {
  entries: JournalEntry[];
}

export function journalPath(stateDir: string): string {
  return join(stateDir, 'journal.json');
}

/** Every entry of the journal, oldest first; empty when there is none. */
export async function readJournalEntries(stateDir: string): Promise<JournalEntry[]> {
  let text: string;
  try {
    text = await readFile(journalPath(stateDir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  const r = journalFile.safeParse(parsed);
  if (!r.success) {
    // It names containers a dead run may have left stopped: never silently ignored, never guessed at.
    throw new KopiDockaError(`the stop journal ${journalPath(stateDir)} is damaged and cannot be read`, {
      hint: 'check `docker ps -a` for containers left stopped and start them, then remove the file',
    });
  }
  return 'entries' in r.data ? r.data.entries : [r.data];
}

/**
 * The journal as one entry (every container it names; the newest entry's run and unit), or undefined
 * when there is none — for callers that only report it.
 */
export async function readJournal(stateDir: string): Promise<JournalEntry | undefined> {
  const entries = await readJournalEntries(stateDir);
  const last = entries.at(-1);
  if (!last) return undefined;
  return {
    ...last,
    unit: entries.map((e) => e.unit).join(', '),
    containers: entries.flatMap((e) => e.containers),
  };
}

async function writeEntries(stateDir: string, entries: JournalEntry[]): Promise<void> {
  if (entries.length === 0) {
    await rm(journalPath(stateDir), { force: true });
    return;
  }
  const file: JournalFile = { entries };
  await writeFileAtomic(journalPath(stateDir), JSON.stringify(file, null, 2));
}

/** Add (or replace) the entry of `entry.unit`; entries of other units are kept. */
export async function writeJournal(stateDir: string, entry: JournalEntry): Promise<void> {
  const others = (await readJournalEntries(stateDir)).filter((e) => e.unit !== entry.unit);
  await writeEntries(stateDir, [...others, entry]);
}

/** Remove the entry of `unit` (the file goes with the last entry); without a unit, the whole journal. */
export async function clearJournal(stateDir: string, unit?: string): Promise<void> {
  if (unit === undefined) {
    await rm(journalPath(stateDir), { force: true });
    return;
  }
  await writeEntries(
    stateDir,
    (await readJournalEntries(stateDir)).filter((e) => e.unit !== unit),
  );
}

/** Keep exactly these entries (what a partial replay could not finish). */
export async function replaceJournal(stateDir: string, entries: JournalEntry[]): Promise<void> {
  await writeEntries(stateDir, entries);
}
