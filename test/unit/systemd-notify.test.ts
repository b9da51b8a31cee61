/**
 * The sd_notify adapter against a real AF_UNIX datagram socket (python3, test/receivers/notify-socket.ts)
 * and the real systemd-notify: the exact datagrams must arrive, in call order.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  createNotifier,
  startWatchdog,
  statusLine,
  watchdogIntervalMs,
  type NotifyRunner,
} from '../../src/adapters/systemd-notify.js';
import { startNotifySocket, type NotifySocket } from '../receivers/notify-socket.js';

const haveTools =
  spawnSync('python3', ['--version']).status === 0 && spawnSync('systemd-notify', ['--version']).status === 0;

describe('watchdogIntervalMs (sd_watchdog_enabled(3))', () => {
  it('is half of WATCHDOG_USEC, in ms', () => {
    assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '20000000' }, 42), 10_000);
    assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '120000000', WATCHDOG_PID: '42' }, 42), 60_000);
  });
  it('is undefined for another PID, a missing, zero or malformed value', () => {
    assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '20000000', WATCHDOG_PID: '7' }, 42), undefined);
    assert.equal(watchdogIntervalMs({}, 42), undefined);
    assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '0' }, 42), undefined);
    assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '-5' }, 42), undefined);
    assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: '1e6' }, 42), undefined);
  });
  it('the notifier exposes it only when NOTIFY_SOCKET is set', () => {
    assert.equal(createNotifier({ WATCHDOG_USEC: '2000000' }, { pid: 1 }).watchdogIntervalMs, undefined);
    assert.equal(
      createNotifier({ NOTIFY_SOCKET: '/x', WATCHDOG_USEC: '2000000' }, { pid: 1 }).watchdogIntervalMs,
      1000,
    );
  });
});

describe('statusLine', () => {
  it('makes one bounded line', () => {
    assert.equal(statusLine('backing up\nunit web\t '), 'backing up unit web');
    assert.equal(statusLine('x'.repeat(1000)).length, 400);
  });
});

describe('createNotifier without NOTIFY_SOCKET', () => {
  it('is a no-op that never starts a process', async () => {
    const calls: string[][] = [];
    const runner: NotifyRunner = (argv) => {
      calls.push([...argv]);
      return Promise.reject(new Error('must not run'));
    };
    const n = createNotifier({ NOTIFY_SOCKET: '' }, { runner });
    assert.equal(n.enabled, false);
    for (const r of await Promise.all([n.ready(), n.status('x'), n.watchdog(), n.stopping()])) {
      assert.deepEqual(r, { sent: false });
    }
    assert.deepEqual(calls, []);
  });
});

describe(
  'createNotifier with a real socket',
  { skip: haveTools ? false : 'needs python3 and systemd-notify' },
  () => {
    let dir: string;
    let sock: NotifySocket;
    before(async () => {
      dir = await mkdtemp(path.join(os.tmpdir(), 'kd-notify-'));
      sock = await startNotifySocket(path.join(dir, 'notify.sock'));
    });
    after(async () => {
      await sock.close();
      await rm(dir, { recursive: true, force: true });
    });

    it('sends READY=1, STATUS=…, WATCHDOG=1, STOPPING=1 as separate datagrams, in call order', async () => {
      const n = createNotifier({ NOTIFY_SOCKET: sock.path });
      assert.equal(n.enabled, true);
      // Not awaited one by one: the notifier itself must keep the order.
      const results = await Promise.all([
        n.ready(),
        n.status('backing up unit web\n(2 of 3)'),
        n.watchdog(),
        n.stopping(),
      ]);
      for (const r of results) assert.deepEqual(r, { sent: true });
      const payloads = () => sock.datagrams.map((d) => d.data).filter((d) => d !== 'BARRIER=1');
      const barriers = () => sock.datagrams.filter((d) => d.data === 'BARRIER=1').length;
      // The receiver prints a barrier's line after releasing the sender: wait for all four lines.
      await sock.waitFor(() => payloads().length >= 4 && barriers() >= 4);
      assert.deepEqual(payloads(), [
        'READY=1',
        'STATUS=backing up unit web (2 of 3)',
        'WATCHDOG=1',
        'STOPPING=1',
      ]);
      // systemd-notify waited for the manager after each message (no exit race).
      assert.equal(barriers(), 4);
      for (const d of sock.datagrams) assert.equal(typeof d.pid, 'number', 'SCM_CREDENTIALS carried a PID');
    });

    it('startWatchdog pings at half WATCHDOG_USEC while other work runs, and stops', async () => {
      const before = sock.datagrams.length;
      const n = createNotifier({ NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: '400000' });
      assert.equal(n.watchdogIntervalMs, 200);
      const errors: string[] = [];
      const stop = startWatchdog(n, (e) => errors.push(e));
      // A "backup": the event loop stays free (awaited I/O), so the timer keeps pinging.
      await new Promise((r) => setTimeout(r, 1500));
      stop();
      await new Promise((r) => setTimeout(r, 400));
      const pings = () => sock.datagrams.slice(before).filter((d) => d.data === 'WATCHDOG=1').length;
      const afterStop = pings();
      assert.ok(afterStop >= 3, `at least 3 pings in 1.5 s at 200 ms, got ${afterStop}`);
      assert.ok(afterStop <= 8, `no more than one per tick, got ${afterStop}`);
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(pings(), afterStop, 'no ping after stop()');
      assert.deepEqual(errors, []);
      assert.deepEqual(
        sock.datagrams.slice(before).filter((d) => d.data !== 'WATCHDOG=1' && d.data !== 'BARRIER=1'),
        [],
      );
    });

    it('startWatchdog is a no-op without a watchdog', () => {
      const calls: string[] = [];
      const runner: NotifyRunner = (argv) => {
        calls.push(argv.join(' '));
        return Promise.reject(new Error('must not run'));
      };
      startWatchdog(createNotifier({ NOTIFY_SOCKET: sock.path }, { runner }))();
      startWatchdog(createNotifier({ WATCHDOG_USEC: '1000' }, { runner }))();
      assert.deepEqual(calls, []);
    });

    it('returns a failure (never throws) when the socket is gone or the binary is missing', async () => {
      const gone = await createNotifier({ NOTIFY_SOCKET: path.join(dir, 'nobody.sock') }).ready();
      assert.equal(gone.sent, false);
      assert.match(gone.error ?? '', /systemd-notify exited/);
      const missing = await createNotifier(
        { NOTIFY_SOCKET: sock.path },
        { binary: '/nonexistent/systemd-notify' },
      ).watchdog();
      assert.equal(missing.sent, false);
      assert.match(missing.error ?? '', /not found/);
    });
  },
);
