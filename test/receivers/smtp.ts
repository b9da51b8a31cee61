/**
 * An SMTP server on 127.0.0.1 (random port) from `smtp-server` (by the nodemailer authors) that
 * accepts one login (AUTH PLAIN/LOGIN) and records each message: envelope, the authenticated user,
 * whether TLS was on, and the raw RFC 5322 text.
 */
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

export interface ReceivedMail {
  from: string | undefined;
  to: string[];
  user: string | undefined;
  /** Whether the session ran over TLS (STARTTLS) when the message was sent. */
  secure: boolean;
  raw: string;
}

export interface SmtpReceiver {
  port: number;
  mails: ReceivedMail[];
  /** Logins tried, with whether they were accepted. */
  logins: { user: string; ok: boolean }[];
  close(): Promise<void>;
}

/**
 * Without `tls`: plain SMTP, STARTTLS not offered, AUTH allowed in clear (loopback only). With `tls`
 * (PEM key and certificate): STARTTLS offered, and AUTH only after it.
 */
export async function startSmtpReceiver(
  login: { user: string; password: string },
  tls?: { key: string; cert: string },
): Promise<SmtpReceiver> {
  const mails: ReceivedMail[] = [];
  const logins: { user: string; ok: boolean }[] = [];
  const server = new SMTPServer({
    secure: false,
    ...(tls === undefined ? { disabledCommands: ['STARTTLS'], allowInsecureAuth: true } : { ...tls }),
    authMethods: ['PLAIN', 'LOGIN'],
    logger: false,
    onAuth(auth, _session, callback) {
      const ok = auth.username === login.user && auth.password === login.password;
      logins.push({ user: auth.username ?? '', ok });
      if (ok) callback(null, { user: auth.username });
      else callback(new Error('Invalid username or password'));
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const from = session.envelope.mailFrom;
        mails.push({
          from: from === false ? undefined : from.address,
          to: session.envelope.rcptTo.map((r) => r.address),
          user: typeof session.user === 'string' ? session.user : undefined,
          secure: session.secure,
          raw: Buffer.concat(chunks).toString('utf8'),
        });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.server.address() as AddressInfo;
  return { port, mails, logins, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}
