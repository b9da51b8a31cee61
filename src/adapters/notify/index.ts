/**
 * Sends a run's notifications through every configured channel, in parallel, each bounded by
 * timeout_seconds. Never throws and never waits past the timeout (plus a little bookkeeping): every
 * channel's outcome comes back as a ChannelResult for the caller to log. Errors are scrubbed of the
 * settings' secrets and of `extraSecrets` (e.g. the repository password).
 *
 * Call order for a backup run (the daemon and `backup` wire this later):
 *   notifyRunStart(settings)                        → heartbeat `<url>/start`
 *   …run…
 *   notifyRunEnd(settings, summary, [password])     → heartbeat success or `/fail` (always), and the
 *                                                     message channels when notify_on says so
 * A pre-flight failure: notifyRunEnd(settings, preflightFailure(…)).
 */
import {
  buildMessage,
  configuredChannels,
  runFailed,
  scrub,
  settingsSecrets,
  shouldNotify,
  testSummary,
  type Channel,
  type NotificationMessage,
  type NotificationSettings,
  type RunSummary,
} from '../../core/notification.js';
import { sendEmail } from './email.js';
import { sendHeartbeat, type HeartbeatKind } from './heartbeat.js';
import { sendNtfy } from './ntfy.js';
import { sendWebhook } from './webhook.js';

export interface ChannelResult {
  channel: Channel;
  ok: boolean;
  /** What failed, secrets scrubbed; undefined when ok. */
  error?: string | undefined;
  /** Wall time of this channel, in ms. */
  ms: number;
}

async function timed(
  channel: Channel,
  secrets: readonly string[],
  fn: () => Promise<{ ok: boolean; error?: string | undefined }>,
): Promise<ChannelResult> {
  const t0 = Date.now();
  try {
    const r = await fn();
    return {
      channel,
      ok: r.ok,
      ...(r.ok ? {} : { error: scrub(r.error ?? 'failed', secrets) }),
      ms: Date.now() - t0,
    };
  } catch (err) {
    return {
      channel,
      ok: false,
      error: scrub(err instanceof Error ? err.message : String(err), secrets),
      ms: Date.now() - t0,
    };
  }
}

function messageChannels(
  s: NotificationSettings,
  msg: NotificationMessage,
  secrets: readonly string[],
): Promise<ChannelResult>[] {
  const ms = s.timeoutSeconds * 1000;
  const out: Promise<ChannelResult>[] = [];
  for (const ch of configuredChannels(s)) {
    if (ch === 'webhook' && s.webhookUrl !== undefined) {
      const url = s.webhookUrl;
      out.push(timed(ch, secrets, () => sendWebhook(url, msg, ms)));
    } else if (ch === 'ntfy' && s.ntfyUrl !== undefined) {
      const url = s.ntfyUrl;
      out.push(timed(ch, secrets, () => sendNtfy(url, s.ntfyToken, msg, ms)));
    } else if (ch === 'email') {
      out.push(timed(ch, secrets, () => sendEmail(s, msg, ms)));
    }
  }
  return out;
}

function heartbeat(
  s: NotificationSettings,
  kind: HeartbeatKind,
  msg: NotificationMessage | undefined,
  secrets: readonly string[],
): Promise<ChannelResult>[] {
  if (s.heartbeatUrl === undefined) return [];
  const url = s.heartbeatUrl;
  return [timed('heartbeat', secrets, () => sendHeartbeat(url, kind, msg, s.timeoutSeconds * 1000))];
}

/** At run start: the heartbeat's `/start` ping (nothing else). */
export function notifyRunStart(
  s: NotificationSettings,
  extraSecrets: readonly string[] = [],
): Promise<ChannelResult[]> {
  return Promise.all(heartbeat(s, 'start', undefined, [...settingsSecrets(s), ...extraSecrets]));
}

/**
 * At run end: the heartbeat's success or `/fail` ping always; webhook, ntfy and e-mail on failure, or
 * always with notify_on = always. One message per run.
 */
export function notifyRunEnd(
  s: NotificationSettings,
  summary: RunSummary,
  extraSecrets: readonly string[] = [],
): Promise<ChannelResult[]> {
  const secrets = [...settingsSecrets(s), ...extraSecrets];
  const msg = buildMessage(summary, secrets);
  const sends = heartbeat(s, runFailed(summary) ? 'fail' : 'success', msg, secrets);
  if (shouldNotify(summary, s.notifyOn)) sends.unshift(...messageChannels(s, msg, secrets));
  return Promise.all(sends);
}

/**
 * `kopi-docka notify --test`: a test message through every configured channel; the heartbeat gets a
 * success ping (which the monitor counts as a run).
 */
export function sendTestNotifications(
  s: NotificationSettings,
  host: string,
  now: string,
  extraSecrets: readonly string[] = [],
): Promise<ChannelResult[]> {
  const secrets = [...settingsSecrets(s), ...extraSecrets];
  const msg = buildMessage(testSummary(host, now), secrets, { test: true });
  return Promise.all([...messageChannels(s, msg, secrets), ...heartbeat(s, 'success', msg, secrets)]);
}

/**
 * Log lines for a set of channel results (the caller picks the logger): `info` for each channel that
 * worked, `warn` for each that failed, with its scrubbed error. Never includes a URL path or secret.
 */
export function resultLines(results: readonly ChannelResult[]): { level: 'info' | 'warn'; text: string }[] {
  return results.map((r) =>
    r.ok
      ? { level: 'info', text: `notification via ${r.channel} sent (${r.ms} ms)` }
      : {
          level: 'warn',
          text: `notification via ${r.channel} failed after ${r.ms} ms: ${r.error ?? 'failed'}`,
        },
  );
}
