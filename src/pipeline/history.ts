/** The local run history: one JSON line per run, appended after the run (never rewritten). */
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';

import type { RunRecord } from '../core/run-record.js';

export type { RunRecord, UnitRecord, UnitStatus } from '../core/run-record.js';

/** Enough of a run record to be listed and to order backup ids; anything else in the file is skipped. */
function isRunRecord(v: unknown): v is RunRecord {
  const r = v as Partial<RunRecord> | null;
  return (
    typeof r === 'object' &&
    r !== null &&
    typeof r.backupId === 'string' &&
    typeof r.startedAt === 'string' &&
    Array.isArray(r.units)
  );
}

export function historyFile(baseDir: string): string {
  return join(baseDir, 'history.jsonl');
}

export async function appendRun(baseDir: string, rec: RunRecord): Promise<void> {
  await mkdir(baseDir, { recursive: true, mode: 0o700 });
  await appendFile(historyFile(baseDir), `${JSON.stringify(rec)}\n`, { mode: 0o600 });
}

export async function readRuns(baseDir: string): Promise<RunRecord[]> {
  let text: string;
  try {
    text = await readFile(historyFile(baseDir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const runs: RunRecord[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const rec = JSON.parse(line) as unknown;
      if (isRunRecord(rec)) runs.push(rec);
    } catch {
      /* a torn last line from a crash is skipped, not fatal */
    }
  }
  return runs;
}

/** The backup_id of the most recent run, so the next id is strictly later. */
export async function lastBackupId(baseDir: string): Promise<string | undefined> {
  const runs = await readRuns(baseDir);
  return runs
    .map((r) => r.backupId)
    .sort()
    .at(-1);
}
