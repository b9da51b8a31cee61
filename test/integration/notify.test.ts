/**
 * Alerts against real receivers on 127.0.0.1, started and stopped by this test: an HTTP server recording
 * the webhook, ntfy and heartbeat requests (test/receivers/http-recorder.ts) and an SMTP server with a
 * login (test/receivers/smtp.ts). Asserts what arrived — subject, body, unit names and statuses — and
 * that no secret did. Also: a hanging or failing receiver costs at most timeout_seconds and is reported,
 * never thrown; `kopi-docka notify --test` through the built CLI. Needs no Docker.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { notifyRunEnd, notifyRunStart } from '../../src/adapters/notify/index.js';
import {
  parseNotificationSettings,
  preflightFailure,
  summaryFromRun,
  type NotificationSettings,
  type WebhookPayload,
} from '../../src/core/notification.js';
import type { RunRecord } from '../../src/pipeline/history.js';
import { startHttpRecorder, type HttpRecorder, type RecordedRequest } from '../receivers/http-recorder.js';
import { startSmtpReceiver, type ReceivedMail, type SmtpReceiver } from '../receivers/smtp.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = path.join(ROOT, 'dist', 'main.js');

const SMTP_USER = 'kd-mailer';
const SMTP_PASSWORD = 'smtp-pass-Zq81xW';
const NTFY_TOKEN = 'tk_ntfytoken0123456789';
const REPO_PASSWORD = 'repo-pass-77HqLm';
const PING_UUID = '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0';
const HOOK_SECRET = 'abcdef0123456789abcdef';
const SECRETS = [SMTP_PASSWORD, NTFY_TOKEN, REPO_PASSWORD];

const FAILED_RUN: RunRecord = {
  runId: 'run-1',
  backupId: '2026-11-30T02-00-00Z',
  host: 'dockerhost1',
  startedAt: '2026-11-30T02:00:00.000Z',
  finishedAt: '2026-11-30T02:03:20.000Z',
  dryRun: false,
  units: [
    {
      unit: 'nextcloud',
      status: 'ok',
      downtimeSec: 12,
      bytes: 5 * 1024 * 1024,
      snapshots: [],
      warnings: ['xattrs of 2 files kept in the sidecar'],
    },
    {
      unit: 'vaultwarden',
      status: 'failed',
      // An error text that (wrongly) carries the password must reach no receiver.
      error: `kopia snapshot create exited with code 1: invalid password ${REPO_PASSWORD}`,
      downtimeSec: 3,
      bytes: 0,
      snapshots: [],
      warnings: [],
    },
  ],
};

const OK_RUN: RunRecord = {
  ...FAILED_RUN,
  units: [FAILED_RUN.units[0] ?? assert.fail('fixture')],
};

/** Header-unfolded, quoted-printable-decoded view of a raw RFC 5322 message. */
function parseMail(m: ReceivedMail): { subject: string; body: string; headers: string } {
  const split = m.raw.indexOf('\r\n\r\n');
  const headers = m.raw.slice(0, split).replace(/\r\n[ \t]+/g, ' ');
  let body = m.raw.slice(split + 4);
  if (/^content-transfer-encoding:\s*quoted-printable/im.test(headers)) {
    body = Buffer.from(
      body
        .replace(/=\r\n/g, '')
        .replace(/=([0-9A-F]{2})/g, (_m: string, h: string) => String.fromCharCode(parseInt(h, 16))),
      'latin1',
    ).toString('utf8');
  }
  const subject = /^subject: (.*)$/im.exec(headers)?.[1] ?? '';
  return { subject, body, headers };
}

function assertNoSecrets(what: string, text: string): void {
  for (const s of SECRETS) assert.ok(!text.includes(s), `${what} leaks a secret: ${text}`);
}

function byPath(http: HttpRecorder, prefix: string): RecordedRequest[] {
  return http.requests.filter((r) => r.path.startsWith(prefix));
}

describe('notifications against real receivers', () => {
  let http: HttpRecorder;
  let smtp: SmtpReceiver;
  let settings: NotificationSettings;
  let raw: Record<string, string | number>;

  before(async () => {
    http = await startHttpRecorder({
      respond: (r) => (r.path.startsWith('/hang') ? 'hang' : r.path.startsWith('/broken') ? 500 : 200),
    });
    smtp = await startSmtpReceiver({ user: SMTP_USER, password: SMTP_PASSWORD });
    raw = {
      webhook_url: `${http.url}/hook/${HOOK_SECRET}`,
      ntfy_url: `${http.url}/ntfy/backups`,
      ntfy_token: NTFY_TOKEN,
      smtp_host: '127.0.0.1',
      smtp_port: String(smtp.port),
      smtp_user: SMTP_USER,
      smtp_password: SMTP_PASSWORD,
      smtp_from: 'kopi-docka@example.test',
      smtp_to: 'ops@example.test, oncall@example.test',
      smtp_tls: 'none',
      heartbeat_url: `${http.url}/ping/${PING_UUID}`,
      timeout_seconds: '5',
    };
    settings = parseNotificationSettings(raw);
  });

  after(async () => {
    await http.close();
    await smtp.close();
  });

  const reset = () => {
    http.requests.length = 0;
    smtp.mails.length = 0;
    smtp.logins.length = 0;
  };

  it('run start pings the heartbeat /start only', async () => {
    reset();
    const results = await notifyRunStart(settings);
    assert.deepEqual(
      results.map((r) => [r.channel, r.ok]),
      [['heartbeat', true]],
    );
    assert.deepEqual(
      http.requests.map((r) => `${r.method} ${r.path}`),
      [`POST /ping/${PING_UUID}/start`],
    );
    assert.equal(smtp.mails.length, 0);
  });

  it('a failed run: one message per channel with units, statuses and errors, and no secret', async () => {
    reset();
    const results = await notifyRunEnd(settings, summaryFromRun(FAILED_RUN), [REPO_PASSWORD]);
    assert.deepEqual(
      results.map((r) => [r.channel, r.ok, r.error]),
      [
        ['webhook', true, undefined],
        ['ntfy', true, undefined],
        ['email', true, undefined],
        ['heartbeat', true, undefined],
      ],
    );

    const [hook, ...moreHooks] = byPath(http, '/hook/');
    assert.ok(hook, 'webhook arrived');
    assert.equal(moreHooks.length, 0, 'one webhook per run');
    assert.equal(hook.method, 'POST');
    assert.match(hook.headers['content-type'] ?? '', /application\/json/);
    const payload = JSON.parse(hook.body) as WebhookPayload;
    assert.equal(payload.event, 'backup.failed');
    assert.equal(payload.ok, false);
    assert.equal(payload.host, 'dockerhost1');
    assert.equal(payload.backupId, '2026-11-30T02-00-00Z');
    assert.deepEqual(
      payload.units.map((u) => [u.unit, u.status]),
      [
        ['nextcloud', 'ok'],
        ['vaultwarden', 'failed'],
      ],
    );
    assert.deepEqual(payload.counts, { ok: 1, failed: 1, skipped: 0 });
    assert.equal(payload.errors.length, 1);
    assert.match(
      payload.errors[0] ?? '',
      /^vaultwarden: kopia snapshot create exited with code 1: invalid password \*\*\*$/,
    );
    assertNoSecrets('webhook', hook.body);

    const [ntfy, ...moreNtfy] = byPath(http, '/ntfy/backups');
    assert.ok(ntfy, 'ntfy arrived');
    assert.equal(moreNtfy.length, 0);
    assert.match(
      ntfy.headers.title as string,
      /^kopi-docka backup FAILED on dockerhost1: 1 of 2 units failed$/,
    );
    assert.equal(ntfy.headers.priority, 'high');
    assert.match(ntfy.headers.tags as string, /warning/);
    assert.equal(ntfy.headers.authorization, `Bearer ${NTFY_TOKEN}`);
    assert.match(ntfy.body, /OK\s+nextcloud/);
    assert.match(ntfy.body, /FAILED\s+vaultwarden/);
    assertNoSecrets('ntfy body', ntfy.body);

    const [ping, ...morePings] = byPath(http, '/ping/');
    assert.ok(ping);
    assert.equal(morePings.length, 0);
    assert.equal(ping.path, `/ping/${PING_UUID}/fail`);
    assert.match(ping.body, /FAILED\s+vaultwarden/);
    assertNoSecrets('heartbeat body', ping.body);

    assert.equal(smtp.mails.length, 1, 'one e-mail per run');
    const mail = smtp.mails[0] ?? assert.fail('no mail');
    assert.deepEqual(mail.to, ['ops@example.test', 'oncall@example.test']);
    assert.equal(mail.from, 'kopi-docka@example.test');
    assert.equal(mail.user, SMTP_USER, 'logged in');
    const { subject, body } = parseMail(mail);
    assert.equal(subject, 'kopi-docka backup FAILED on dockerhost1: 1 of 2 units failed');
    assert.match(body, /OK\s+nextcloud\s+down 12 s, 5\.0 MiB/);
    assert.match(body, /FAILED\s+vaultwarden\s+kopia snapshot create exited with code 1/);
    assert.match(body, /warning: xattrs of 2 files kept in the sidecar/);
    assertNoSecrets('e-mail', mail.raw);
  });

  it('a successful run with notify_on = failure: only the heartbeat success ping', async () => {
    reset();
    const results = await notifyRunEnd(settings, summaryFromRun(OK_RUN));
    assert.deepEqual(
      results.map((r) => [r.channel, r.ok]),
      [['heartbeat', true]],
    );
    assert.deepEqual(
      http.requests.map((r) => `${r.method} ${r.path}`),
      [`POST /ping/${PING_UUID}`],
    );
    assert.match(http.requests[0]?.body ?? '', /backup OK on dockerhost1/);
    assert.equal(smtp.mails.length, 0);
  });

  it('a successful run with notify_on = always: every channel says OK', async () => {
    reset();
    const always = parseNotificationSettings({ ...raw, notify_on: 'always' });
    const results = await notifyRunEnd(always, summaryFromRun(OK_RUN));
    assert.ok(
      results.every((r) => r.ok),
      JSON.stringify(results),
    );
    const payload = JSON.parse(byPath(http, '/hook/')[0]?.body ?? '{}') as WebhookPayload;
    assert.equal(payload.event, 'backup.succeeded');
    assert.equal(byPath(http, '/ntfy/')[0]?.headers.priority, 'default');
    assert.equal(
      parseMail(smtp.mails[0] ?? assert.fail('no mail')).subject,
      'kopi-docka backup OK on dockerhost1: 1 unit',
    );
  });

  it('a pre-flight failure is a failure and is notified', async () => {
    reset();
    const s = preflightFailure(
      'dockerhost1',
      '2026-11-30T02:00:00.000Z',
      '2026-11-30T02:00:05.000Z',
      'the repository /srv/backup/repo is unreachable',
    );
    const results = await notifyRunEnd(settings, s);
    assert.equal(results.length, 4);
    assert.ok(
      results.every((r) => r.ok),
      JSON.stringify(results),
    );
    const payload = JSON.parse(byPath(http, '/hook/')[0]?.body ?? '{}') as WebhookPayload;
    assert.equal(payload.event, 'backup.failed');
    assert.equal(payload.preflightError, 'the repository /srv/backup/repo is unreachable');
    assert.equal(byPath(http, '/ping/')[0]?.path, `/ping/${PING_UUID}/fail`);
    assert.match(
      parseMail(smtp.mails[0] ?? assert.fail('no mail')).body,
      /pre-flight failed: the repository/,
    );
  });

  it('a hanging or failing receiver costs at most timeout_seconds, is reported and never thrown', async () => {
    reset();
    // A TCP server that accepts and never greets: a hung SMTP relay.
    const silent = net.createServer(() => {
      /* never answers */
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const silentPort = (silent.address() as net.AddressInfo).port;
    try {
      const hung = parseNotificationSettings({
        webhook_url: `${http.url}/hang/${HOOK_SECRET}`,
        ntfy_url: `${http.url}/broken/topic`,
        heartbeat_url: `${http.url}/hang/${PING_UUID}`,
        smtp_host: '127.0.0.1',
        smtp_port: String(silentPort),
        smtp_from: 'kd@example.test',
        smtp_to: 'ops@example.test',
        smtp_tls: 'none',
        timeout_seconds: '1',
      });
      const t0 = Date.now();
      const results = await notifyRunEnd(hung, summaryFromRun(FAILED_RUN));
      const took = Date.now() - t0;
      assert.ok(took < 3000, `took ${took} ms`);
      const by = new Map(results.map((r) => [r.channel, r]));
      assert.match(by.get('webhook')?.error ?? '', /did not answer within 1000 ms/);
      assert.match(by.get('ntfy')?.error ?? '', /HTTP 500/);
      assert.match(by.get('heartbeat')?.error ?? '', /did not answer within 1000 ms/);
      assert.equal(by.get('email')?.ok, false);
      assert.ok(by.get('email')?.error, 'e-mail failure reported');
      for (const r of results) {
        assert.equal(r.ok, false);
        assert.ok(!(r.error ?? '').includes(HOOK_SECRET) && !(r.error ?? '').includes(PING_UUID), r.error);
      }
    } finally {
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it('a wrong SMTP password is reported, not thrown, and not echoed', async () => {
    reset();
    const wrong = parseNotificationSettings({
      ...raw,
      notify_on: 'always',
      smtp_password: 'wrong-pass-ab12',
    });
    const results = await notifyRunEnd(wrong, summaryFromRun(FAILED_RUN));
    const email = results.find((r) => r.channel === 'email');
    assert.equal(email?.ok, false);
    assert.ok(!(email?.error ?? '').includes('wrong-pass-ab12'), email?.error);
    assert.deepEqual(smtp.logins, [{ user: SMTP_USER, ok: false }]);
    assert.equal(smtp.mails.length, 0);
  });

  it('smtp_tls = starttls never sends the password to a server that does not offer STARTTLS', async () => {
    reset();
    const st = parseNotificationSettings({ ...raw, smtp_tls: 'starttls', notify_on: 'always' });
    const results = await notifyRunEnd(st, summaryFromRun(FAILED_RUN));
    const email = results.find((r) => r.channel === 'email');
    assert.equal(email?.ok, false);
    assert.ok(email?.error, 'the refusal is reported');
    assert.deepEqual(smtp.logins, [], 'no AUTH was tried in clear');
    assert.equal(smtp.mails.length, 0);
  });

  describe('kopi-docka notify --test (built CLI)', () => {
    let dir: string;
    before(async () => {
      assert.ok(existsSync(CLI), `${CLI} does not exist: run \`npm run build\` first`);
      dir = await mkdtemp(path.join(os.tmpdir(), 'kd-notify-'));
    });
    after(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    /** Runs the CLI without blocking the event loop: the receivers live in this process. */
    const runCli = (args: string[], extraEnv: Record<string, string> = {}) =>
      new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
        execFile(
          process.execPath,
          [CLI, ...args],
          {
            encoding: 'utf8',
            timeout: 60_000,
            env: { ...process.env, NO_COLOR: '1', KOPI_DOCKA_STATE_DIR: dir, HOME: dir, ...extraEnv },
          },
          (err, stdout, stderr) => {
            const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
            resolve({ status: code, stdout, stderr });
          },
        );
      });

    it('sends a test message through every channel and reports OK per channel', async () => {
      reset();
      const file = path.join(dir, 'notifications.json');
      await writeFile(file, JSON.stringify(raw), { mode: 0o600 });
      const r = await runCli(['notify', '--test', '--settings', file]);
      assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
      for (const ch of ['webhook', 'ntfy', 'email', 'heartbeat'])
        assert.match(r.stdout, new RegExp(`OK\\s+${ch}`));
      assertNoSecrets('CLI output', r.stdout + r.stderr);
      const payload = JSON.parse(byPath(http, '/hook/')[0]?.body ?? '{}') as WebhookPayload;
      assert.equal(payload.event, 'test');
      assert.match(
        parseMail(smtp.mails[0] ?? assert.fail('no mail')).subject,
        /^kopi-docka test message from /,
      );
      assert.equal(byPath(http, '/ping/')[0]?.path, `/ping/${PING_UUID}`);
    });

    it('e-mail over STARTTLS (the default smtp_tls) to a server with a certificate the host trusts', async () => {
      const key = path.join(dir, 'key.pem');
      const cert = path.join(dir, 'cert.pem');
      const gen = await new Promise<Error | null>((resolve) =>
        execFile(
          'openssl',
          [
            'req',
            '-x509',
            '-newkey',
            'rsa:2048',
            '-nodes',
            '-keyout',
            key,
            '-out',
            cert,
            '-days',
            '1',
          ].concat(['-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']),
          (err) => resolve(err),
        ),
      );
      assert.equal(gen, null, 'openssl made a test certificate');
      const tlsSmtp = await startSmtpReceiver(
        { user: SMTP_USER, password: SMTP_PASSWORD },
        { key: await readFile(key, 'utf8'), cert: await readFile(cert, 'utf8') },
      );
      try {
        const file = path.join(dir, 'starttls.json');
        const { smtp_tls: _plain, ...rest } = raw;
        await writeFile(
          file,
          JSON.stringify({
            ...Object.fromEntries(Object.entries(rest).filter(([k]) => k.startsWith('smtp_'))),
            smtp_port: tlsSmtp.port,
          }),
          { mode: 0o600 },
        );
        // The CLI trusts the test certificate the way a host would trust its own CA.
        const r = await runCli(['notify', '--test', '--settings', file], { NODE_EXTRA_CA_CERTS: cert });
        assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
        assert.match(r.stdout, /OK\s+email/);
        assert.equal(tlsSmtp.mails.length, 1);
        assert.equal(tlsSmtp.mails[0]?.secure, true, 'the message went over TLS');
        assert.equal(tlsSmtp.mails[0]?.user, SMTP_USER);
        assert.deepEqual(tlsSmtp.logins, [{ user: SMTP_USER, ok: true }]);
      } finally {
        await tlsSmtp.close();
      }
    });

    it('exits 1 and names the failing channel; 3 for invalid settings', async () => {
      const file = path.join(dir, 'broken.json');
      await writeFile(file, JSON.stringify({ ntfy_url: `${http.url}/broken/x`, timeout_seconds: 2 }), {
        mode: 0o600,
      });
      const r = await runCli(['notify', '--test', '--settings', file]);
      assert.equal(r.status, 1, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stdout, /FAIL\s+ntfy\s+\d+ ms\s+http:\/\/127\.0\.0\.1:\d+\/… answered HTTP 500/);

      const bad = path.join(dir, 'bad.json');
      await writeFile(bad, JSON.stringify({ ntfy_url: 'ftp://x', smtp_pasword: 'x' }), { mode: 0o600 });
      const b = await runCli(['notify', '--test', '--settings', bad]);
      assert.equal(b.status, 3, `${b.stdout}\n${b.stderr}`);
      assert.match(b.stderr, /\[notifications\]/);
    });
  });
});
