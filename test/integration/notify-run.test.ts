/**
 * `kopi-docka backup` with `[notifications]` (src/pipeline/notify-run.ts) against the real Docker engine
 * and kopia, and an HTTP receiver on 127.0.0.1 started by the test (test/receivers/http-recorder.ts)
 * recording the webhook and heartbeat requests:
 *  - a failing backup (a pre_backup_hook that exits 1 → the unit failed): heartbeat /start, the webhook
 *    with the failed unit, heartbeat /fail — one message, no success ping (the monitor's "missed");
 *  - a pre-flight failure (repository not initialized): notified too, preflightError set, /fail;
 *  - a successful run: /start and the success ping; no webhook with notify_on = failure;
 *  - a hanging webhook delays the run by at most timeout_seconds, and the exit code is the backup's.
 * No secret (repository password, the heartbeat UUID) reaches a body or a log line.
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import type { WebhookPayload } from '../../src/core/notification.js';
import { startHttpRecorder, type HttpRecorder } from '../receivers/http-recorder.js';
import {
  TEST_IMAGE,
  cli,
  cliOk,
  createStack,
  describeRun,
  makeRepoConfig,
  registerCleanup,
  uniqueName,
  type RepoConfig,
  type Stack,
} from './helpers.js';

const PASSWORD = 'notify-run-pass-Qx71';
const UUID = '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0';

interface Env extends RepoConfig {
  http: HttpRecorder;
  stack: Stack;
}

async function setup(
  t: TestContext,
  prefix: string,
  opts: { init?: boolean; backup?: Record<string, string>; notifications?: string; hang?: boolean } = {},
): Promise<Env> {
  const http = await startHttpRecorder({
    respond: (r) => (opts.hang === true && r.path.startsWith('/hook') ? 'hang' : 200),
  });
  registerCleanup(t, () => http.close());
  const notifications =
    opts.notifications ??
    `[notifications]\nwebhook_url = ${http.url}/hook\nheartbeat_url = ${http.url}/ping/${UUID}\ntimeout_seconds = 3\n`;
  const repo = await makeRepoConfig(t, {
    prefix,
    password: PASSWORD,
    sections: { backup: opts.backup ?? {} },
    extra: notifications,
  });
  const stack = await createStack(t, {
    name: uniqueName(prefix),
    files: {
      'docker-compose.yml': `version: '2.4'
services:
  app:
    image: ${TEST_IMAGE}
    init: true
    command: sh -c 'while :; do sleep 1; done'
    volumes:
      - data:/data
volumes:
  data:
`,
    },
  });
  if (opts.init !== false) await cliOk(repo, ['init']);
  return { ...repo, http, stack };
}

const paths = (e: Env) => e.http.requests.map((r) => `${r.method} ${r.path}`);
const webhooks = (e: Env) =>
  e.http.requests.filter((r) => r.path === '/hook').map((r) => JSON.parse(r.body) as WebhookPayload);

function assertNoSecrets(e: Env, stderr: string): void {
  for (const r of e.http.requests) {
    assert.ok(!r.body.includes(PASSWORD), `the password reached ${r.path}`);
    assert.ok(!r.body.includes(UUID), `the heartbeat UUID reached a body (${r.path})`);
  }
  assert.ok(!stderr.includes(PASSWORD), 'the password reached a log line');
  assert.ok(!stderr.includes(UUID), 'the heartbeat UUID reached a log line');
}

void describe('backup with [notifications]', () => {
  void it('a failing unit: /start, one webhook message naming it, /fail — no success ping', async (t) => {
    const e = await setup(t, 'nr-fail', { backup: { pre_backup_hook: '/bin/false' } });
    const r = await cli(e, ['backup', '--unit', e.stack.project]);
    assert.equal(r.code, 1, describeRun(r));
    assert.deepEqual(
      [...paths(e)].sort(),
      [`POST /ping/${UUID}/start`, 'POST /hook', `POST /ping/${UUID}/fail`].sort(),
    );
    const start = paths(e).indexOf(`POST /ping/${UUID}/start`);
    assert.equal(start, 0, `the /start ping comes first: ${paths(e).join(', ')}`);
    const [msg] = webhooks(e);
    assert.equal(msg?.event, 'backup.failed');
    assert.equal(msg.ok, false);
    assert.deepEqual(msg.counts, { ok: 0, failed: 1, skipped: 0 });
    assert.equal(msg.units[0]?.unit, e.stack.project);
    assert.match(msg.units[0]?.error ?? '', /pre-backup/);
    assert.match(msg.errors[0] ?? '', new RegExp(`^${e.stack.project}: `));
    assert.equal(msg.preflightError, null);
    const fail = e.http.requests.find((x) => x.path.endsWith('/fail'));
    assert.match(fail?.body ?? '', /kopi-docka backup FAILED on .*: 1 of 1 units failed/);
    assert.match(r.stderr, /notification via webhook sent/);
    assert.match(r.stderr, /notification via heartbeat sent/);
    assertNoSecrets(e, r.stderr);
  });

  void it('a pre-flight failure (repository not initialized) is notified: preflightError, /fail', async (t) => {
    const e = await setup(t, 'nr-pre', { init: false });
    const r = await cli(e, ['backup', '--unit', e.stack.project]);
    assert.notEqual(r.code, 0, describeRun(r));
    assert.deepEqual(
      [...paths(e)].sort(),
      [`POST /ping/${UUID}/fail`, `POST /ping/${UUID}/start`, 'POST /hook'].sort(),
    );
    const [msg] = webhooks(e);
    assert.equal(msg?.event, 'backup.failed');
    assert.notEqual(msg.preflightError, null);
    assert.deepEqual(msg.units, []);
    assert.match(msg.title, /FAILED on .*: did not start/);
    assert.equal(msg.backupId, null);
    assert.ok(!paths(e).includes(`POST /ping/${UUID}`), 'no success ping: the monitor sees the missed run');
    assertNoSecrets(e, r.stderr);
  });

  void it('a successful run: /start then the success ping; no message with notify_on = failure', async (t) => {
    const e = await setup(t, 'nr-ok');
    const r = await cli(e, ['backup', '--unit', e.stack.project]);
    assert.equal(r.code, 0, describeRun(r));
    assert.deepEqual(paths(e), [`POST /ping/${UUID}/start`, `POST /ping/${UUID}`]);
    assert.match(e.http.requests[1]?.body ?? '', /kopi-docka backup OK/);
    assertNoSecrets(e, r.stderr);
  });

  void it('a hanging webhook costs at most timeout_seconds; the exit code is the backup’s', async (t) => {
    const e = await setup(t, 'nr-hang', {
      hang: true,
      backup: { pre_backup_hook: '/bin/false' },
    });
    const t0 = Date.now();
    const r = await cli(e, ['backup', '--unit', e.stack.project]);
    const ms = Date.now() - t0;
    assert.equal(r.code, 1, describeRun(r));
    assert.match(
      r.stderr,
      /notification via webhook failed after \d+ ms: http:\/\/127\.0\.0\.1:\d+\/… did not answer within 3000 ms/,
    );
    assert.ok(paths(e).includes(`POST /ping/${UUID}/fail`), 'the other channels still send');
    assert.ok(ms < 30_000, `the run took ${ms} ms`);
  });

  void it('notify --test sends through the channels of the config’s [notifications]', async (t) => {
    const http = await startHttpRecorder();
    registerCleanup(t, () => http.close());
    const repo = await makeRepoConfig(t, {
      prefix: 'nr-test',
      password: PASSWORD,
      extra: `[notifications]\nwebhook_url = ${http.url}/hook\nheartbeat_url = ${http.url}/ping/${UUID}\n`,
    });
    const r = await cli(repo, ['notify', '--test']);
    assert.equal(r.code, 0, describeRun(r));
    assert.match(r.stdout, /^OK +webhook/m);
    assert.match(r.stdout, /^OK +heartbeat/m);
    const hook = http.requests.find((x) => x.path === '/hook');
    assert.equal((JSON.parse(hook?.body ?? '{}') as WebhookPayload).event, 'test');
    assert.ok(
      http.requests.some((x) => x.path === `/ping/${UUID}`),
      'the heartbeat gets a success ping',
    );
    for (const x of http.requests) assert.ok(!x.body.includes(PASSWORD));

    // No channel configured: exit 3, naming the config file.
    const bare = await makeRepoConfig(t, { prefix: 'nr-test0' });
    const none = await cli(bare, ['notify', '--test']);
    assert.equal(none.code, 3, describeRun(none));
    assert.match(none.stderr, /\[notifications\] of \S+kopi-docka\.conf configures no channel/);
  });
});
