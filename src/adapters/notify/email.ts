/**
 * E-mail over SMTP with nodemailer (https://nodemailer.com/smtp/): one plain-text message, subject =
 * the message title. smtp_tls: `starttls` → requireTLS (refuse to send credentials in clear),
 * `tls` → implicit TLS (secure: true), `none` → no TLS at all (a local relay on 127.0.0.1). The
 * password goes only to the SMTP AUTH exchange. Never throws: failures and the deadline (timeoutMs for
 * the whole exchange, also nodemailer's connection/greeting/socket timeouts) return { ok: false, error }.
 */
import type { NotificationMessage, NotificationSettings } from '../../core/notification.js';

export interface EmailResult {
  ok: boolean;
  error?: string | undefined;
}

const DEFAULT_PORTS = { starttls: 587, tls: 465, none: 25 } as const;

export async function sendEmail(
  s: NotificationSettings,
  msg: NotificationMessage,
  timeoutMs: number,
): Promise<EmailResult> {
  if (s.smtpHost === undefined || s.smtpFrom === undefined || s.smtpTo.length === 0) {
    return { ok: false, error: 'e-mail needs smtp_host, smtp_from and smtp_to' };
  }
  const port = s.smtpPort ?? DEFAULT_PORTS[s.smtpTls];
  // Loaded on first use: every other command starts without it.
  const { default: nodemailer } = await import('nodemailer');
  const transport = nodemailer.createTransport({
    host: s.smtpHost,
    port,
    secure: s.smtpTls === 'tls',
    requireTLS: s.smtpTls === 'starttls',
    ignoreTLS: s.smtpTls === 'none',
    ...(s.smtpUser !== undefined && s.smtpPassword !== undefined
      ? { auth: { user: s.smtpUser, pass: s.smtpPassword } }
      : {}),
    connectionTimeout: timeoutMs,
    greetingTimeout: timeoutMs,
    socketTimeout: timeoutMs,
    disableFileAccess: true,
    disableUrlAccess: true,
  });
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<EmailResult>((resolve) => {
    timer = setTimeout(
      () => resolve({ ok: false, error: `${s.smtpHost}:${port} did not finish within ${timeoutMs} ms` }),
      timeoutMs,
    );
  });
  const send = transport
    .sendMail({
      from: s.smtpFrom,
      to: s.smtpTo,
      subject: msg.title,
      text: msg.text,
      headers: { 'X-Kopi-Docka-Result': msg.ok ? 'ok' : 'failed' },
    })
    .then(
      (): EmailResult => ({ ok: true }),
      (err: unknown): EmailResult => ({
        ok: false,
        error: `${s.smtpHost}:${port}: ${err instanceof Error ? err.message : String(err)}`,
      }),
    );
  try {
    return await Promise.race([send, deadline]);
  } finally {
    if (timer) clearTimeout(timer);
    transport.close();
  }
}
