/**
 * Log lines on stderr: one event per line, in one of four shapes chosen once per logger.
 *
 * - **TTY** (a person watching): `message` for info, `warning: message` otherwise — no time (the
 *   person sees it happen), and the live progress display writes around these lines.
 * - **the journal** (stderr really is journald's stream): `<N>message`, N the syslog priority
 *   (sd-daemon(3): 7 debug, 6 info, 4 warning, 3 error) that journald strips and records as PRIORITY;
 *   journald adds the time itself. "Really" means: systemd sets JOURNAL_STREAM=`<dev>:<inode>` of the
 *   stream it connected (systemd.exec(5)), and fd 2's fstat(2) device and inode are the same — a
 *   child whose stderr was redirected to a file or pipe inherits JOURNAL_STREAM but fails that test.
 * - **anything else** (file, pipe, cron mail, `2>&1 | tee`): `2026-11-30T02:00:00.123Z info    message`
 *   — ISO 8601 UTC time, the level padded to 7, the message; no `<N>` prefixes.
 * - **json** (`--log-format json`, for log shippers): one JSON object per line,
 *   `{"time":"…","level":"info","msg":"…","unit":"…","backup_id":"…"}` — `unit` and `backup_id` only
 *   when the message names them (the pipeline starts a unit's lines with `<unit>: ` or `unit <unit> `,
 *   and names the backup_id in `backup <id>: …`). In the journal each object gets the `<N>` prefix,
 *   which journald strips, so what it stores is the plain JSON with the right priority.
 *
 * A message that contains line breaks is kept on one line (breaks become ` | `): one event, one line.
 */
import { fstatSync } from 'node:fs';
import { journalStream } from '../config/env.js';
import type { LogLevel } from '../config/types.js';
import type { Logger } from '../core/log.js';

export type { Logger };

export type LogFormat = 'text' | 'json';
export const LOG_FORMATS: readonly LogFormat[] = ['text', 'json'];

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warning: 30, error: 40 };
/** Syslog priorities (sd-daemon(3) SD_DEBUG … SD_ERR). */
const PRIORITY: Record<LogLevel, number> = { debug: 7, info: 6, warning: 4, error: 3 };

export interface LoggerOptions {
  /** Default: the process-wide format set by `--log-format` (setLogFormat), else `text`. */
  format?: LogFormat;
  /**
   * Whether `stream` is journald's stream. Default: for process.stderr, isJournalStream(2,
   * JOURNAL_STREAM); for any other stream, false.
   */
  journal?: boolean;
  /** The clock (tests). */
  now?: () => Date;
}

let processFormat: LogFormat = 'text';

/** The format of every logger created from now on without an explicit one (main.ts: --log-format). */
export function setLogFormat(format: LogFormat): void {
  processFormat = format;
}

export function currentLogFormat(): LogFormat {
  return processFormat;
}

export function parseLogFormat(v: string): LogFormat | undefined {
  const s = v.toLowerCase();
  return s === 'text' || s === 'json' ? s : undefined;
}

/**
 * True when file descriptor `fd` is the stream named by `journalStreamValue` (`<dev>:<inode>` in
 * decimal, as systemd writes JOURNAL_STREAM): same st_dev and st_ino. False when the value is unset
 * or malformed, or fd cannot be stat'ed.
 */
export function isJournalStream(fd: number, journalStreamValue: string | undefined): boolean {
  if (journalStreamValue === undefined) return false;
  const m = /^(\d+):(\d+)$/.exec(journalStreamValue.trim());
  if (m === null) return false;
  try {
    const st = fstatSync(fd, { bigint: true });
    return st.dev === BigInt(m[1] ?? '-1') && st.ino === BigInt(m[2] ?? '-1');
  } catch {
    return false;
  }
}

let stderrJournal: boolean | undefined;
/** isJournalStream(2, JOURNAL_STREAM), computed once. */
export function stderrIsJournal(): boolean {
  stderrJournal ??= isJournalStream(2, journalStream());
  return stderrJournal;
}

const BACKUP_ID = /\b(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z)\b/;
const UNIT_PREFIX = /^(?:unit ([A-Za-z0-9][\w.-]*)\b|([A-Za-z0-9][\w.-]*): )/;

/** The unit and backup_id a pipeline message names (see the module comment). */
export function eventFields(msg: string): { unit?: string; backup_id?: string } {
  const out: { unit?: string; backup_id?: string } = {};
  const u = UNIT_PREFIX.exec(msg);
  const unit = u?.[1] ?? u?.[2];
  if (unit !== undefined && unit !== 'backup') out.unit = unit;
  const b = /^backup /.test(msg) || /backup_id/.test(msg) ? BACKUP_ID.exec(msg) : null;
  if (b?.[1] !== undefined) out.backup_id = b[1];
  return out;
}

/** One line of the given shape (no trailing newline). */
export function formatLine(
  shape: 'tty' | 'journal' | 'plain' | 'json' | 'journal-json',
  level: LogLevel,
  msg: string,
  now: Date,
): string {
  const oneLine = msg.replace(/\r?\n/g, ' | ');
  switch (shape) {
    case 'tty':
      return `${level === 'info' ? '' : `${level}: `}${oneLine}`;
    case 'journal':
      return `<${PRIORITY[level]}>${oneLine}`;
    case 'plain':
      return `${now.toISOString()} ${level.padEnd(7)} ${oneLine}`;
    case 'json':
    case 'journal-json': {
      const json = JSON.stringify({ time: now.toISOString(), level, msg, ...eventFields(msg) });
      return shape === 'json' ? json : `<${PRIORITY[level]}>${json}`;
    }
  }
}

export function createLogger(
  level: LogLevel,
  stream: NodeJS.WriteStream = process.stderr,
  opts: LoggerOptions = {},
): Logger {
  const format = opts.format ?? processFormat;
  const journal = opts.journal ?? (stream === process.stderr ? stderrIsJournal() : false);
  const now = opts.now ?? (() => new Date());
  const shape =
    format === 'json'
      ? journal
        ? 'journal-json'
        : 'json'
      : journal
        ? 'journal'
        : stream.isTTY
          ? 'tty'
          : 'plain';
  const write = (l: LogLevel, msg: string) => {
    if (ORDER[l] < ORDER[logger.level]) return;
    const line = `${formatLine(shape, l, msg, now())}\n`;
    if (logger.around) logger.around(() => stream.write(line));
    else stream.write(line);
  };
  const logger: Logger = {
    level,
    debug: (m) => write('debug', m),
    info: (m) => write('info', m),
    warn: (m) => write('warning', m),
    error: (m) => write('error', m),
  };
  return logger;
}

export function parseLogLevel(v: string): LogLevel | undefined {
  const s = v.toLowerCase();
  if (s === 'warn') return 'warning';
  return s === 'debug' || s === 'info' || s === 'warning' || s === 'error' ? s : undefined;
}
