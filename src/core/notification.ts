/**
 * Alerts (issue #13): the settings of the `[notifications]` section and the one message per run that
 * every channel sends. Pure: no I/O (the channels are in src/adapters/notify/).
 *
 * Settings map one-to-one onto INI keys (NOTIFICATION_KEYS): webhook_url, ntfy_url, ntfy_token,
 * smtp_host, smtp_port, smtp_user, smtp_password, smtp_from, smtp_to, smtp_tls, heartbeat_url,
 * notify_on = failure|always, timeout_seconds. parseNotificationSettings() validates such a key/value
 * map (from the INI section, or the JSON file of `notify --test --settings`) and throws ConfigError
 * naming the key.
 *
 * A run is a failure when a unit failed, the run was interrupted, or it never got to the units
 * (pre-flight: repository unreachable, Docker down, lock held) — upstream D15: a pre-flight failure
 * must be notified too. Secrets never reach a message: the settings' own secrets (ntfy_token,
 * smtp_password, the credentials and query of every URL) and any extra strings the caller names are
 * replaced by "***" in every text the message carries.
 */
import { ConfigError } from '../errors.js';
import type { RunRecord, UnitStatus } from './run-record.js';
import { formatBytes } from './bytes.js';

export type NotifyOn = 'failure' | 'always';
/** `starttls` (default, port 587: STARTTLS required), `tls` (implicit TLS, port 465), `none` (plain, local relay). */
export type SmtpTls = 'starttls' | 'tls' | 'none';

export interface NotificationSettings {
  /** webhook_url: POST of the JSON payload (WebhookPayload). */
  webhookUrl?: string | undefined;
  /** ntfy_url: the topic URL, e.g. https://ntfy.sh/my-backups. */
  ntfyUrl?: string | undefined;
  /** ntfy_token: access token sent as `Authorization: Bearer` (secret). */
  ntfyToken?: string | undefined;
  /** smtp_host: e-mail is sent when smtp_host, smtp_from and smtp_to are set. */
  smtpHost?: string | undefined;
  /** smtp_port: default 587 (starttls), 465 (tls), 25 (none). */
  smtpPort?: number | undefined;
  smtpUser?: string | undefined;
  /** smtp_password (secret). */
  smtpPassword?: string | undefined;
  smtpFrom?: string | undefined;
  /** smtp_to: one or more addresses, comma-separated in the INI file. */
  smtpTo: string[];
  /** smtp_tls: default starttls. */
  smtpTls: SmtpTls;
  /** heartbeat_url: healthchecks.io-style ping URL: `<url>/start`, `<url>`, `<url>/fail`. */
  heartbeatUrl?: string | undefined;
  /** notify_on: when the message channels (webhook, ntfy, e-mail) send; the heartbeat always pings. */
  notifyOn: NotifyOn;
  /** timeout_seconds: per channel and message; default 10. */
  timeoutSeconds: number;
}

/** INI key (section `[notifications]`) → settings field. */
export const NOTIFICATION_KEYS = {
  webhook_url: 'webhookUrl',
  ntfy_url: 'ntfyUrl',
  ntfy_token: 'ntfyToken',
  smtp_host: 'smtpHost',
  smtp_port: 'smtpPort',
  smtp_user: 'smtpUser',
  smtp_password: 'smtpPassword',
  smtp_from: 'smtpFrom',
  smtp_to: 'smtpTo',
  smtp_tls: 'smtpTls',
  heartbeat_url: 'heartbeatUrl',
  notify_on: 'notifyOn',
  timeout_seconds: 'timeoutSeconds',
} as const satisfies Record<string, keyof NotificationSettings>;
export type NotificationKey = keyof typeof NOTIFICATION_KEYS;

export const DEFAULT_NOTIFICATION_TIMEOUT_SECONDS = 10;

export function defaultNotificationSettings(): NotificationSettings {
  return {
    smtpTo: [],
    smtpTls: 'starttls',
    notifyOn: 'failure',
    timeoutSeconds: DEFAULT_NOTIFICATION_TIMEOUT_SECONDS,
  };
}

function httpUrl(key: string, v: string): string {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new ConfigError(
      `[notifications] ${key}: "${redactUrl(v)}" is not a URL`,
      'give an http:// or https:// URL',
    );
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new ConfigError(`[notifications] ${key}: only http:// and https:// URLs are supported`);
  }
  return v;
}

/**
 * Validates a `[notifications]` key → value map (values as written in the INI file; numbers may also
 * be numbers, smtp_to may be a list). Unknown keys, bad URLs, ports, choices and an incomplete SMTP
 * setup throw ConfigError naming the key; empty values count as unset.
 */
export function parseNotificationSettings(
  entries: Readonly<Record<string, string | number | readonly string[] | undefined>>,
): NotificationSettings {
  const s = defaultNotificationSettings();
  const str = (key: string, v: unknown): string | undefined => {
    if (v === undefined) return undefined;
    if (typeof v !== 'string' && typeof v !== 'number')
      throw new ConfigError(`[notifications] ${key}: expected text`);
    const t = String(v).trim();
    return t === '' ? undefined : t;
  };
  const int = (key: string, v: unknown, min: number, max: number): number | undefined => {
    const t = str(key, v);
    if (t === undefined) return undefined;
    if (!/^\d+$/.test(t) || Number(t) < min || Number(t) > max) {
      throw new ConfigError(`[notifications] ${key}: "${t}" is not a whole number from ${min} to ${max}`);
    }
    return Number(t);
  };
  for (const [key, raw] of Object.entries(entries)) {
    if (!(key in NOTIFICATION_KEYS)) {
      throw new ConfigError(
        `[notifications] unknown key "${key}"`,
        `known keys: ${Object.keys(NOTIFICATION_KEYS).join(', ')}`,
      );
    }
    const k = key as NotificationKey;
    switch (k) {
      case 'webhook_url':
      case 'ntfy_url':
      case 'heartbeat_url': {
        const v = str(k, raw);
        s[NOTIFICATION_KEYS[k]] = v === undefined ? undefined : httpUrl(k, v);
        break;
      }
      case 'ntfy_token':
      case 'smtp_host':
      case 'smtp_user':
      case 'smtp_password':
      case 'smtp_from':
        s[NOTIFICATION_KEYS[k]] = str(k, raw);
        break;
      case 'smtp_port':
        s.smtpPort = int(k, raw, 1, 65535);
        break;
      case 'timeout_seconds':
        s.timeoutSeconds = int(k, raw, 1, 300) ?? DEFAULT_NOTIFICATION_TIMEOUT_SECONDS;
        break;
      case 'smtp_to': {
        const list = Array.isArray(raw) ? raw.map(String) : (str(k, raw) ?? '').split(',');
        s.smtpTo = list.map((a) => a.trim()).filter((a) => a !== '');
        break;
      }
      case 'smtp_tls': {
        const v = str(k, raw) ?? 'starttls';
        if (v !== 'starttls' && v !== 'tls' && v !== 'none') {
          throw new ConfigError(`[notifications] smtp_tls: "${v}" is not one of starttls, tls, none`);
        }
        s.smtpTls = v;
        break;
      }
      case 'notify_on': {
        const v = str(k, raw) ?? 'failure';
        if (v !== 'failure' && v !== 'always') {
          throw new ConfigError(`[notifications] notify_on: "${v}" is not one of failure, always`);
        }
        s.notifyOn = v;
        break;
      }
    }
  }
  const problem = settingsProblem(s);
  if (problem) throw new ConfigError(`[notifications] ${problem.message}`, problem.hint);
  return s;
}

/**
 * What is wrong between the keys of a `[notifications]` section (each key alone being valid): e-mail
 * needs host, from and to; an SMTP login needs user and password; a ntfy token needs its URL.
 * Undefined when nothing is. The message names the key, without the section.
 */
export function settingsProblem(s: NotificationSettings): { message: string; hint: string } | undefined {
  const smtpAny = s.smtpHost !== undefined || s.smtpFrom !== undefined || s.smtpTo.length > 0;
  if (smtpAny) {
    for (const [key, set] of [
      ['smtp_host', s.smtpHost !== undefined],
      ['smtp_from', s.smtpFrom !== undefined],
      ['smtp_to', s.smtpTo.length > 0],
    ] as const) {
      if (!set)
        return { message: `${key} is missing`, hint: 'e-mail needs smtp_host, smtp_from and smtp_to' };
    }
  }
  if ((s.smtpUser === undefined) !== (s.smtpPassword === undefined)) {
    return {
      message: 'smtp_user and smtp_password go together',
      hint: 'set both (SMTP login), or neither (a relay without login)',
    };
  }
  if (s.ntfyToken !== undefined && s.ntfyUrl === undefined) {
    return { message: 'ntfy_token is set but ntfy_url is not', hint: 'set ntfy_url, the topic URL' };
  }
  return undefined;
}

export type Channel = 'webhook' | 'ntfy' | 'email' | 'heartbeat';

/** The channels the settings configure, in a fixed order. */
export function configuredChannels(s: NotificationSettings): Channel[] {
  const out: Channel[] = [];
  if (s.webhookUrl !== undefined) out.push('webhook');
  if (s.ntfyUrl !== undefined) out.push('ntfy');
  if (s.smtpHost !== undefined && s.smtpFrom !== undefined && s.smtpTo.length > 0) out.push('email');
  if (s.heartbeatUrl !== undefined) out.push('heartbeat');
  return out;
}

/** `scheme://host[:port]/…` — for logs: a URL's path, query and credentials may be secrets. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname === '/' && u.search === '' ? '/' : '/…'}`;
  } catch {
    return '(invalid URL)';
  }
}

/** Every secret the settings hold: tokens, passwords, URL credentials, query strings, and URL paths
 * (a healthchecks.io UUID or a Slack webhook path is a secret). */
export function settingsSecrets(s: NotificationSettings): string[] {
  const out: string[] = [];
  for (const v of [s.ntfyToken, s.smtpPassword]) if (v !== undefined) out.push(v);
  for (const url of [s.webhookUrl, s.ntfyUrl, s.heartbeatUrl]) {
    if (url === undefined) continue;
    try {
      const u = new URL(url);
      for (const part of [u.password, u.username, u.search.slice(1)]) if (part !== '') out.push(part);
      for (const seg of u.pathname.split('/')) if (seg.length >= 16) out.push(seg);
    } catch {
      /* validated by parseNotificationSettings */
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------

export interface UnitSummary {
  unit: string;
  status: UnitStatus;
  error?: string | undefined;
  /** Seconds the unit's containers were down because of the run. */
  downtimeSec: number;
  /** Bytes in the unit's snapshots. */
  bytes: number;
  warnings: string[];
}

/** What a message is built from: a finished run, or a run that failed before any unit. */
export interface RunSummary {
  host: string;
  /** Absent for a pre-flight failure (no backup_id was assigned). */
  backupId?: string | undefined;
  runId?: string | undefined;
  /** ISO 8601 UTC instants. */
  startedAt: string;
  finishedAt: string;
  /** The signal that interrupted the run (SIGTERM, …). */
  interrupted?: string | undefined;
  /** Why the run stopped before backing up any unit (repository unreachable, Docker down, lock held). */
  preflightError?: string | undefined;
  units: UnitSummary[];
}

/** The summary of a recorded run (src/pipeline/history.ts, read-only). */
export function summaryFromRun(rec: RunRecord): RunSummary {
  return {
    host: rec.host,
    backupId: rec.backupId,
    runId: rec.runId,
    startedAt: rec.startedAt,
    finishedAt: rec.finishedAt,
    interrupted: rec.interrupted,
    units: rec.units.map((u) => ({
      unit: u.unit,
      status: u.status,
      error: u.error,
      downtimeSec: u.downtimeSec,
      bytes: u.bytes,
      warnings: [...u.warnings],
    })),
  };
}

/** The summary of a run that failed before any unit (pre-flight). */
export function preflightFailure(
  host: string,
  startedAt: string,
  finishedAt: string,
  error: string,
): RunSummary {
  return { host, startedAt, finishedAt, preflightError: error, units: [] };
}

export function runFailed(s: RunSummary): boolean {
  return (
    s.preflightError !== undefined ||
    s.interrupted !== undefined ||
    s.units.some((u) => u.status === 'failed')
  );
}

/** Do the message channels send for this run? (The heartbeat pings regardless.) */
export function shouldNotify(s: RunSummary, notifyOn: NotifyOn): boolean {
  return notifyOn === 'always' || runFailed(s);
}

/** The JSON body of the generic webhook (version 1; fields are only ever added). */
export interface WebhookPayload {
  version: 1;
  source: 'kopi-docka';
  /** `test` only for `kopi-docka notify --test`. */
  event: 'backup.succeeded' | 'backup.failed' | 'test';
  ok: boolean;
  title: string;
  text: string;
  host: string;
  backupId: string | null;
  runId: string | null;
  startedAt: string;
  finishedAt: string;
  durationSec: number;
  interrupted: string | null;
  preflightError: string | null;
  counts: { ok: number; failed: number; skipped: number };
  units: UnitSummary[];
  /** Every error of the run, one line each, `unit: message` (or the pre-flight error). */
  errors: string[];
}

export interface NotificationMessage {
  ok: boolean;
  /** One line: subject, ntfy Title. */
  title: string;
  /** Plain text body, a few lines. */
  text: string;
  /** ntfy priority name. */
  priority: 'high' | 'default';
  /** ntfy tags (emoji short codes). */
  tags: string[];
  payload: WebhookPayload;
}

/** Replaces each secret (longest first) by `***` in `text`. */
export function scrub(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of [...secrets].filter((x) => x.length >= 3).sort((a, b) => b.length - a.length)) {
    out = out.split(s).join('***');
  }
  return out;
}

function durationSec(a: string, b: string): number {
  const d = (Date.parse(b) - Date.parse(a)) / 1000;
  return Number.isFinite(d) && d > 0 ? Math.round(d) : 0;
}

/**
 * The one message of a run: title, text and webhook payload, with every secret scrubbed.
 * `secrets`: strings that must never appear (settingsSecrets() plus e.g. the repository password).
 */
export function buildMessage(
  s: RunSummary,
  secrets: readonly string[] = [],
  opts: { test?: boolean } = {},
): NotificationMessage {
  const clean = (t: string) => scrub(t, secrets);
  const failed = runFailed(s);
  const counts = { ok: 0, failed: 0, skipped: 0 };
  for (const u of s.units) counts[u.status === 'ok' ? 'ok' : u.status === 'failed' ? 'failed' : 'skipped']++;
  const units = s.units.map((u) => ({
    ...u,
    unit: clean(u.unit),
    error: u.error === undefined ? undefined : clean(u.error),
    warnings: u.warnings.map(clean),
  }));
  const errors: string[] = [];
  if (s.preflightError !== undefined) errors.push(clean(s.preflightError));
  if (s.interrupted !== undefined) errors.push(`run interrupted by ${s.interrupted}`);
  for (const u of units) if (u.status === 'failed') errors.push(`${u.unit}: ${u.error ?? 'failed'}`);

  const host = clean(s.host);
  let title: string;
  if (opts.test === true) title = `kopi-docka test message from ${host}`;
  else if (s.preflightError !== undefined) title = `kopi-docka backup FAILED on ${host}: did not start`;
  else if (failed) {
    const which =
      s.interrupted !== undefined
        ? `interrupted by ${s.interrupted}`
        : `${counts.failed} of ${units.length} units failed`;
    title = `kopi-docka backup FAILED on ${host}: ${which}`;
  } else title = `kopi-docka backup OK on ${host}: ${units.length} unit${units.length === 1 ? '' : 's'}`;

  const lines: string[] = [];
  if (opts.test === true)
    lines.push('This is a test message from `kopi-docka notify --test`; no backup ran.');
  const dur = durationSec(s.startedAt, s.finishedAt);
  lines.push(`host: ${host}`);
  if (s.backupId !== undefined) lines.push(`backup_id: ${s.backupId}`);
  lines.push(`started: ${s.startedAt}  finished: ${s.finishedAt}  (${dur} s)`);
  if (s.preflightError !== undefined) lines.push(`pre-flight failed: ${clean(s.preflightError)}`);
  if (s.interrupted !== undefined) lines.push(`interrupted by ${s.interrupted}`);
  if (units.length > 0) lines.push('', 'units:');
  for (const u of units) {
    const detail = u.status === 'ok' ? `down ${u.downtimeSec} s, ${formatBytes(u.bytes)}` : (u.error ?? '');
    lines.push(`  ${u.status.toUpperCase().padEnd(7)} ${u.unit}${detail ? `  ${detail}` : ''}`);
    for (const w of u.warnings) lines.push(`          warning: ${w}`);
  }
  const text = lines.join('\n');

  return {
    ok: !failed,
    title,
    text,
    priority: failed ? 'high' : 'default',
    tags: failed ? ['warning', 'floppy_disk'] : ['white_check_mark', 'floppy_disk'],
    payload: {
      version: 1,
      source: 'kopi-docka',
      event: opts.test === true ? 'test' : failed ? 'backup.failed' : 'backup.succeeded',
      ok: !failed,
      title,
      text,
      host,
      backupId: s.backupId ?? null,
      runId: s.runId ?? null,
      startedAt: s.startedAt,
      finishedAt: s.finishedAt,
      durationSec: dur,
      interrupted: s.interrupted ?? null,
      preflightError: s.preflightError === undefined ? null : clean(s.preflightError),
      counts,
      units,
      errors,
    },
  };
}

/** The summary `notify --test` sends: a successful, empty run at `now`. */
export function testSummary(host: string, now: string): RunSummary {
  return { host, startedAt: now, finishedAt: now, units: [] };
}
