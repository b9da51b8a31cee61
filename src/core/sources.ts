/**
 * Stable Kopia source identities. Every snapshot is recorded under a path we choose (never a temp dir)
 * so that retention groups a unit's history and per-unit policies on /recipes/<unit>, /volumes/<unit>
 * and /binds/<unit> are inherited by every child source.
 */

export type SnapshotType = 'recipe' | 'volume' | 'bind';

/** Percent-escape '%' and '/' so a host path or name becomes one path segment, reversibly. */
export function escapeSegment(s: string): string {
  return s.replace(/%/g, '%25').replace(/\//g, '%2F');
}

export function unescapeSegment(s: string): string {
  return s.replace(/%2F/gi, '/').replace(/%25/g, '%');
}

export function recipePath(unit: string): string {
  return `/recipes/${escapeSegment(unit)}`;
}

export function volumePath(unit: string, volume: string): string {
  return `/volumes/${escapeSegment(unit)}/${escapeSegment(volume)}`;
}

/** `/srv/app/data` → `/binds/<unit>/srv%2Fapp%2Fdata`. */
export function bindPath(unit: string, hostPath: string): string {
  const trimmed = hostPath.replace(/^\/+/, '').replace(/\/+$/, '');
  return `/binds/${escapeSegment(unit)}/${escapeSegment(trimmed)}`;
}

/** The roots that carry a unit's retention policy. */
export function unitPolicyRoots(unit: string): string[] {
  const u = escapeSegment(unit);
  return [`/recipes/${u}`, `/volumes/${u}`, `/binds/${u}`];
}

export function sourceId(user: string, host: string, path: string): string {
  return `${user}@${host}:${path}`;
}

/** The tags every snapshot of a run carries (values are strings; Kopia stores them as `tag:<key>`). */
export interface SnapshotTags {
  unit: string;
  backup_id: string;
  type: SnapshotType;
  timestamp: string;
  volume?: string;
  bind_source?: string;
  size_bytes?: string;
  format?: string;
  host?: string;
}

export function tagsToRecord(t: SnapshotTags): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(t)) if (typeof v === 'string') out[k] = v;
  return out;
}
