/**
 * Phase 2 of issue #13 without Docker: the `[notifications]` / `[daemon]` keys (parsing, errors,
 * masking, agreement with core's NOTIFICATION_KEYS), the daemon's schedule, skip, reload and stop with
 * a fake run and a recording notifier, and the process runner dropping NOTIFY_SOCKET / WATCHDOG_* from
 * children's environment.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import type { NotifyResult, SdNotifier } from '../../src/adapters/systemd-notify.js';
import { run } from '../../src/adapters/process.js';
import { configView } from '../../src/cli/commands/config.js';
import { NOTIFICATION_KEY_DEFS } from '../../src/config/keys-notifications.js';
import { loadConfig } from '../../src/config/load.js';
import { PASSWORD_MASK } from '../../src/config/schema.js';
import type { Config } from '../../src/config/types.js';
import type { Logger } from '../../src/core/log.js';
import { NOTIFICATION_KEYS, parseNotificationSettings } from '../../src/core/notification.js';
import type { RunRecord } from '../../src/core/run-record.js';
import { ConfigError, LockBusyError } from '../../src/errors.js';
import { Daemon } from '../../src/pipeline/daemon.js';
import type { runBackupAndNotify } from '../../src/pipeline/notify-run.js';

const roots: string[] = [];
after(async () => {
  for (const d of roots) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kd-daemon-unit-'));
  roots.push(dir);
  return dir;
}

const BASE = '[kopia]\nrepository_path = /srv/k\npassword = repo-secret-pw\n';

async function load(text: string, dir?: string): Promise<Config> {
  const d = dir ?? (await tempDir());
  const file = path.join(d, 'c.conf');
  await writeFile(file, text, { mode: 0o600 });
  return loadConfig({
    explicitPath: file,
    searchPaths: [],
    system: { cores: 2, availableMemoryBytes: 8 * 1024 ** 3, hostname: 'host1' },
    env: { KOPI_DOCKA_STATE_DIR: d },
  });
}

async function refused(text: string): Promise<ConfigError> {
  try {
    await load(text);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err;
  }
  assert.fail('expected a ConfigError');
}

void describe('[notifications] and [daemon] keys', () => {
  void it('every key of core NOTIFICATION_KEYS is declared once, and nothing else', () => {
    assert.deepEqual(NOTIFICATION_KEY_DEFS.map((k) => k.name).sort(), Object.keys(NOTIFICATION_KEYS).sort());
  });

  void it('defaults: no channel, notify_on failure, timeout 10 s; daemon interval 1440 min', async () => {
    const cfg = await load(BASE);
    assert.deepEqual(cfg.notifications, {
      webhookUrl: undefined,
      ntfyUrl: undefined,
      ntfyToken: undefined,
      smtpHost: undefined,
      smtpPort: undefined,
      smtpUser: undefined,
      smtpPassword: undefined,
      smtpFrom: undefined,
      smtpTo: [],
      smtpTls: 'starttls',
      heartbeatUrl: undefined,
      notifyOn: 'failure',
      timeoutSeconds: 10,
    });
    assert.equal(cfg.daemon.intervalMinutes, 1440);
  });

  void it('reads the section like core parses the same keys', async () => {
    const keys = {
      webhook_url: 'https://hooks.example.com/x',
      ntfy_url: 'https://ntfy.sh/topic',
      ntfy_token: 'tk_abcdefgh',
      smtp_host: 'mail.example.com',
      smtp_port: '465',
      smtp_user: 'u',
      smtp_password: 'p4ss-word',
      smtp_from: 'kopi-docka <b@example.com>',
      smtp_to: 'a@example.com, c@example.com',
      smtp_tls: 'tls',
      heartbeat_url: 'https://hc-ping.com/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0',
      notify_on: 'always',
      timeout_seconds: '5',
    };
    const ini = Object.entries(keys)
      .map(([k, v]) => `${k} = ${v}`)
      .join('\n');
    const cfg = await load(`${BASE}[notifications]\n${ini}\n[daemon]\ninterval_minutes = 60\n`);
    assert.deepEqual(cfg.notifications, parseNotificationSettings(keys));
    assert.equal(cfg.daemon.intervalMinutes, 60);
    const view = configView(cfg).sections.notifications ?? {};
    assert.equal(view.ntfy_token?.value, PASSWORD_MASK);
    assert.equal(view.smtp_password?.value, PASSWORD_MASK);
    assert.equal(view.heartbeat_url?.value, 'https://hc-ping.com/***');
    assert.equal(view.webhook_url?.origin, 'file');
    assert.ok(!JSON.stringify(configView(cfg)).includes('0f1e2d3c-4b5a'), 'the UUID is masked');
  });

  void it('precise errors: file, line, key; never the value of a URL or secret', async () => {
    let err = await refused(`${BASE}[notifications]\nheartbeat_url = ftp://hc/0f1e2d3c-4b5a-6978\n`);
    assert.match(
      err.message,
      /c\.conf:5: \[notifications\] heartbeat_url: expected an http:\/\/ or https:\/\/ URL/,
    );
    assert.doesNotMatch(err.message, /0f1e2d3c/);
    err = await refused(`${BASE}[notifications]\ntimeout_seconds = 0\n`);
    assert.match(
      err.message,
      /:5: \[notifications\] timeout_seconds: expected an integer from 1 to 300, found "0"/,
    );
    err = await refused(`${BASE}[notifications]\nnotify_on = sometimes\n`);
    assert.match(err.message, /notify_on: expected one of failure, always/);
    err = await refused(`${BASE}[notifications]\nsmtp_host = mail\nsmtp_to = a@b.c\n`);
    assert.match(err.message, /\[notifications\] smtp_from is missing/);
    err = await refused(`${BASE}[notifications]\nntfy_token = tk_x123\n`);
    assert.match(err.message, /ntfy_token is set but ntfy_url is not/);
    err = await refused(`${BASE}[notifications]\nsmtp_password = "x"\n`);
    assert.match(err.message, /smtp_password: expected a value without quotes/);
    err = await refused(`${BASE}[notifications]\nenabled = true\n`);
    assert.match(err.message, /unknown key "enabled" in \[notifications\]/);
    err = await refused(`${BASE}[daemon]\ninterval_minutes = 0\n`);
    assert.match(err.message, /\[daemon\] interval_minutes: expected an integer from 1 to 44640/);
  });
});

// ---------------------------------------------------------------------------------------------------

interface Recorded {
  sent: string[];
  notifier: SdNotifier;
}

function recordingNotifier(): Recorded {
  const sent: string[] = [];
  const ok = (s: string): Promise<NotifyResult> => {
    sent.push(s);
    return Promise.resolve({ sent: true });
  };
  return {
    sent,
    notifier: {
      enabled: true,
      watchdogIntervalMs: 20,
      ready: () => ok('READY=1'),
      status: (t) => ok(`STATUS=${t}`),
      watchdog: () => ok('WATCHDOG=1'),
      stopping: () => ok('STOPPING=1'),
    },
  };
}

function memoryLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return {
    level: 'debug',
    lines,
    debug: (m) => lines.push(`debug ${m}`),
    info: (m) => lines.push(`info ${m}`),
    warn: (m) => lines.push(`warning ${m}`),
    error: (m) => lines.push(`error ${m}`),
  };
}

function record(units: RunRecord['units'], interrupted?: string): RunRecord {
  const now = new Date().toISOString();
  return {
    runId: 'r',
    backupId: '2026-11-30T02-00-00Z',
    host: 'h',
    startedAt: now,
    finishedAt: now,
    dryRun: false,
    interrupted,
    units,
  };
}

const until = async (pred: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
};

async function daemonFixture(runJob: typeof runBackupAndNotify, loadFn?: () => Promise<Config>) {
  const dir = await tempDir();
  const cfg = await load(`${BASE}[backup]\nbackup_base_path = ${dir}/history\n`, dir);
  const rec = recordingNotifier();
  const log = memoryLog();
  const daemon = new Daemon({
    config: cfg,
    loadConfig: loadFn ?? (() => load(`${BASE}[backup]\nbackup_base_path = ${dir}/history\n`, dir)),
    // The fake run never touches them; the journal replay finds no journal.
    runDeps: () => ({ docker: {} as never, kopia: {} as never }),
    log,
    notifier: rec.notifier,
    runJob,
  });
  return { cfg, dir, rec, log, daemon };
}

void describe('Daemon (fake run)', () => {
  void it('READY, a first backup at once (no history), idle STATUS with the result, WATCHDOG, STOPPING', async () => {
    let runs = 0;
    const f = await daemonFixture((_cfg, deps) => {
      runs++;
      deps.log.info('unit web: 1 container(s) to stop, 1 data source(s)');
      return Promise.resolve(
        record([{ unit: 'web', status: 'ok', downtimeSec: 1, bytes: 1, snapshots: [], warnings: [] }]),
      );
    });
    const done = f.daemon.run();
    await until(() => f.rec.sent.some((s) => s.startsWith('STATUS=idle; next backup')));
    await until(() => f.rec.sent.filter((s) => s === 'WATCHDOG=1').length >= 2);
    f.daemon.stop('SIGTERM');
    await done;
    assert.equal(runs, 1, 'one backup, the next is an interval later');
    assert.equal(f.rec.sent[0], 'READY=1');
    assert.ok(
      f.rec.sent.some((s) => /^STATUS=backing up unit web \(started \S+\)$/.test(s)),
      f.rec.sent.join('\n'),
    );
    assert.match(
      f.rec.sent.find((s) => s.startsWith('STATUS=idle')) ?? '',
      /last: backup 2026-11-30T02-00-00Z OK: 1 unit\(s\) at /,
    );
    assert.ok(f.rec.sent.includes('STOPPING=1'));
  });

  void it('stop() during a backup aborts its signal and waits for it to end', async () => {
    let signalSeen: AbortSignal | undefined;
    const f = await daemonFixture(async (_cfg, _deps, opts) => {
      signalSeen = opts.signal;
      await new Promise<void>((r) => opts.signal.addEventListener('abort', () => setTimeout(r, 50)));
      return record([], String(opts.signal.reason));
    });
    const done = f.daemon.run();
    await until(() => signalSeen !== undefined);
    f.daemon.stop('SIGTERM');
    f.daemon.stop('SIGTERM');
    await done;
    assert.equal(signalSeen?.reason, 'SIGTERM');
    assert.ok(f.log.lines.some((l) => /SIGTERM received again: still stopping/.test(l)));
    assert.ok(f.log.lines.some((l) => /backup 2026-11-30T02-00-00Z interrupted by SIGTERM/.test(l)));
  });

  void it('another run holding the lock: skipped and logged, the run job is not called', async () => {
    let runs = 0;
    const f = await daemonFixture(() => {
      runs++;
      return Promise.resolve(record([]));
    });
    // A lock held by a live process other than us: our parent (the test runner's parent) is alive.
    await writeFile(
      path.join(f.cfg.stateDir, 'run.lock'),
      JSON.stringify({ pid: process.ppid, command: 'backup', since: 'then' }),
    );
    const done = f.daemon.run();
    await until(() => f.log.lines.some((l) => l.includes('scheduled backup skipped')));
    f.daemon.stop('SIGINT');
    await done;
    await rm(path.join(f.cfg.stateDir, 'run.lock'), { force: true });
    assert.equal(runs, 0);
    assert.match(f.rec.sent.find((s) => s.startsWith('STATUS=idle')) ?? '', /last: skipped/);
  });

  void it('LockBusyError from the run (a race) is a skip, not a failure', async () => {
    const f = await daemonFixture(() =>
      Promise.reject(new LockBusyError('another kopi-docka backup is running (pid 1)')),
    );
    const done = f.daemon.run();
    await until(() => f.log.lines.some((l) => l.includes('scheduled backup skipped')));
    f.daemon.stop('SIGTERM');
    await done;
    assert.ok(!f.log.lines.some((l) => l.startsWith('error ')), f.log.lines.join('\n'));
  });

  void it('a pre-flight failure: logged and in STATUS=, without the repository password', async () => {
    const f = await daemonFixture(() =>
      Promise.reject(new Error('repository unreachable (password repo-secret-pw rejected)')),
    );
    const done = f.daemon.run();
    await until(() => f.rec.sent.some((s) => s.startsWith('STATUS=idle') && s.includes('FAILED')));
    f.daemon.stop('SIGTERM');
    await done;
    const all = [...f.rec.sent, ...f.log.lines].join('\n');
    assert.ok(!all.includes('repo-secret-pw'), all);
    assert.match(
      all,
      /STATUS=idle; .*last: backup FAILED before any unit: repository unreachable \(password \*\*\* rejected\)/,
    );
  });

  void it('reload: a bad config is logged and the old one kept; a good one applies', async () => {
    let bad = true;
    const f = await daemonFixture(
      () => Promise.resolve(record([])),
      async () => {
        if (bad) throw new ConfigError('c.conf:3: [daemon] interval_minutes: expected an integer');
        return { ...(await load(BASE)), daemon: { intervalMinutes: 7 } };
      },
    );
    const done = f.daemon.run();
    await until(() => f.rec.sent.some((s) => s.startsWith('STATUS=idle')));
    assert.equal(await f.daemon.reload(), false);
    assert.equal(f.daemon.intervalMinutes, 1440);
    assert.ok(
      f.log.lines.some((l) =>
        /^error configuration not reloaded, keeping the previous one: c\.conf:3/.test(l),
      ),
    );
    bad = false;
    assert.equal(await f.daemon.reload(), true);
    assert.equal(f.daemon.intervalMinutes, 7);
    f.daemon.stop('SIGTERM');
    await done;
  });
});

void describe('children never inherit the service manager variables', () => {
  void it('NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID are dropped; a call’s own env still applies', async () => {
    const saved = { ...process.env };
    process.env.NOTIFY_SOCKET = '/run/systemd/notify';
    process.env.WATCHDOG_USEC = '120000000';
    process.env.WATCHDOG_PID = String(process.pid);
    try {
      const r = await run(['env']);
      assert.doesNotMatch(r.stdout, /^(NOTIFY_SOCKET|WATCHDOG_USEC|WATCHDOG_PID)=/m);
      const own = await run(['env'], { env: { NOTIFY_SOCKET: '/x' } });
      assert.match(own.stdout, /^NOTIFY_SOCKET=\/x$/m);
    } finally {
      for (const k of ['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID']) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
    }
  });
});
