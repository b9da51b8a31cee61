import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { heartbeatUrl } from '../../src/adapters/notify/heartbeat.js';
import { resultLines } from '../../src/adapters/notify/index.js';
import { headerValue } from '../../src/adapters/notify/ntfy.js';
import {
  buildMessage,
  configuredChannels,
  NOTIFICATION_KEYS,
  parseNotificationSettings,
  preflightFailure,
  redactUrl,
  runFailed,
  scrub,
  settingsSecrets,
  shouldNotify,
  type RunSummary,
} from '../../src/core/notification.js';
import { ConfigError } from '../../src/errors.js';

const RUN: RunSummary = {
  host: 'h1',
  backupId: '2026-11-30T02-00-00Z',
  startedAt: '2026-11-30T02:00:00.000Z',
  finishedAt: '2026-11-30T02:01:40.000Z',
  units: [
    { unit: 'db', status: 'ok', downtimeSec: 4, bytes: 2048, warnings: [] },
    { unit: 'web', status: 'failed', error: 'stop timed out', downtimeSec: 1, bytes: 0, warnings: [] },
  ],
};

describe('parseNotificationSettings', () => {
  it('defaults: failure only, 10 s, starttls, no channel', () => {
    const s = parseNotificationSettings({});
    assert.equal(s.notifyOn, 'failure');
    assert.equal(s.timeoutSeconds, 10);
    assert.equal(s.smtpTls, 'starttls');
    assert.deepEqual(configuredChannels(s), []);
  });

  it('maps every INI key and splits smtp_to', () => {
    const s = parseNotificationSettings({
      webhook_url: 'https://hooks.example/x',
      ntfy_url: 'https://ntfy.sh/topic',
      ntfy_token: 'tk_1',
      smtp_host: 'mail.example',
      smtp_port: '465',
      smtp_user: 'u',
      smtp_password: 'p',
      smtp_from: 'kd@example',
      smtp_to: 'a@example, b@example,',
      smtp_tls: 'tls',
      heartbeat_url: 'https://hc-ping.com/uuid',
      notify_on: 'always',
      timeout_seconds: '3',
    });
    assert.equal(s.smtpPort, 465);
    assert.deepEqual(s.smtpTo, ['a@example', 'b@example']);
    assert.equal(s.smtpTls, 'tls');
    assert.equal(s.notifyOn, 'always');
    assert.equal(s.timeoutSeconds, 3);
    assert.deepEqual(configuredChannels(s), ['webhook', 'ntfy', 'email', 'heartbeat']);
    assert.equal(Object.keys(NOTIFICATION_KEYS).length, 13);
  });

  it('refuses unknown keys, bad values and incomplete setups, naming the key', () => {
    const bad: [Record<string, string>, RegExp][] = [
      [{ smtp_pasword: 'x' }, /unknown key "smtp_pasword"/],
      [{ webhook_url: 'ftp://x' }, /webhook_url: only http/],
      [{ heartbeat_url: 'not a url' }, /heartbeat_url/],
      [{ smtp_port: '70000' }, /smtp_port/],
      [{ timeout_seconds: '0' }, /timeout_seconds/],
      [{ notify_on: 'success' }, /notify_on/],
      [{ smtp_tls: 'ssl' }, /smtp_tls/],
      [{ smtp_host: 'm', smtp_to: 'a@b' }, /smtp_from is missing/],
      [{ smtp_user: 'u' }, /smtp_user and smtp_password go together/],
      [{ ntfy_token: 't' }, /ntfy_url is not/],
    ];
    for (const [entries, re] of bad) {
      assert.throws(
        () => parseNotificationSettings(entries),
        (e: unknown) => e instanceof ConfigError && re.test(e.message),
      );
    }
  });

  it('a bad URL is not echoed in full (it may hold a token)', () => {
    assert.throws(
      () => parseNotificationSettings({ webhook_url: 'https://[bad/secret-path-xyz' }),
      (e: unknown) => e instanceof Error && !e.message.includes('secret-path-xyz'),
    );
  });
});

describe('secrets', () => {
  it('redactUrl keeps scheme and host only', () => {
    assert.equal(redactUrl('https://u:p@hc-ping.com/0f1e2d3c?x=1'), 'https://hc-ping.com/…');
    assert.equal(redactUrl('http://127.0.0.1:8080/'), 'http://127.0.0.1:8080/');
  });
  it('settingsSecrets lists tokens, passwords, URL credentials, queries and long path segments', () => {
    const s = parseNotificationSettings({
      ntfy_url: 'https://ntfy.sh/alerts',
      ntfy_token: 'tk_abc',
      webhook_url: 'https://user:pw@hooks.example/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX?sig=abc',
      heartbeat_url: 'https://hc-ping.com/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0',
    });
    const got = settingsSecrets(s);
    for (const x of [
      'tk_abc',
      'pw',
      'user',
      'sig=abc',
      'XXXXXXXXXXXXXXXXXXXXXXXX',
      '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0',
    ]) {
      assert.ok(got.includes(x), x);
    }
    assert.ok(!got.includes('alerts'), 'a short topic name is not treated as a secret');
  });
  it('scrub replaces the longest secret first', () => {
    assert.equal(scrub('pw=hunter22 and hunter2', ['hunter2', 'hunter22']), 'pw=*** and ***');
  });
});

describe('buildMessage', () => {
  it('one message for the run: title, text lines per unit, payload counts and errors', () => {
    const m = buildMessage(RUN);
    assert.equal(m.ok, false);
    assert.equal(m.title, 'kopi-docka backup FAILED on h1: 1 of 2 units failed');
    assert.match(m.text, /^ {2}OK {6}db {2}down 4 s, 2\.0 KiB$/m);
    assert.match(m.text, /^ {2}FAILED {2}web {2}stop timed out$/m);
    assert.equal(m.priority, 'high');
    assert.deepEqual(m.payload.counts, { ok: 1, failed: 1, skipped: 0 });
    assert.deepEqual(m.payload.errors, ['web: stop timed out']);
    assert.equal(m.payload.durationSec, 100);
  });
  it('scrubs secrets from errors, warnings and the text', () => {
    const run: RunSummary = {
      ...RUN,
      units: [
        {
          unit: 'web',
          status: 'failed',
          error: 'auth sekr3t!',
          downtimeSec: 0,
          bytes: 0,
          warnings: ['w sekr3t!'],
        },
      ],
    };
    const m = buildMessage(run, ['sekr3t!']);
    assert.ok(!JSON.stringify(m).includes('sekr3t!'));
    assert.deepEqual(m.payload.errors, ['web: auth ***']);
  });
  it('success, interruption and pre-flight', () => {
    const ok = { ...RUN, units: RUN.units.slice(0, 1) };
    assert.equal(runFailed(ok), false);
    assert.equal(buildMessage(ok).title, 'kopi-docka backup OK on h1: 1 unit');
    assert.equal(shouldNotify(ok, 'failure'), false);
    assert.equal(shouldNotify(ok, 'always'), true);
    const cut = { ...ok, interrupted: 'SIGTERM' };
    assert.equal(runFailed(cut), true);
    assert.equal(buildMessage(cut).title, 'kopi-docka backup FAILED on h1: interrupted by SIGTERM');
    const pre = preflightFailure('h1', RUN.startedAt, RUN.finishedAt, 'Docker is not running');
    assert.equal(shouldNotify(pre, 'failure'), true);
    assert.equal(buildMessage(pre).title, 'kopi-docka backup FAILED on h1: did not start');
    assert.deepEqual(buildMessage(pre).payload.errors, ['Docker is not running']);
  });
});

describe('channel helpers', () => {
  it('heartbeatUrl appends /start and /fail before the query', () => {
    assert.equal(heartbeatUrl('https://hc-ping.com/abc/', 'start'), 'https://hc-ping.com/abc/start');
    assert.equal(heartbeatUrl('https://hc-ping.com/abc?rid=1', 'fail'), 'https://hc-ping.com/abc/fail?rid=1');
    assert.equal(heartbeatUrl('https://hc-ping.com/abc', 'success'), 'https://hc-ping.com/abc');
  });
  it('ntfy header values: ASCII as is, other text RFC 2047-encoded', () => {
    assert.equal(headerValue('backup OK'), 'backup OK');
    assert.equal(
      headerValue('Sicherung für äöü'),
      `=?UTF-8?B?${Buffer.from('Sicherung für äöü').toString('base64')}?=`,
    );
  });
});

describe('resultLines', () => {
  it('info for a sent channel, warn with the error for a failed one', () => {
    assert.deepEqual(
      resultLines([
        { channel: 'ntfy', ok: true, ms: 12 },
        { channel: 'email', ok: false, error: 'mail.example:587: timed out', ms: 10_000 },
      ]),
      [
        { level: 'info', text: 'notification via ntfy sent (12 ms)' },
        { level: 'warn', text: 'notification via email failed after 10000 ms: mail.example:587: timed out' },
      ],
    );
  });
});
