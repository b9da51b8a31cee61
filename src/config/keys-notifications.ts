/**
 * The `[notifications]` and `[daemon]` keys of the key table (src/config/schema.ts appends them to
 * KEYS). One declaration per key, as for every other section: parsing (precise errors with file, line
 * and key), `config show` (secrets masked) and the generated docs come from here.
 *
 * `[notifications]` fills Config.notifications, the NotificationSettings of src/core/notification.ts
 * (its NOTIFICATION_KEYS is the INI name → field map; a unit test checks both agree). Rules that
 * involve several keys (e-mail needs smtp_host + smtp_from + smtp_to, smtp_user goes with
 * smtp_password, ntfy_token needs ntfy_url) are checked after all keys are read:
 * checkNotificationSettings(), called by the loader.
 *
 * Secrets: ntfy_token and smtp_password print as PASSWORD_MASK; the URLs print with their
 * credentials, query and long path segments (a healthchecks.io UUID, a Slack webhook path) replaced
 * by `***`, and a bad URL is never echoed in an error.
 */
import { ConfigError } from '../errors.js';
import {
  DEFAULT_NOTIFICATION_TIMEOUT_SECONDS,
  scrub,
  settingsProblem,
  settingsSecrets,
  type NotificationSettings,
  type NotifyOn,
  type SmtpTls,
} from '../core/notification.js';
import { PASSWORD_MASK, setting, type KeyDef, type SettingValue } from './key.js';
import type { Config } from './types.js';
import { ValueError, parseChoice, parseInteger } from './values.js';

/** `[daemon]`: the long-running `kopi-docka daemon`. */
export interface DaemonSettings {
  /** Minutes between the starts of two scheduled backups; default 1440 (a day). */
  intervalMinutes: number;
}

export const DEFAULT_DAEMON_INTERVAL_MINUTES = 1440;
/** 31 days: a longer interval is not a schedule a backup should have. */
export const MAX_DAEMON_INTERVAL_MINUTES = 44_640;

const QUOTED = /^(["']).*\1$/s;

/** Text; empty = unset. Quotes are refused (values are literal, as everywhere in the file). */
function parseText(raw: string): string | undefined {
  const v = raw.trim();
  if (v === '') return undefined;
  if (QUOTED.test(v) && v.length >= 2) {
    throw new ValueError('a value without quotes', 'values are taken literally: write it without the quotes');
  }
  return v;
}

/** An http:// or https:// URL; empty = unset. The value is never echoed (paths may be secrets). */
export function parseHttpUrl(raw: string): string | undefined {
  const v = parseText(raw);
  if (v === undefined) return undefined;
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new ValueError('an http:// or https:// URL', 'write the full URL, e.g. https://ntfy.sh/my-topic');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new ValueError(`an http:// or https:// URL (not ${u.protocol}//)`);
  }
  if (/\s/.test(v)) throw new ValueError('a URL without spaces (put a comment on its own line)');
  return v;
}

/** Comma-separated e-mail addresses (at least an `@` each); empty = none. */
export function parseAddressList(raw: string): string[] {
  const list = raw
    .split(/[,\n]/)
    .map((a) => a.trim())
    .filter((a) => a !== '');
  for (const a of list) {
    if (!/^[^\s@]+@[^\s@]+$/.test(a.replace(/^.*<(.*)>$/, '$1')))
      throw new ValueError('comma-separated e-mail addresses (user@example.com)');
  }
  return list;
}

/** The URL as `config show` prints it: secrets of the settings replaced by `***`. */
function showUrl(cfg: Config, url: string | undefined): SettingValue {
  return url === undefined ? null : scrub(url, settingsSecrets(cfg.notifications));
}

const SMTP_TLS: readonly SmtpTls[] = ['starttls', 'tls', 'none'];
const NOTIFY_ON: readonly NotifyOn[] = ['failure', 'always'];

/** A URL key: secret in errors, quotes handled by the parser, shown scrubbed. */
function urlKey(
  name: 'webhook_url' | 'ntfy_url' | 'heartbeat_url',
  field: 'webhookUrl' | 'ntfyUrl' | 'heartbeatUrl',
  doc: string,
): KeyDef {
  return {
    ...setting({
      section: 'notifications',
      name,
      field,
      type: 'http(s) URL',
      defaultDoc: 'none',
      quotes: 'parse',
      doc,
      parse: parseHttpUrl,
    }),
    secret: true,
    show: (cfg: Config) => showUrl(cfg, cfg.notifications[field]),
  };
}

/** A secret text key: never echoed, printed as PASSWORD_MASK when set. */
function secretKey(name: 'ntfy_token' | 'smtp_password', field: 'ntfyToken' | 'smtpPassword', doc: string) {
  return {
    ...setting({
      section: 'notifications',
      name,
      field,
      type: 'string',
      defaultDoc: 'none',
      quotes: 'parse',
      doc,
      parse: parseText,
    }),
    secret: true,
    show: (cfg: Config) => (cfg.notifications[field] === undefined ? null : PASSWORD_MASK),
  } satisfies KeyDef;
}

export const NOTIFICATION_KEY_DEFS: readonly KeyDef[] = [
  urlKey(
    'webhook_url',
    'webhookUrl',
    'Generic webhook: a `POST` of the run summary as JSON (see [docs/scheduling.md](scheduling.md#alerts)).',
  ),
  urlKey(
    'ntfy_url',
    'ntfyUrl',
    'ntfy topic URL, e.g. `https://ntfy.sh/my-backups`: a `POST` of the text with `Title`, `Priority`, `Tags`.',
  ),
  secretKey(
    'ntfy_token',
    'ntfyToken',
    'ntfy access token, sent as `Authorization: Bearer`. Needs `ntfy_url`.',
  ),
  setting({
    section: 'notifications',
    name: 'smtp_host',
    field: 'smtpHost',
    type: 'host name',
    defaultDoc: 'none',
    quotes: 'parse',
    doc: 'SMTP server for e-mail. E-mail is sent when `smtp_host`, `smtp_from` and `smtp_to` are all set (one without the others is an error).',
    parse: parseText,
  }),
  setting({
    section: 'notifications',
    name: 'smtp_port',
    field: 'smtpPort',
    type: 'integer 1–65535',
    defaultDoc: '587 (`starttls`), 465 (`tls`), 25 (`none`)',
    doc: 'SMTP port.',
    parse: (v) => (v.trim() === '' ? undefined : parseInteger(v, 1, 65535)),
  }),
  setting({
    section: 'notifications',
    name: 'smtp_user',
    field: 'smtpUser',
    type: 'string',
    defaultDoc: 'none',
    quotes: 'parse',
    doc: 'SMTP login; goes with `smtp_password`.',
    parse: parseText,
  }),
  secretKey('smtp_password', 'smtpPassword', 'SMTP password; goes with `smtp_user`.'),
  setting({
    section: 'notifications',
    name: 'smtp_from',
    field: 'smtpFrom',
    type: 'address',
    defaultDoc: 'none',
    quotes: 'parse',
    doc: 'Sender, e.g. `kopi-docka <backups@example.com>`.',
    parse: parseText,
  }),
  setting({
    section: 'notifications',
    name: 'smtp_to',
    field: 'smtpTo',
    type: 'list of addresses',
    default: [],
    defaultText: 'empty',
    defaultDoc: 'empty',
    doc: 'Recipients, comma-separated.',
    parse: parseAddressList,
  }),
  setting({
    section: 'notifications',
    name: 'smtp_tls',
    field: 'smtpTls',
    type: '`starttls` \\| `tls` \\| `none`',
    default: 'starttls',
    doc: '`starttls`: STARTTLS required (credentials never in clear); `tls`: implicit TLS (port 465); `none`: no TLS (a local relay only).',
    parse: (v) => parseChoice(v, SMTP_TLS),
  }),
  urlKey(
    'heartbeat_url',
    'heartbeatUrl',
    'Dead-man switch in the style of healthchecks.io: `<url>/start` when a run starts, `<url>` on success, `<url>/fail` with the summary on failure — on every run, whatever `notify_on` says.',
  ),
  setting({
    section: 'notifications',
    name: 'notify_on',
    field: 'notifyOn',
    type: '`failure` \\| `always`',
    default: 'failure',
    doc: 'When webhook, ntfy and e-mail send the one message of a run: only when it failed (a unit failed, the run was interrupted, or it did not start), or after every run.',
    parse: (v) => parseChoice(v, NOTIFY_ON),
  }),
  setting({
    section: 'notifications',
    name: 'timeout_seconds',
    field: 'timeoutSeconds',
    type: 'integer 1–300 (s)',
    default: DEFAULT_NOTIFICATION_TIMEOUT_SECONDS,
    doc: 'Per channel and message: a channel that has not finished by then is given up (and logged); the backup never waits longer.',
    parse: (v) => parseInteger(v, 1, 300),
  }),
];

export const DAEMON_KEY_DEFS: readonly KeyDef[] = [
  setting({
    section: 'daemon',
    name: 'interval_minutes',
    field: 'intervalMinutes',
    type: `integer 1–${MAX_DAEMON_INTERVAL_MINUTES} (min)`,
    default: DEFAULT_DAEMON_INTERVAL_MINUTES,
    doc: '`kopi-docka daemon`: minutes between the starts of two backups (`--interval-minutes` overrides it). The first backup runs at start-up when the last recorded run is older than this.',
    parse: (v) => parseInteger(v, 1, MAX_DAEMON_INTERVAL_MINUTES),
  }),
];

export const NOTIFICATION_SECTION_DOCS = {
  notifications:
    'Alerts: one message per run through every configured channel, and a heartbeat (dead-man switch). See [docs/scheduling.md](scheduling.md#alerts). No channel is configured by default.',
  daemon: 'The long-running `kopi-docka daemon` (see [docs/scheduling.md](scheduling.md#the-daemon)).',
} as const;

/**
 * The rules between `[notifications]` keys, checked once every key is read.
 * @throws ConfigError naming the file, the missing key and what goes with it.
 */
export function checkNotificationSettings(
  s: NotificationSettings,
  file: string | undefined,
): NotificationSettings {
  const where = `${file ?? 'the configuration'}: [notifications]`;
  const problem = settingsProblem(s);
  if (problem) throw new ConfigError(`${where} ${problem.message}`, problem.hint);
  return s;
}
