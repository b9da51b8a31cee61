/**
 * Faults during `kopi-docka backup`, against the real Docker daemon and the real kopia (never a mock):
 * one unit failing while the next succeeds, the repository becoming unwritable mid-run, SIGTERM/SIGINT
 * and SIGKILL during a snapshot, a second concurrent run, a failing pre-flight, an unknown --unit.
 *
 * Snapshots are made slow enough to interrupt by an ~800 MB volume of random data, created once for
 * the file and mounted (external) by the stacks that need it; every test uses a fresh repository, so
 * Kopia reads it all. Every run is limited with --unit to this test's stacks (other projects may live
 * on the same daemon). Each test cleans up after itself, even on failure: stacks, `chattr -R -i`, any
 * kopia process still using the test's state dir, the temp dir.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { chmod, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline as streamPipeline } from 'node:stream/promises';
import { after, before, describe, it, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import {
  CLI_TIMEOUT_MS,
  KOPIA_BIN,
  TEST_IMAGE,
  cli,
  cliOk,
  composeContainer,
  createStack,
  docker,
  escapeRegExp,
  makeRepoConfig,
  startCli,
  uniqueName,
  type CliResult,
  type RepoConfig,
  type Stack,
} from './helpers.js';

const execFileP = promisify(execFile);

const ID = uniqueName('faults');
const BIG_VOLUME = `${ID}-big`;
const BIG_MB = 800;
const PASSWORD = 'faults-password-1';
const LOOP = "sh -c 'while :; do sleep 1; done'";
const HEALTHY_LOOP = "sh -c 'touch /tmp/ok; while :; do sleep 1; done'";
const HEALTHCHECK = `    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ok"]
      interval: 1s
      timeout: 2s
      retries: 3
`;

// ---------------------------------------------------------------------------------------------------
// Fixtures

before(async () => {
  await docker(['volume', 'create', '--label', `kdt.faults=${ID}`, BIG_VOLUME]);
  const mountpoint = (await docker(['volume', 'inspect', '-f', '{{.Mountpoint}}', BIG_VOLUME])).stdout.trim();
  const head = spawn('head', ['-c', `${BIG_MB}M`, '/dev/urandom'], { stdio: ['ignore', 'pipe', 'inherit'] });
  if (!head.stdout) throw new Error('head: no stdout');
  await streamPipeline(head.stdout, createWriteStream(path.join(mountpoint, 'big')));
});

after(async () => {
  await docker(['volume', 'rm', '-f', BIG_VOLUME], { allowFail: true });
});

type Env = RepoConfig & {
  /** CLIs started in the background: killed (whole process group) by the cleanup if still running. */
  started: ChildProcess[];
};

/** PIDs of kopia processes started for this state dir (their --config-file lives under it). */
async function kopiaPids(stateDir: string): Promise<number[]> {
  try {
    const { stdout } = await execFileP('pgrep', ['-f', '--', `--config-file=${stateDir}/`]);
    return stdout.split('\n').filter(Boolean).map(Number);
  } catch (err) {
    // pgrep exits 1 when nothing matches.
    if ((err as { code?: unknown }).code === 1) return [];
    throw err;
  }
}

async function killKopiaOf(stateDir: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const pids = await kopiaPids(stateDir);
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone already */
      }
    }
    if (Date.now() > deadline) throw new Error(`kopia still running for ${stateDir}: ${pids.join(', ')}`);
    await sleep(100);
  }
}

/** KDT_DEBUG=1 prints debug lines (and helpers' cli each run's stderr and timing) as test comments. */
function debug(msg: string): void {
  if (process.env.KDT_DEBUG) process.stderr.write(`${msg}\n`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * A repository + config (helpers' makeRepoConfig). Its cleanup first kills what the test left running
 * (started CLIs, kopia processes of its state dir) and clears `chattr +i`.
 */
async function makeEnv(t: TestContext): Promise<Env> {
  const started: ChildProcess[] = [];
  const repo = await makeRepoConfig(t, {
    prefix: 'faults',
    password: PASSWORD,
    beforeRemove: async ({ dir, stateDir }) => {
      for (const c of started) {
        if (c.pid !== undefined && c.exitCode === null && c.signalCode === null) {
          try {
            process.kill(-c.pid, 'SIGKILL');
          } catch {
            /* gone already */
          }
        }
      }
      await killKopiaOf(stateDir);
      await execFileP('chattr', ['-R', '-i', dir]).catch(() => undefined);
    },
  });
  return { ...repo, started };
}

async function init(e: Env): Promise<void> {
  await cliOk(e, ['init']);
}

interface SnapshotInfo {
  id: string;
  source: { path: string };
  incompleteReason?: string;
  tags?: Record<string, string>;
}

/** Every snapshot in the test's repository (real kopia, the connection kopi-docka made). */
async function snapshots(e: Env): Promise<SnapshotInfo[]> {
  const dir = path.join(e.stateDir, 'kopia');
  const configs = (await readdir(dir)).filter((f) => f.endsWith('.config'));
  assert.equal(configs.length, 1, `one kopia config in ${dir}`);
  const { stdout } = await execFileP(
    KOPIA_BIN,
    [
      'snapshot',
      'list',
      '--all',
      '--json',
      '--incomplete',
      `--config-file=${path.join(dir, configs[0] ?? '')}`,
    ],
    {
      env: { ...process.env, KOPIA_PASSWORD: PASSWORD, KOPIA_CHECK_FOR_UPDATES: 'false' },
      maxBuffer: 64 << 20,
    },
  );
  return JSON.parse(stdout) as SnapshotInfo[];
}

/** A Compose `db` service that becomes healthy once started, with the named volume `volume` at `target`. */
function healthyDb(volume: string, target: string): string {
  return `  db:
    image: ${TEST_IMAGE}
    init: true
    command: ${HEALTHY_LOOP}
${HEALTHCHECK}    volumes:
      - ${volume}:${target}
`;
}

/** A one-service stack whose container mounts the big volume (a snapshot of it takes seconds). */
function bigStack(t: TestContext, prefix: string): Promise<Stack> {
  return upStack(t, {
    name: uniqueName(prefix),
    files: {
      'docker-compose.yml': `version: '2.4'
services:
  app:
    image: ${TEST_IMAGE}
    init: true
    command: ${LOOP}
    volumes:
      - big:/big
volumes:
  big:
    external: true
    name: ${BIG_VOLUME}
`,
    },
  });
}

/** A one-service stack with a healthcheck and a small named volume. */
function smallStack(t: TestContext, prefix: string): Promise<Stack> {
  return upStack(t, {
    name: uniqueName(prefix),
    files: {
      'docker-compose.yml': `version: '2.4'
services:
${healthyDb('data', '/data')}volumes:
  data:
`,
    },
  });
}

interface ContainerState {
  name: string;
  status: string;
  health: string;
  startedAt: string;
}

async function containerStates(project: string): Promise<ContainerState[]> {
  const ids = (await docker(['ps', '-aq', '--filter', `label=com.docker.compose.project=${project}`])).stdout
    .split('\n')
    .filter(Boolean);
  assert.ok(ids.length > 0, `no containers for project ${project}`);
  const out = await docker([
    'inspect',
    '-f',
    '{{.Name}}|{{.State.Status}}|{{if .State.Health}}{{.State.Health.Status}}{{end}}|{{.State.StartedAt}}',
    ...ids,
  ]);
  return out.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [name = '', status = '', health = '', startedAt = ''] = l.split('|');
      return { name: name.replace(/^\//, ''), status, health, startedAt };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** Wait until every container of the project runs, and is healthy where it has a healthcheck. */
async function waitInService(project: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const states = await containerStates(project);
    if (states.every((s) => s.status === 'running' && (s.health === '' || s.health === 'healthy'))) return;
    if (Date.now() > deadline) assert.fail(`${project} not in service: ${JSON.stringify(states)}`);
    await sleep(250);
  }
}

/** createStack, then wait until the stack is in service (healthchecks passed). */
async function upStack(
  t: TestContext,
  opts: { name: string; files: Record<string, string> },
): Promise<Stack> {
  const s = await createStack(t, opts);
  await waitInService(s.project);
  return s;
}

/** Every container of the project is running, and healthy where it has a healthcheck. */
async function assertInService(project: string): Promise<ContainerState[]> {
  const states = await containerStates(project);
  for (const s of states) {
    assert.equal(s.status, 'running', `${s.name} is ${s.status}`);
    if (s.health) assert.equal(s.health, 'healthy', `${s.name} is ${s.health}`);
  }
  return states;
}

function journalFile(e: Env): string {
  return path.join(e.stateDir, 'journal.json');
}

interface UnitSummary {
  unit: string;
  status: string;
  error?: string;
  downtimeSec: number;
}
interface RunSummary {
  backupId: string;
  interrupted?: string;
  units: UnitSummary[];
}

function parseSummary(r: CliResult): RunSummary {
  try {
    return JSON.parse(r.stdout) as RunSummary;
  } catch {
    assert.fail(`stdout is not the JSON run summary (exit ${String(r.code)}):\n${r.stdout}\n${r.stderr}`);
  }
}

async function lastHistory(e: Env): Promise<RunSummary> {
  const lines = (await readFile(path.join(e.historyDir, 'history.jsonl'), 'utf8'))
    .split('\n')
    .filter(Boolean);
  const last = lines.at(-1);
  assert.ok(last, 'run history is empty');
  return JSON.parse(last) as RunSummary;
}

/** Start a backup of `project` and resolve once it is snapshotting (containers are down then). */
async function backupUntilSnapshotting(e: Env, project: string): Promise<ReturnType<typeof startCli>> {
  const run = startCli(['backup', '--json', '--unit', project], { env: e.env, timeoutMs: CLI_TIMEOUT_MS });
  e.started.push(run.child);
  await run.waitFor(new RegExp(`${project}: snapshotting volume`), 60_000);
  return run;
}

// ---------------------------------------------------------------------------------------------------

describe('backup faults (real Docker, real kopia)', () => {
  it('one unit failing (repository unwritable mid-run) does not stop the others; every container runs again', async (t) => {
    const e = await makeEnv(t);
    const a = await smallStack(t, 'fa');
    const b = await upStack(t, {
      name: uniqueName('fb'),
      files: {
        'docker-compose.yml': `version: '2.4'
services:
${healthyDb('dbdata', '/var/lib/db')}  app:
    image: ${TEST_IMAGE}
    init: true
    command: ${LOOP}
    depends_on:
      db:
        condition: service_healthy
    volumes:
      - appdata:/appdata
volumes:
  dbdata:
  appdata:
`,
      },
    });
    assert.ok(a.project < b.project, 'unit a must be backed up before unit b');
    await init(e);

    const first = await cli(e, ['backup', '--json', '--unit', a.project, '--unit', b.project]);
    assert.equal(first.code, 0, `first backup failed:\n${first.stdout}\n${first.stderr}`);

    // The hook makes the repository immutable just before unit b is stopped: Kopia can still read it
    // (so pre-flight and policies pass) but every snapshot write fails.
    const hook = path.join(e.dir, 'pre-hook.sh');
    await writeFile(
      hook,
      `#!/bin/sh\nif [ "$KOPI_DOCKA_UNIT_NAME" = "${b.project}" ]; then exec chattr -R +i "${e.repoPath}"; fi\n`,
    );
    await chmod(hook, 0o755);
    await e.configure({ backup: { pre_backup_hook: hook } });
    const bBefore = await assertInService(b.project);

    const second = await cli(e, ['backup', '--json', '--unit', a.project, '--unit', b.project]);
    assert.equal(second.code, 1, `expected exit 1:\n${second.stdout}\n${second.stderr}`);
    const sum = parseSummary(second);
    const ua = sum.units.find((u) => u.unit === a.project);
    const ub = sum.units.find((u) => u.unit === b.project);
    assert.equal(ua?.status, 'ok', `unit a: ${JSON.stringify(ua)}`);
    assert.equal(ub?.status, 'failed', `unit b: ${JSON.stringify(ub)}`);
    assert.ok(ub.error && ub.error.length > 0, 'the failed unit carries a reason');
    assert.match(ub.error, /volume/, 'the reason names the data source that failed');

    await assertInService(a.project);
    const bAfter = await assertInService(b.project);
    // b really was stopped (and started again) in this run: the failure came mid-window.
    for (const [i, s] of bAfter.entries()) {
      assert.notEqual(s.startedAt, bBefore[i]?.startedAt, `${s.name} was not restarted by the run`);
    }
    assert.equal(existsSync(journalFile(e)), false, 'no journal is left');
  });

  it('a unit that does not come back keeps its journal entry while the next unit runs; recover clears it', async (t) => {
    const e = await makeEnv(t);
    // Healthy on its first start, unhealthy on every later one (its fs remembers /started).
    const x = await upStack(t, {
      name: uniqueName('jx'),
      files: {
        'docker-compose.yml': `version: '2.4'
services:
  db:
    image: ${TEST_IMAGE}
    init: true
    command: sh -c 'if [ -e /started ]; then rm -f /tmp/ok; else touch /tmp/ok; fi; touch /started; while :; do sleep 1; done'
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ok"]
      interval: 1s
      timeout: 2s
      retries: 1
    volumes:
      - data:/data
volumes:
  data:
`,
      },
    });
    const y = await smallStack(t, 'jy');
    assert.ok(x.project < y.project, 'unit x must be backed up before unit y');
    await init(e);

    const r = await cli(e, ['backup', '--json', '--unit', x.project, '--unit', y.project]);
    assert.equal(r.code, 1, `expected exit 1:\n${r.stdout}\n${r.stderr}`);
    const sum = parseSummary(r);
    const ux = sum.units.find((u) => u.unit === x.project);
    assert.equal(ux?.status, 'failed', JSON.stringify(ux));
    assert.match(ux.error ?? '', /not back in service/);
    assert.equal(sum.units.find((u) => u.unit === y.project)?.status, 'ok');
    await assertInService(y.project);

    // Unit y's journal entry came and went; unit x's is still there for `recover`.
    const journal = await readFile(journalFile(e), 'utf8');
    assert.match(
      journal,
      new RegExp(escapeRegExp(await composeContainer(x.project, 'db'))),
      'the journal still names the unit that is not back',
    );
    assert.doesNotMatch(journal, new RegExp(y.project));

    const rec = await cli(e, ['recover']);
    assert.equal(rec.code, 0, `recover failed:\n${rec.stdout}\n${rec.stderr}`);
    assert.equal(existsSync(journalFile(e)), false, 'recover clears the journal');
    assert.equal((await containerStates(x.project))[0]?.status, 'running');
  });

  for (const [sig, code] of [
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const) {
    it(`${sig} during a snapshot: kopia stopped, containers started again, exit ${code}, run recorded as interrupted`, async (t) => {
      const e = await makeEnv(t);
      const s = await bigStack(t, sig === 'SIGTERM' ? 'term' : 'int');
      await init(e);

      const run = await backupUntilSnapshotting(e, s.project);
      assert.ok((await kopiaPids(e.stateDir)).length > 0, 'kopia is snapshotting when the signal is sent');
      const t0 = Date.now();
      run.child.kill(sig);
      const r = await run.done;
      debug(`--- backup: exit ${String(r.code)} ${Date.now() - t0} ms after ${sig}\n${r.stderr}`);
      assert.equal(r.code, code, `expected exit ${code}:\n${r.stdout}\n${r.stderr}`);

      await assertInService(s.project);
      assert.deepEqual(await kopiaPids(e.stateDir), [], 'no kopia child is left running');
      assert.equal(existsSync(journalFile(e)), false, 'no journal is left');
      const sum = parseSummary(r);
      assert.equal(sum.interrupted, sig);
      assert.equal(sum.units[0]?.status, 'failed');
      assert.match(
        sum.units[0].error ?? '',
        new RegExp(`interrupted by ${sig}; its containers were started again`),
      );
      const complete = (await snapshots(e)).filter((x) => !x.incompleteReason);
      assert.deepEqual(complete, [], 'the interrupted snapshot was not saved as a complete one');
      const hist = await lastHistory(e);
      assert.equal(hist.backupId, sum.backupId);
      assert.equal(hist.interrupted, sig, 'the history records the run as interrupted');
    });
  }

  it('SIGKILL during a snapshot: containers stay down with a journal; recover and the next backup bring them back', async (t) => {
    const e = await makeEnv(t);
    const s = await bigStack(t, 'kill');
    await init(e);

    const killMidSnapshot = async (): Promise<void> => {
      const run = await backupUntilSnapshotting(e, s.project);
      const pid = run.child.pid;
      assert.ok(pid !== undefined);
      process.kill(pid, 'SIGKILL'); // the CLI only; its kopia runs in its own process group
      const r = await run.done;
      assert.equal(r.signal, 'SIGKILL');
      // Kopia must not outlive the killed CLI: it would go on reading the volume of containers that
      // `recover` starts again. The kernel kills it with the CLI; an orphan would need seconds more.
      await sleep(300);
      const orphans = await kopiaPids(e.stateDir);
      await killKopiaOf(e.stateDir);
      const states = await containerStates(s.project);
      assert.ok(
        states.every((c) => c.status !== 'running'),
        `containers stay stopped: ${JSON.stringify(states)}`,
      );
      const journal = JSON.parse(await readFile(journalFile(e), 'utf8')) as unknown;
      assert.match(JSON.stringify(journal), new RegExp(s.project), 'the journal names the unit');
      const lock = JSON.parse(await readFile(path.join(e.stateDir, 'run.lock'), 'utf8')) as { pid: number };
      assert.equal(lock.pid, pid, 'the dead run left its lock');
      assert.deepEqual(orphans, [], 'kopia children die with the killed CLI');
    };

    await killMidSnapshot();
    const rec = await cli(e, ['recover']);
    assert.equal(rec.code, 0, `recover failed:\n${rec.stdout}\n${rec.stderr}`);
    assert.match(rec.stdout, new RegExp(`started again: ${s.project}`));
    await assertInService(s.project);
    assert.equal(existsSync(journalFile(e)), false, 'recover clears the journal');
    assert.equal(
      existsSync(path.join(e.stateDir, 'staging')),
      false,
      'recover removes the recipe the killed run had staged',
    );

    // Killed again; this time the next backup itself takes over the stale lock and replays the journal.
    await killMidSnapshot();
    const next = await cli(e, ['backup', '--json', '--unit', s.project]);
    assert.equal(next.code, 0, `backup after a SIGKILL failed:\n${next.stdout}\n${next.stderr}`);
    // It names what it started: the stopped app, not an empty list.
    assert.match(
      next.stderr,
      new RegExp(`a previous run died and left a journal: started again: ${s.project}`),
    );
    const unit = parseSummary(next).units[0];
    assert.equal(unit?.status, 'ok');
    // Planned after the replay: the containers it restarted are stopped for the snapshot (cold).
    assert.match(
      next.stderr,
      new RegExp(`stopping ${escapeRegExp(await composeContainer(s.project, 'app'))}`),
    );
    assert.ok(unit.downtimeSec > 0, 'the backup after the replay was cold');
    await assertInService(s.project);
    assert.equal(existsSync(journalFile(e)), false);
    assert.equal(existsSync(path.join(e.stateDir, 'run.lock')), false, 'the lock is released');
  });

  it('a second concurrent backup is refused at once (exit 75, names the running pid)', async (t) => {
    const e = await makeEnv(t);
    const s = await bigStack(t, 'conc');
    await init(e);

    const firstRun = await backupUntilSnapshotting(e, s.project);
    let firstDone = false;
    void firstRun.done.then(() => (firstDone = true));
    const second = await cli(e, ['backup', '--unit', s.project]);
    assert.equal(firstDone, false, 'the second run answered while the first was still running');
    assert.equal(second.code, 75, `expected exit 75:\n${second.stdout}\n${second.stderr}`);
    assert.match(second.stderr, new RegExp(`pid ${String(firstRun.child.pid)}\\b`));

    const first = await firstRun.done;
    assert.equal(first.code, 0, `the first run failed:\n${first.stdout}\n${first.stderr}`);
    assert.equal(parseSummary(first).units[0]?.status, 'ok');
    await assertInService(s.project);
  });

  it('a failing pre-flight (repository never initialised) stops nothing: exit 5 with a hint', async (t) => {
    const e = await makeEnv(t);
    const s = await smallStack(t, 'pref');
    const initial = await assertInService(s.project);

    const r = await cli(e, ['backup', '--unit', s.project]);
    assert.equal(r.code, 5, `expected exit 5:\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /kopi-docka init/);
    assert.deepEqual(await assertInService(s.project), initial, 'no container was restarted');
    assert.equal(existsSync(journalFile(e)), false);
  });

  it('an unknown --unit is refused (exit 2, lists the known units) and stops nothing', async (t) => {
    const e = await makeEnv(t);
    const s = await smallStack(t, 'unk');
    await init(e);
    const initial = await assertInService(s.project);
    const bogus = `${ID}-no-such-unit`;

    const r = await cli(e, ['backup', '--unit', s.project, '--unit', bogus]);
    assert.equal(r.code, 2, `expected exit 2:\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, new RegExp(`unknown unit: ${bogus}`));
    assert.match(r.stderr, new RegExp(`known units: .*${s.project}`));
    assert.deepEqual(await assertInService(s.project), initial, 'no container was restarted');
    assert.equal(existsSync(journalFile(e)), false);
  });
});
