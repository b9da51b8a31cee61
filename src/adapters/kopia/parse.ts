/**
 * Pure helpers of the Kopia adapter: the typed error, tag/source/version parsing, and judging kopia's
 * output — JSON first, exit code second (reference §3.7, §11.4).
 */
import path from 'node:path';
import { KopiDockaError, RepositoryError } from '../../errors.js';
import type { RunResult } from '../process.js';
import type {
  DesiredPolicy,
  KopiaFailure,
  KopiaPolicy,
  RepoStatus,
  SnapshotManifest,
  SnapshotSource,
} from './types.js';
import { GLOBAL_POLICY, MIN_KOPIA_VERSION } from './types.js';

// ---------------------------------------------------------------------------------------------------
// Errors

/**
 * A kopia command failed. A RepositoryError (exit 5) that also carries what kopia said: its exit
 * code, signal, the tail of its stderr, whether we timed it out or aborted it, and — for snapshot
 * failures — the manifest kopia saved anyway (it does save one with numFailed > 0 or incomplete).
 */
export class KopiaError extends RepositoryError {
  readonly reason: KopiaFailure;
  readonly command: string;
  readonly code: number | null;
  readonly signal: string | null;
  readonly stderrTail: string;
  readonly timedOut: boolean;
  readonly aborted: boolean;
  readonly manifest: SnapshotManifest | undefined;
  constructor(
    message: string,
    o: {
      reason: KopiaFailure;
      command: string;
      result?: Partial<RunResult>;
      hint?: string;
      manifest?: SnapshotManifest;
      cause?: unknown;
    },
  ) {
    super(message, {
      ...(o.hint === undefined ? {} : { hint: o.hint }),
      ...(o.cause === undefined ? {} : { cause: o.cause }),
    });
    this.reason = o.reason;
    this.command = o.command;
    this.code = o.result?.code ?? null;
    this.signal = o.result?.signal ?? null;
    this.stderrTail = o.result?.stderrTail ?? '';
    this.timedOut = o.result?.timedOut ?? false;
    this.aborted = o.result?.aborted ?? false;
    this.manifest = o.manifest;
  }
}

// ---------------------------------------------------------------------------------------------------
// Pure helpers (exported for unit tests and for other modules)

/** Plain tags of a manifest: the `tag:` prefix kopia adds is stripped, other labels dropped. */
export function tagsOf(m: Pick<SnapshotManifest, 'tags'>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(m.tags ?? {})) if (k.startsWith('tag:')) out[k.slice(4)] = v;
  return out;
}

/** Parse `user@host:/abs/path` (kopia's split rule: first `@`, then first `:` after it). */
export function parseSource(source: string): SnapshotSource {
  const at = source.indexOf('@');
  const colon = at < 0 ? -1 : source.indexOf(':', at + 1);
  if (at <= 0 || colon < 0) {
    throw new KopiDockaError(`invalid Kopia source "${source}": expected user@host:/absolute/path`);
  }
  const userName = source.slice(0, at);
  const host = source.slice(at + 1, colon);
  const p = source.slice(colon + 1);
  if (!host || !p.startsWith('/')) {
    throw new KopiDockaError(`invalid Kopia source "${source}": expected user@host:/absolute/path`);
  }
  return { userName, host, path: p };
}

/**
 * `user@host:/abs/path` with the path normalized and no trailing slash. Kopia takes the path of
 * --override-source verbatim, so `/v/db/` and `/v/db` would be two sources with separate retention.
 */
export function normalizeSource(source: string): string {
  const s = parseSource(source);
  let p = path.posix.normalize(s.path);
  if (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1);
  return `${s.userName}@${s.host}:${p}`;
}

/** `--tags=k:v` per tag, sorted by key so the argv is deterministic. */
export function tagFlags(tags: Record<string, string>): string[] {
  return Object.keys(tags)
    .sort()
    .map((k) => {
      // kopia splits on the first ':' only, so a ':' in the key would silently change key and value.
      if (k === '' || k.includes(':')) throw new KopiDockaError(`invalid snapshot tag key "${k}"`);
      return `--tags=${k}:${tags[k] ?? ''}`;
    });
}

/** Parse a kopia version line (`v0.23.1 build: …` or `0.23.1 build: …`) into "0.23.1". */
export function parseKopiaVersion(text: string): string | undefined {
  const m = /\bv?(\d+)\.(\d+)\.(\d+)/.exec(text);
  return m ? `${m[1]}.${m[2]}.${m[3]}` : undefined;
}

/** Negative, zero or positive like a sort comparator, for x.y.z versions. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Which kind of failure the stderr text describes, and what the user can do about it. */
export function classifyStderr(stderr: string): { reason: KopiaFailure; hint?: string } {
  if (/invalid repository password/i.test(stderr)) {
    return {
      reason: 'wrong-password',
      hint: 'the configured password does not open this repository; set the password it was created with',
    };
  }
  if (/repository is not connected/i.test(stderr)) {
    return { reason: 'not-connected', hint: 'run `kopi-docka init` to connect to the repository' };
  }
  if (/repository not initialized/i.test(stderr)) {
    return { reason: 'not-initialized', hint: 'run `kopi-docka init` to create the repository' };
  }
  if (/no space left on device|disk quota exceeded/i.test(stderr)) {
    return {
      reason: 'storage-full',
      hint: "the repository's filesystem is full: free space there (Kopia's maintenance reclaims the partial data a failed snapshot left behind: `kopia maintenance run --full`)",
    };
  }
  if (/cannot access storage path|no such file or directory/i.test(stderr)) {
    return {
      reason: 'storage-missing',
      hint: 'check that the repository path exists, is mounted and is readable',
    };
  }
  if (/must be run by designated user/i.test(stderr)) {
    return { reason: 'not-owner', hint: 'another user@host owns maintenance of this repository' };
  }
  if (/no snapshots matched|not found/i.test(stderr)) return { reason: 'not-found' };
  return { reason: 'failed' };
}

/** The last non-empty line of stderr: kopia logs the action's error as its final line (§1.6). */
export function lastLine(text: string): string {
  const lines = text
    .split(/\r?\n|\r/)
    .map((l) => l.trim())
    .filter(Boolean);
  return lines[lines.length - 1] ?? '';
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function unexpected(what: string, detail: string, result?: Partial<RunResult>): KopiaError {
  return new KopiaError(`unexpected output from kopia ${what}: ${detail}`, {
    reason: 'unexpected-output',
    command: `kopia ${what}`,
    ...(result === undefined ? {} : { result }),
    hint: `kopi-docka supports Kopia >= ${MIN_KOPIA_VERSION}; check \`kopia --version\``,
  });
}

export function parseJson(text: string, what: string, result?: Partial<RunResult>): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    const snippet = text.trim().slice(0, 200);
    throw unexpected(what, snippet ? `not JSON: ${snippet}` : 'no output', result);
  }
}

/** Minimal shape check: the fields later code relies on exist with the right types. */
export function asManifest(v: unknown, what = 'snapshot'): SnapshotManifest {
  const ok =
    isRecord(v) &&
    typeof v.id === 'string' &&
    isRecord(v.source) &&
    typeof v.source.host === 'string' &&
    typeof v.source.userName === 'string' &&
    typeof v.source.path === 'string' &&
    typeof v.startTime === 'string' &&
    isRecord(v.rootEntry) &&
    typeof v.rootEntry.obj === 'string' &&
    typeof v.rootEntry.type === 'string' &&
    (v.tags === undefined || isRecord(v.tags)) &&
    (v.rootEntry.summ === undefined || isRecord(v.rootEntry.summ));
  if (!ok) throw unexpected(what, `not a snapshot manifest: ${JSON.stringify(v).slice(0, 200)}`);
  const m = v as unknown as SnapshotManifest;
  // kopia omits these when empty; give callers a uniform shape.
  m.description ??= '';
  m.endTime ??= m.startTime;
  return m;
}

export function asStatus(v: unknown): RepoStatus {
  if (
    !isRecord(v) ||
    typeof v.configFile !== 'string' ||
    !isRecord(v.clientOptions) ||
    typeof v.clientOptions.hostname !== 'string' ||
    typeof v.clientOptions.username !== 'string' ||
    (v.storage !== undefined && (!isRecord(v.storage) || typeof v.storage.type !== 'string'))
  ) {
    throw unexpected('repository status', JSON.stringify(v).slice(0, 200));
  }
  return v as unknown as RepoStatus;
}

export function asPolicy(v: unknown, what: string): KopiaPolicy {
  if (!isRecord(v)) throw unexpected(what, JSON.stringify(v).slice(0, 200));
  for (const k of ['retention', 'files', 'compression'] as const) {
    if (v[k] !== undefined && !isRecord(v[k])) throw unexpected(what, `"${k}" is not an object`);
  }
  if (isRecord(v.files) && v.files.ignore !== undefined && !Array.isArray(v.files.ignore)) {
    throw unexpected(what, '"files.ignore" is not an array');
  }
  return v;
}

/** The filesystem repository path a status points at, if it is a filesystem repository. */
export function statusStoragePath(st: RepoStatus): string | undefined {
  const p = st.storage?.type === 'filesystem' ? st.storage.config.path : undefined;
  return typeof p === 'string' ? p : undefined;
}

/** `policy list` target triple for a policy target string. */
export function policyTargetOf(target: string): SnapshotSource {
  if (target === GLOBAL_POLICY) return { host: '', userName: '', path: '' };
  if (target.startsWith('@') && !target.includes(':'))
    return { host: target.slice(1), userName: '', path: '' };
  if (!target.includes(':')) {
    const at = target.indexOf('@');
    if (at > 0) return { userName: target.slice(0, at), host: target.slice(at + 1), path: '' };
  }
  return parseSource(normalizeSource(target));
}

/** The `policy set` flags that turn `current` (a defined policy or none) into `desired`. */
export function policyDiffFlags(current: KopiaPolicy | undefined, desired: DesiredPolicy): string[] {
  const flags: string[] = [];
  const keep: [keyof DesiredPolicy & `keep${string}`, string][] = [
    ['keepLatest', 'keep-latest'],
    ['keepHourly', 'keep-hourly'],
    ['keepDaily', 'keep-daily'],
    ['keepWeekly', 'keep-weekly'],
    ['keepMonthly', 'keep-monthly'],
    ['keepAnnual', 'keep-annual'],
  ];
  for (const [key, flag] of keep) {
    const want = desired[key];
    if (want === undefined) continue;
    if (!Number.isInteger(want) || want < 0) throw new KopiDockaError(`invalid ${flag} value ${want}`);
    if (current?.retention?.[key] !== want) flags.push(`--${flag}=${want}`);
  }
  if (desired.compression !== undefined) {
    if (desired.compression === 'lz4') {
      // Kopia 0.23 still lists lz4 but can no longer read data written with it (§6.3, §9).
      throw new KopiDockaError('compression "lz4" is unsupported since Kopia 0.23', {
        hint: 'use zstd, zstd-fastest, s2-default, pgzip or none',
      });
    }
    if (current?.compression?.compressorName !== desired.compression) {
      flags.push(`--compression=${desired.compression}`);
    }
  }
  if (desired.ignore !== undefined) {
    // Kopia keeps ignore rules as a sorted set and applies add, then remove, then clear within one
    // `policy set` (verified on 0.23.1: `--clear-ignore --add-ignore=x` leaves the list EMPTY). So we
    // send the set difference, which is correct in a single call.
    const have = new Set(current?.files?.ignore ?? []);
    const want = new Set(desired.ignore);
    for (const p of [...have].sort()) if (!want.has(p)) flags.push(`--remove-ignore=${p}`);
    for (const p of [...want].sort()) if (!have.has(p)) flags.push(`--add-ignore=${p}`);
  }
  return flags;
}

/** Why a call was cut short by us (watchdog, timeout, signal), if it was. */
export function cutShort(r: Partial<RunResult>): 'stalled' | 'timeout' | 'aborted' | undefined {
  return r.stalled ? 'stalled' : r.timedOut ? 'timeout' : r.aborted ? 'aborted' : undefined;
}

export function describeResult(r: Partial<RunResult>): string {
  if (r.stalled) return 'made no progress for stall_timeout and was stopped';
  if (r.timedOut) return 'timed out';
  if (r.aborted) return 'was aborted';
  if (r.signal) return `was killed by ${r.signal}`;
  return `exited with code ${String(r.code)}`;
}

/**
 * Judge the output of `kopia snapshot create --json` for ONE source: the JSON first, the exit code
 * second (reference §3.6, §3.7, §11.4). Returns the manifest only when kopia saved a complete snapshot
 * without fatal errors; otherwise throws a KopiaError that carries the manifest if one was saved.
 */
export function parseSnapshotCreateOutput(result: RunResult, what = 'snapshot create'): SnapshotManifest {
  const command = `kopia ${what}`;
  const lines = result.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const manifests: SnapshotManifest[] = [];
  for (const line of lines) {
    // A killed kopia may leave a truncated last line; that is "no manifest", not a crash.
    if (!line.startsWith('{')) throw unexpected(what, `not JSON: ${line.slice(0, 200)}`, result);
    manifests.push(asManifest(parseJson(line, what, result), what));
  }
  if (manifests.length > 1) throw unexpected(what, `${manifests.length} manifests for one source`, result);
  const m = manifests[0];
  const tail = lastLine(result.stderrTail);
  if (m) {
    const src = `${m.source.userName}@${m.source.host}:${m.source.path}`;
    if (m.incomplete) {
      const why =
        result.stalled || result.timedOut || result.aborted ? ` (kopia ${describeResult(result)})` : '';
      throw new KopiaError(`snapshot ${m.id} of ${src} is incomplete: ${m.incomplete}${why}`, {
        reason: cutShort(result) ?? 'snapshot-failed',
        command,
        result,
        manifest: m,
        hint: 'the snapshot was cut short; run the backup again',
      });
    }
    const summ = m.rootEntry.summ;
    if (summ && summ.numFailed > 0) {
      const errs = summ.errors ?? [];
      const listed = errs.map((e) => `${e.path}: ${e.error}`).join('; ');
      const more = summ.numFailed > errs.length ? ` (and ${summ.numFailed - errs.length} more)` : '';
      throw new KopiaError(
        `snapshot ${m.id} of ${src} failed to read ${summ.numFailed} entr${summ.numFailed === 1 ? 'y' : 'ies'}: ${listed}${more}`,
        {
          reason: 'snapshot-failed',
          command,
          result,
          manifest: m,
          hint: 'check permissions of the listed paths (kopia must be able to read every file)',
        },
      );
    }
    if (result.code !== 0) {
      // Complete and without file errors, yet kopia failed afterwards (e.g. auto-maintenance on
      // v0.22+, which we disable). Conservative: report it, with the saved manifest attached.
      throw new KopiaError(
        `kopia saved snapshot ${m.id} of ${src} but ${describeResult(result)}${tail ? `: ${tail}` : ''}`,
        { reason: 'failed', command, result, manifest: m },
      );
    }
    return m;
  }
  if (result.timedOut || result.aborted || result.signal) {
    throw new KopiaError(`kopia ${what} ${describeResult(result)} before saving a snapshot`, {
      reason: cutShort(result) ?? 'killed',
      command,
      result,
    });
  }
  if (result.code === 0) {
    throw new KopiaError('kopia saved no snapshot', {
      reason: 'nothing-saved',
      command,
      result,
      hint:
        'kopia skips a snapshot identical to the previous one when the policy has ' +
        'ignore-identical-snapshots=true; kopi-docka needs it false (`kopia policy show` for the source)',
    });
  }
  const c = classifyStderr(result.stderrTail);
  throw new KopiaError(`kopia ${what} failed: ${tail || describeResult(result)}`, {
    reason: c.reason === 'failed' ? 'snapshot-failed' : c.reason,
    command,
    result,
    ...(c.hint === undefined ? {} : { hint: c.hint }),
  });
}
