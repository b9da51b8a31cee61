/**
 * `kopi-docka daemon` against the real Docker engine and the real kopia, with NOTIFY_SOCKET pointing at
 * a unix datagram socket this test listens on (python3, test/receivers/notify-socket.ts) and the real
 * systemd-notify sending: READY=1, STATUS= (backing up unit X, idle with the last result), WATCHDOG=1
 * every WATCHDOG_USEC/2 also while a backup runs, STOPPING=1. SIGTERM mid-backup starts the containers
 * again and exits 0; SIGHUP with a broken config keeps the old one; an overlap with a CLI backup is
 * skipped on either side.
 *
 * A backup is made long, deterministically, by a kopia wrapper (KOPI_DOCKA_KOPIA_BIN) that sleeps
 * before `snapshot create` while a flag file exists: the containers are stopped during that sleep.
 * Every run is limited with --unit to this test's stack (other projects may live on the same engine).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { ExitCode } from '../../src/errors.js';
import { startNotifySocket, type Datagram, type NotifySocket } from '../receivers/notify-socket.js';
import {
  KOPIA_BIN,
  TEST_IMAGE,
  cli,
  cliOk,
  createStack,
  describeRun,
  docker,
  makeRepoConfig,
  registerCleanup,
  startCli,
  uniqueName,
  type RepoConfig,
  type StartedCli,
  type Stack,
} from './helpers.js';

const haveTools =
  spawnSync('python3', ['--version']).status === 0 && spawnSync('systemd-notify', ['--version']).status === 0;
const SLOW_SECONDS = 8;
/** WATCHDOG_USEC for the daemon: 2 s, so it pings every second. */
const WATCHDOG_USEC = '2000000';

interface Env extends RepoConfig {
  sock: NotifySocket;
  /** While this file exists, the kopia wrapper sleeps SLOW_SECONDS before each `snapshot create`. */
  slowFlag: string;
  stack: Stack;
  daemonEnv: Record<string, string>;
}

async function setup(t: TestContext, prefix: string): Promise<Env> {
  const repo = await makeRepoConfig(t, { prefix });
  const slowFlag = path.join(repo.dir, 'slow');
  const wrapper = path.join(repo.dir, 'slow-kopia');
  await writeFile(
    wrapper,
    '#!/bin/sh\n' +
      // What a child of kopi-docka sees of the service manager's variables (never ours).
      `printf '%s %s\\n' "\${NOTIFY_SOCKET-unset}" "\${WATCHDOG_USEC-unset}" >> '${path.join(repo.dir, 'child-env')}'\n` +
      `case " $* " in *" snapshot create "*) [ -e '${slowFlag}' ] && sleep ${SLOW_SECONDS};; esac\n` +
      `exec '${KOPIA_BIN}' "$@"\n`,
  );
  await chmod(wrapper, 0o755);
  const sock = await startNotifySocket(path.join(repo.dir, 'notify.sock'));
  registerCleanup(t, () => sock.close());
  const stack = await createStack(t, {
    name: uniqueName(prefix),
    files: {
      'docker-compose.yml': `version: '2.4'
services:
  app:
    image: ${TEST_IMAGE}
    init: true
    command: sh -c 'echo hello > /data/file; while :; do sleep 1; done'
    volumes:
      - data:/data
volumes:
  data:
`,
    },
  });
  const env = { ...repo.env, KOPI_DOCKA_KOPIA_BIN: wrapper };
  await cliOk({ env }, ['init']);
  return {
    ...repo,
    env,
    sock,
    slowFlag,
    stack,
    daemonEnv: { ...env, NOTIFY_SOCKET: sock.path, WATCHDOG_USEC },
  };
}

function startDaemon(e: Env, t: TestContext, extra: string[] = []): StartedCli {
  const d = startCli(['daemon', '--unit', e.stack.project, ...extra], {
    env: e.daemonEnv,
    timeoutMs: 240_000,
  });
  registerCleanup(t, () => {
    if (d.child.exitCode === null && d.child.signalCode === null && d.child.pid !== undefined) {
      try {
        process.kill(-d.child.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  });
  return d;
}

async function appState(project: string): Promise<string> {
  const r = await docker([
    'ps',
    '-a',
    '--filter',
    `label=com.docker.compose.project=${project}`,
    '--format',
    '{{.State}}',
  ]);
  return r.stdout.trim();
}

async function waitForState(project: string, state: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await appState(project)) !== state) {
    if (Date.now() > deadline) throw new Error(`${project} is ${await appState(project)}, not ${state}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const data = (d: Datagram[]) => d.map((x) => x.data);
const count = (d: Datagram[], s: string) => data(d).filter((x) => x === s).length;

void describe('kopi-docka daemon', { skip: haveTools ? false : 'needs python3 and systemd-notify' }, () => {
  void it('READY, STATUS, WATCHDOG while a long backup runs; SIGTERM mid-backup restarts the containers, STOPPING, exit 0', async (t) => {
    const e = await setup(t, 'dmn-term');
    await writeFile(e.slowFlag, '');
    const d = startDaemon(e, t);
    await e.sock.waitFor((x) => data(x).includes('READY=1'), 30_000);
    await e.sock.waitFor(
      (x) => data(x).some((s) => s.startsWith(`STATUS=backing up unit ${e.stack.project}`)),
      60_000,
    );
    await waitForState(e.stack.project, 'exited');
    // The containers are down and kopia (the wrapper) sleeps: the watchdog must keep pinging.
    const before = count(e.sock.datagrams, 'WATCHDOG=1');
    await new Promise((r) => setTimeout(r, 3500));
    const during = count(e.sock.datagrams, 'WATCHDOG=1') - before;
    assert.ok(during >= 2, `expected ≥ 2 WATCHDOG=1 in 3.5 s during the backup, got ${during}`);

    d.child.kill('SIGTERM');
    const r = await d.done;
    assert.equal(r.code, 0, describeRun(r));
    assert.equal(await appState(e.stack.project), 'running', 'the interrupted unit is running again');
    assert.ok(data(e.sock.datagrams).includes('STOPPING=1'), JSON.stringify(data(e.sock.datagrams)));
    const order = data(e.sock.datagrams);
    assert.ok(order.indexOf('READY=1') < order.indexOf('STOPPING=1'));
    assert.equal(existsSync(path.join(e.stateDir, 'journal.json')), false, 'no journal is left');
    assert.equal(existsSync(path.join(e.stateDir, 'run.lock')), false, 'the lock is released');
    const hist = (await readFile(path.join(e.historyDir, 'history.jsonl'), 'utf8')).trim().split('\n');
    assert.equal((JSON.parse(hist.at(-1) ?? '{}') as { interrupted?: string }).interrupted, 'SIGTERM');
    assert.match(r.stderr, /SIGTERM received: stopping the running backup/);
    // kopia (a child) never saw NOTIFY_SOCKET or WATCHDOG_USEC: only our systemd-notify sends.
    const childEnv = (await readFile(path.join(e.dir, 'child-env'), 'utf8')).trim().split('\n');
    assert.ok(childEnv.length > 0);
    for (const l of childEnv) assert.equal(l, 'unset unset');
    // Plain log lines (stderr is a pipe here): time and level, never <N>.
    assert.doesNotMatch(r.stderr, /^<\d>/m);
    assert.match(r.stderr, /^\d{4}-\d{2}-\d{2}T\S+Z info {4}daemon started/m);
  });

  void it('idle STATUS with the last result; a CLI backup during the daemon’s backup is refused (lock), and the daemon skips while a CLI backup runs', async (t) => {
    const e = await setup(t, 'dmn-lock');
    // 1. A fast backup, then idle with the result.
    const d1 = startDaemon(e, t);
    await e.sock.waitFor(
      (x) =>
        data(x).some((s) => /^STATUS=idle; next backup \S+; last: backup \S+ OK: 1 unit\(s\) at /.test(s)),
      120_000,
    );
    assert.equal(await appState(e.stack.project), 'running');
    d1.child.kill('SIGTERM');
    assert.equal((await d1.done).code, 0);

    // 2. (Without a recorded run the daemon backs up at once.) A CLI backup while the daemon's runs.
    await rm(path.join(e.historyDir, 'history.jsonl'));
    await writeFile(e.slowFlag, '');
    const from2 = e.sock.datagrams.length;
    const d2 = startDaemon(e, t);
    await e.sock.waitFor(
      (x) => data(x.slice(from2)).some((s) => s.startsWith('STATUS=backing up unit')),
      60_000,
    );
    const overlap = await cli(e, ['backup', '--unit', e.stack.project]);
    assert.equal(overlap.code, ExitCode.LOCKED, describeRun(overlap));
    assert.match(overlap.stderr, /another kopi-docka backup is running/);
    d2.child.kill('SIGTERM');
    assert.equal((await d2.done).code, 0);
    await waitForState(e.stack.project, 'running');

    // 3. A CLI backup holds the lock; a daemon starting now skips its due backup and says so.
    const cliRun = startCli(['backup', '--unit', e.stack.project], { env: e.env, timeoutMs: 120_000 });
    await waitForState(e.stack.project, 'exited');
    await rm(path.join(e.historyDir, 'history.jsonl'));
    const sockBefore = e.sock.datagrams.length;
    const d3 = startDaemon(e, t);
    await d3.waitFor(
      /scheduled backup skipped: another kopi-docka run holds the lock \(backup pid \d+/,
      30_000,
    );
    await e.sock.waitFor(
      (x) => data(x.slice(sockBefore)).some((s) => /^STATUS=idle; .*last: skipped/.test(s)),
      10_000,
    );
    d3.child.kill('SIGTERM');
    const r3 = await d3.done;
    assert.equal(r3.code, 0, describeRun(r3));
    await rm(e.slowFlag);
    const c = await cliRun.done;
    assert.equal(c.code, 0, describeRun(c));
  });

  void it('a daemon killed mid-backup leaves a journal; the next daemon starts those containers before its first backup', async (t) => {
    const e = await setup(t, 'dmn-crash');
    await writeFile(e.slowFlag, '');
    const d1 = startDaemon(e, t);
    await e.sock.waitFor((x) => data(x).some((s) => s.startsWith('STATUS=backing up unit')), 60_000);
    await waitForState(e.stack.project, 'exited');
    // SIGKILL the daemon alone: no finally runs, the journal stays (its kopia dies with it: pdeathsig).
    d1.child.kill('SIGKILL');
    await d1.done;
    assert.ok(existsSync(path.join(e.stateDir, 'journal.json')), 'the crash left a journal');
    assert.equal(await appState(e.stack.project), 'exited');

    await rm(e.slowFlag);
    const d2 = startDaemon(e, t);
    await d2.waitFor(/a previous run died and left a journal: started again: \S+/, 60_000);
    await e.sock.waitFor(
      (x) => data(x).some((s) => /^STATUS=idle; .*last: backup \S+ OK: 1 unit/.test(s)),
      120_000,
    );
    assert.equal(await appState(e.stack.project), 'running');
    assert.equal(existsSync(path.join(e.stateDir, 'journal.json')), false, 'the journal is cleared');
    d2.child.kill('SIGTERM');
    const r = await d2.done;
    assert.equal(r.code, 0, describeRun(r));
    // The replay came before the backup: its log line precedes the run's first line.
    const replay = r.stderr.search(/a previous run died and left a journal/);
    const run = r.stderr.search(/backup \d{4}-\d{2}-\d{2}T\S+Z: 1 unit\(s\)/);
    assert.ok(replay >= 0 && run > replay, r.stderr);
  });

  void it('SIGHUP reloads the config; a broken one is logged and the old one kept', async (t) => {
    const e = await setup(t, 'dmn-hup');
    const d = startDaemon(e, t);
    await e.sock.waitFor((x) => data(x).some((s) => s.startsWith('STATUS=idle; next backup')), 120_000);
    const good = await readFile(e.configPath, 'utf8');

    await writeFile(e.configPath, `${good}\n[daemon]\ninterval_minutes = soon\n`);
    d.child.kill('SIGHUP');
    await d.waitFor(
      /configuration not reloaded, keeping the previous one: .*interval_minutes: expected an integer/,
      20_000,
    );
    // Still alive and pinging.
    const n = count(e.sock.datagrams, 'WATCHDOG=1');
    await e.sock.waitFor((x) => count(x, 'WATCHDOG=1') >= n + 2, 10_000);
    assert.equal(d.child.exitCode, null, 'the daemon keeps running');

    await writeFile(e.configPath, `${good}\n[daemon]\ninterval_minutes = 90\n`);
    d.child.kill('SIGHUP');
    await d.waitFor(/configuration reloaded from .*: a backup every 90 min/, 20_000);
    d.child.kill('SIGTERM');
    const r = await d.done;
    assert.equal(r.code, 0, describeRun(r));
    assert.ok(data(e.sock.datagrams).includes('STOPPING=1'));
  });
});
