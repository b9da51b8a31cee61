/**
 * What a config file may contain: the sections and keys, their defaults, and the pure value parsers.
 * No I/O here; src/config/load.ts reads files and the environment and assembles the Config.
 */
import path from 'node:path';
import type { LogLevel, VolumeMode } from './types.js';

/** Kopia's compressor names (`kopia benchmark compression`), lz4 excluded: see LZ4_HINT. */
export const COMPRESSIONS = [
  'none',
  'zstd',
  'zstd-fastest',
  'zstd-better-compression',
  's2-default',
  's2-better',
  's2-parallel-4',
  's2-parallel-8',
  'gzip',
  'gzip-best-speed',
  'gzip-best-compression',
  'pgzip',
  'pgzip-best-speed',
  'pgzip-best-compression',
  'deflate-default',
  'deflate-best-speed',
  'deflate-best-compression',
] as const;

export const LZ4_HINT =
  'Kopia 0.23 removed lz4: data written with it can no longer be read; use zstd (the default) or s2-default';

export const ENCRYPTIONS = ['AES256-GCM-HMAC-SHA256', 'CHACHA20-POLY1305-HMAC-SHA256'] as const;

export const VOLUME_MODES: readonly VolumeMode[] = ['direct', 'tar'];
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warning', 'error'];

/** Hard ceiling for auto-detected workers: past this the storage, not the CPU, is the bottleneck. */
export const AUTO_WORKERS_MAX = 8;
/** Memory budgeted per auto-detected worker: one Kopia snapshot process hashing a large volume. */
export const AUTO_WORKERS_BYTES_PER_WORKER = 1024 ** 3;

export const DEFAULT_STATE_DIR = '/var/lib/kopi-docka';

export const DEFAULTS = {
  kopia: {
    compression: 'zstd',
    encryption: 'AES256-GCM-HMAC-SHA256',
    cacheDirectory: '/var/cache/kopi-docka',
    username: 'kopi-docka',
    binary: 'kopia',
  },
  backup: {
    parallelWorkers: 'auto',
    stopTimeout: 30,
    startTimeout: 120,
    taskTimeout: 3600,
    volumeMode: 'direct' as VolumeMode,
    tarDeterministicMtime: false,
    updateRecoveryBundle: false,
    recoveryBundleRetention: 3,
  },
  retention: { latest: 10, hourly: 0, daily: 7, weekly: 4, monthly: 12, yearly: 3 },
  logging: { level: 'info' as LogLevel },
} as const;

/** Every section and key a config file may contain. */
export const SCHEMA: Readonly<Record<string, readonly string[]>> = {
  kopia: [
    'repository_path',
    'password',
    'password_file',
    'compression',
    'encryption',
    'cache_directory',
    'hostname',
    'username',
  ],
  backup: [
    'backup_base_path',
    'parallel_workers',
    'stop_timeout',
    'start_timeout',
    'task_timeout',
    'exclude_patterns',
    'volume_mode',
    'tar_deterministic_mtime',
    'update_recovery_bundle',
    'recovery_bundle_path',
    'recovery_bundle_retention',
    'pre_backup_hook',
    'post_backup_hook',
  ],
  retention: ['latest', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'],
  logging: ['level'],
};

/** Keys of the Python kopi-docka (or spellings people use) that do not exist here, with what to write instead. */
export const LEGACY_KEY_HINTS: Readonly<Record<string, string>> = {
  'kopia.kopia_params':
    'kopi-docka takes a filesystem repository: set "repository_path = /absolute/path" instead',
  'kopia.profile': 'not needed: kopi-docka keeps its own Kopia config file per repository_path',
  'kopia.cache_size_mb': 'not supported; remove the line',
  'backup.base_path': 'it is called "backup_base_path"',
  'backup.backup_scope':
    'not supported: every backup includes the recipe and all data sources; remove the line',
  'backup.database_backup': 'not supported: databases are backed up cold with their volumes; remove the line',
  'retention.annual': 'it is called "yearly"',
};

/** Classic edit distance; config keys are short, so the O(n·m) table is fine. */
export function levenshtein(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur.push(Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + cost));
    }
    prev = cur;
  }
  return prev[b.length] ?? 0;
}

/** The closest candidate within edit distance 3, if any (ties: the first in candidate order). */
export function nearest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 4;
  for (const c of candidates) {
    const d = levenshtein(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return best;
}

/** A value that failed to parse: `expected` completes "expected …". */
export class ValueError extends Error {
  constructor(
    readonly expected: string,
    readonly hint?: string,
  ) {
    super(`expected ${expected}`);
  }
}

const TRUE_WORDS = new Set(['true', 'yes', 'on', '1']);
const FALSE_WORDS = new Set(['false', 'no', 'off', '0']);

export function parseBool(raw: string): boolean {
  const v = raw.trim().toLowerCase();
  if (TRUE_WORDS.has(v)) return true;
  if (FALSE_WORDS.has(v)) return false;
  throw new ValueError('a boolean (true/false, yes/no, on/off, 1/0)');
}

export function parseInteger(raw: string, min: number, max: number = Number.MAX_SAFE_INTEGER): number {
  const v = raw.trim();
  const range = max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `from ${min} to ${max}`;
  if (!/^[+-]?\d+$/.test(v)) throw new ValueError(`an integer ${range}`);
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new ValueError(`an integer ${range}`);
  return n;
}

export function parseChoice<T extends string>(raw: string, choices: readonly T[]): T {
  const v = raw.trim().toLowerCase();
  const found = choices.find((c) => c.toLowerCase() === v);
  if (found === undefined) throw new ValueError(`one of ${choices.join(', ')}`);
  return found;
}

export function parseLogLevelValue(raw: string): LogLevel {
  const v = raw.trim().toLowerCase();
  return parseChoice(v === 'warn' ? 'warning' : v, LOG_LEVELS);
}

export function parseCompression(raw: string): string {
  const v = raw.trim().toLowerCase();
  if (v === 'lz4') throw new ValueError(`a Kopia compression other than lz4`, LZ4_HINT);
  return parseChoice(v, COMPRESSIONS);
}

export function parseAbsolutePath(raw: string): string {
  const v = raw.trim();
  if (!v.startsWith('/')) throw new ValueError('an absolute path (starting with /)');
  // Normalised so that `/srv/repo/` and `/srv/repo` are the same repository (and Kopia config file).
  return path.posix.resolve(v);
}

/**
 * Kopia records `username@hostname` on every snapshot; keep it to characters that survive being a
 * source identity and lower-case it so the same host never shows up under two spellings.
 */
export function parseIdentityPart(raw: string): string {
  const v = raw.trim();
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(v)) {
    throw new ValueError('letters, digits, ".", "_" or "-" (starting with a letter or digit)');
  }
  return v.toLowerCase();
}

/** The default hostname: the short host name, lower-cased, so FQDN changes keep the same identity. */
export function shortHostname(osHostname: string): string {
  const short = osHostname.split('.')[0]?.trim().toLowerCase() ?? '';
  return /^[a-z0-9][a-z0-9_-]*$/.test(short) ? short : 'localhost';
}

/**
 * `parallel_workers = auto`: one worker per CPU core, but no more than one per GiB of available
 * memory (each worker is a Kopia process that can take several hundred MiB while hashing a large
 * volume), and never more than AUTO_WORKERS_MAX; at least 1.
 */
export function autoWorkers(cores: number, availableMemoryBytes: number): number {
  const byMemory = Math.floor(availableMemoryBytes / AUTO_WORKERS_BYTES_PER_WORKER);
  return Math.max(1, Math.min(Math.max(1, Math.floor(cores)), byMemory, AUTO_WORKERS_MAX));
}

export function parseWorkers(
  raw: string,
  system: { cores: number; availableMemoryBytes: number },
): { workers: number; auto: boolean } {
  if (raw.trim().toLowerCase() === 'auto') {
    return { workers: autoWorkers(system.cores, system.availableMemoryBytes), auto: true };
  }
  try {
    return { workers: parseInteger(raw, 1, 64), auto: false };
  } catch {
    throw new ValueError('"auto" or an integer from 1 to 64');
  }
}

function unquote(item: string): string {
  const m = /^(["'])(.*)\1$/s.exec(item);
  return m ? (m[2] ?? '') : item;
}

/**
 * exclude_patterns in any of the three spellings people write: `*.log, cache/*`, one pattern per
 * continuation line, or a bracketed list `["*.log", "cache/*"]` (JSON or single-quoted, as the
 * original's JSON config had it). A pattern containing a comma needs the quoted list form.
 */
export function parseList(raw: string): string[] {
  const v = raw.trim();
  if (v === '') return [];
  if (v.startsWith('[')) {
    if (!v.endsWith(']')) throw new ValueError('a list: a bracketed list must end with "]"');
    try {
      const parsed: unknown = JSON.parse(v);
      if (Array.isArray(parsed) && parsed.every((x): x is string => typeof x === 'string')) {
        return parsed.map((s) => s.trim()).filter((s) => s !== '');
      }
    } catch {
      // Not JSON (e.g. single quotes or bare words): fall through to the tolerant reader.
    }
    return splitQuotedList(v.slice(1, -1));
  }
  return v
    .split(/[,\n]/)
    .map((s) => unquote(s.trim()).trim())
    .filter((s) => s !== '');
}

function splitQuotedList(inner: string): string[] {
  const items: string[] = [];
  let i = 0;
  while (i < inner.length) {
    while (i < inner.length && /[\s,]/.test(inner[i] ?? '')) i++;
    if (i >= inner.length) break;
    const ch = inner[i];
    if (ch === '"' || ch === "'") {
      const end = inner.indexOf(ch, i + 1);
      if (end < 0) throw new ValueError(`a list: unterminated ${ch} quote`);
      items.push(inner.slice(i + 1, end));
      i = end + 1;
      while (i < inner.length && /\s/.test(inner[i] ?? '')) i++;
      if (i < inner.length && inner[i] !== ',')
        throw new ValueError('a list: expected "," after a quoted item');
    } else {
      let end = inner.indexOf(',', i);
      if (end < 0) end = inner.length;
      items.push(inner.slice(i, end));
      i = end;
    }
  }
  return items.map((s) => s.trim()).filter((s) => s !== '');
}

const SHELL_SPECIAL = new Set(['|', '&', ';', '<', '>', '`', '$']);

/**
 * Split a hook command line into argv by simple shell-word rules — whitespace separates words,
 * '…' is literal, "…" allows \" \\ \$ \`, a backslash outside quotes escapes the next character —
 * without ever running a shell. Unquoted shell syntax (pipes, redirects, `;`, `&&`, `$VAR`) is
 * rejected rather than passed through as a literal argument the user did not mean.
 */
export function splitShellWords(raw: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  let i = 0;
  const s = raw;
  while (i < s.length) {
    const ch = s[i] ?? '';
    if (/\s/.test(ch)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      i++;
    } else if (ch === "'") {
      const end = s.indexOf("'", i + 1);
      if (end < 0) throw new ValueError("a command line: unterminated ' quote");
      word += s.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (ch === '"') {
      i++;
      let closed = false;
      while (i < s.length) {
        const c = s[i] ?? '';
        if (c === '"') {
          closed = true;
          i++;
          break;
        }
        if (c === '\\' && i + 1 < s.length && '"\\$`\n'.includes(s[i + 1] ?? '')) {
          if (s[i + 1] !== '\n') word += s[i + 1] ?? '';
          i += 2;
          continue;
        }
        word += c;
        i++;
      }
      if (!closed) throw new ValueError('a command line: unterminated " quote');
      inWord = true;
    } else if (ch === '\\') {
      if (i + 1 >= s.length) throw new ValueError('a command line: trailing backslash');
      if (s[i + 1] !== '\n') word += s[i + 1] ?? '';
      inWord = true;
      i += 2;
    } else if (SHELL_SPECIAL.has(ch)) {
      throw new ValueError(
        `a command line without shell syntax (found an unquoted "${ch}"; hooks run without a shell: ` +
          `quote it to pass it literally, or write /bin/sh -c '…')`,
      );
    } else {
      word += ch;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(word);
  return words;
}
