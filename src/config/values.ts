/**
 * The pure value parsers of the config keys (src/config/schema.ts says which key uses which) and the
 * spellings of the original kopi-docka they accept. No I/O. Every parser takes the raw INI text of
 * one value and returns the typed value or throws a ValueError saying what was expected.
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

/** Called by a parser that accepted a spelling it had to translate; the loader adds file and line. */
export type Warn = (message: string) => void;

/**
 * Python's logging level names, as the original's template listed them: `CRITICAL` has no
 * equivalent here, so it becomes `error` (errors are printed too) with a warning.
 */
export function parseLogLevelValue(raw: string, warn?: Warn): LogLevel {
  const v = raw.trim().toLowerCase();
  if (v === 'critical' || v === 'fatal') {
    warn?.(`"${raw.trim()}" is read as "error" (kopi-docka has no level above error)`);
    return 'error';
  }
  return parseChoice(v === 'warn' ? 'warning' : v, LOG_LEVELS);
}

/**
 * Compressor names that are not Kopia's but that the original kopi-docka offered: it handed them to
 * `kopia policy set --compression`, which refused them, and ignored the failure (so the repository
 * stayed uncompressed). What the user asked for is Kopia's matching compressor.
 */
export const COMPRESSION_ALIASES: Readonly<Record<string, string>> = { s2: 's2-default' };

export function parseCompression(raw: string, warn?: Warn): string {
  const v = raw.trim().toLowerCase();
  if (v === 'lz4') throw new ValueError(`a Kopia compression other than lz4`, LZ4_HINT);
  const alias = COMPRESSION_ALIASES[v];
  if (alias !== undefined) {
    warn?.(
      `"${raw.trim()}" is not a Kopia compressor; using ${alias} (the original kopi-docka passed "${raw.trim()}" to Kopia, which refused it, so it never took effect) — write "${alias}" to silence this`,
    );
    return alias;
  }
  return parseChoice(v, COMPRESSIONS);
}

/**
 * The original kopi-docka's spellings of Kopia's encryption algorithms (its README wrote `aes256`,
 * its wizard offered `AES256-GCM` and `CHACHA20-POLY1305`). Matched case-insensitively. The
 * original never passed `encryption` to Kopia, so its repositories all use AES256-GCM-HMAC-SHA256
 * whatever the file said; kopi-docka uses the value when it creates a repository.
 */
export const ENCRYPTION_ALIASES: Readonly<Record<string, (typeof ENCRYPTIONS)[number]>> = {
  aes256: 'AES256-GCM-HMAC-SHA256',
  'aes-256': 'AES256-GCM-HMAC-SHA256',
  'aes256-gcm': 'AES256-GCM-HMAC-SHA256',
  chacha20: 'CHACHA20-POLY1305-HMAC-SHA256',
  'chacha20-poly1305': 'CHACHA20-POLY1305-HMAC-SHA256',
};

/** Values the original documented that Kopia cannot do, with why (lower-cased keys). */
export const ENCRYPTION_REFUSED: Readonly<Record<string, string>> = {
  'aes256-cbc-hmac-sha256':
    'Kopia has no CBC mode (the original offered it but never passed it to Kopia, so its repositories use AES256-GCM-HMAC-SHA256): write "encryption = AES256-GCM-HMAC-SHA256"',
  none: 'Kopia always encrypts a repository (the original template listed "none", but never passed it to Kopia): write "encryption = AES256-GCM-HMAC-SHA256" or remove the line',
};

export function parseEncryption(raw: string): (typeof ENCRYPTIONS)[number] {
  const v = raw.trim().toLowerCase();
  const refused = ENCRYPTION_REFUSED[v];
  if (refused !== undefined) throw new ValueError(`one of ${ENCRYPTIONS.join(', ')}`, refused);
  return ENCRYPTION_ALIASES[v] ?? parseChoice(v, ENCRYPTIONS);
}

/** The original took these as repository_path; kopi-docka names other backends with typed keys. */
const URL_HINT =
  'repository_path is the directory of a filesystem repository (the original also took s3://, b2://, sftp://… URLs here): ' +
  'for another storage set "backend = s3" (or b2, azure, gcs, sftp, webdav, rclone, server) and its keys under [kopia] — see docs/configuration.md';

export function parseAbsolutePath(raw: string): string {
  const v = raw.trim();
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(v))
    throw new ValueError('an absolute path (starting with /)', URL_HINT);
  if (v.startsWith('~')) {
    throw new ValueError(
      'an absolute path (starting with /)',
      '"~" is not expanded (the original expanded it to the home of the user running it, usually /root): write the full path',
    );
  }
  if (!v.startsWith('/')) throw new ValueError('an absolute path (starting with /)');
  // `/srv/kopia  # main repo` would otherwise silently name a directory with the comment in it.
  if (/\s[#;]/.test(v)) throw new ValueError('an absolute path without an inline comment');
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
    .map((s) => unquoteItem(s.trim()))
    .filter((s) => s !== '');
}

/** An item of a plain list; an unquoted ` #` is an inline comment the user meant to drop, not a pattern. */
function unquoteItem(item: string): string {
  if (!/^["']/.test(item) && /\s#/.test(item)) {
    throw new ValueError('a list without an inline comment (quote an item that really contains " #")');
  }
  return unquote(item).trim();
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
    } else if (ch === '#' && !inWord) {
      // A shell would end the command here; passing the comment as arguments is never what was meant.
      throw new ValueError(
        'a command line without an inline comment (an unquoted "#" starts a word; quote it to pass it literally)',
      );
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
