/**
 * A run's backup_id: UTC second precision, `2025-01-31T23-59-59Z` (no ':' so it is safe in file names
 * and Kopia tags). Two runs in the same second must still get distinct ids, so the next id is always
 * strictly later than the last one used on this host.
 */

const ID_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2})-(\d{2})-(\d{2})Z$/;

export function formatBackupId(d: Date): string {
  return d
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/:/g, '-');
}

export function parseBackupId(id: string): Date | undefined {
  const m = ID_RE.exec(id);
  if (!m) return undefined;
  const [, y, mo, da, h, mi, s] = m;
  const t = Date.UTC(Number(y), Number(mo) - 1, Number(da), Number(h), Number(mi), Number(s));
  return Number.isNaN(t) ? undefined : new Date(t);
}

export function isBackupId(id: string): boolean {
  return parseBackupId(id) !== undefined;
}

/** The id for a run starting at `now`, later than `lastUsed` (the previous run's id) if given. */
export function nextBackupId(now: Date, lastUsed?: string): string {
  let t = Math.floor(now.getTime() / 1000) * 1000;
  const last = lastUsed === undefined ? undefined : parseBackupId(lastUsed);
  if (last && t <= last.getTime()) t = last.getTime() + 1000;
  return formatBackupId(new Date(t));
}
