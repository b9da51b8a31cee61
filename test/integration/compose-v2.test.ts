/**
 * Compose v2 (`docker compose`, the Go plugin) end to end on the engine DOCKER_HOST names: real stacks
 * brought up with `docker compose`, backed up and restored through the built CLI (dist/main.js) with
 * real Kopia. What v2 does differently from v1 and what kopi-docka must handle for it:
 *
 *  a. `compose.yaml`, `.env`, `env_file:`, an `include:`d file (Compose ≥ 2.20) and a service in an
 *     inactive profile: discovery, the recipe's files, and the profile service reported, not dropped;
 *  b. `depends_on` conditions: `service_healthy` (the restart waits for health) and
 *     `service_completed_successfully` (a one-shot init that has exited 0 is left alone; one that runs
 *     during a backup is waited for until it completes, as Compose would);
 *  c. project names: `-p` other than the directory, `name:` in the file, and a directory name that
 *     v2 normalises — the unit is the project, and backup + restore work;
 *  d. a full round trip: a named volume and a bind mount back byte for byte (sha256), and the stack up
 *     and healthy again from the directory the restore names.
 *
 * Runs only when Compose v2 is the flavour under test (helpers' COMPOSE_FLAVOUR: KD_TEST_COMPOSE, or
 * `docker compose` when it works); KD_TEST_COMPOSE=v1 skips it with that reason. Compose is driven here from argv arrays (never a shell); every project, volume,
 * network and directory a test makes is removed in t.after(), which runs even when the test fails.
 * Every backup is limited with `--unit`, so other containers on the engine are never touched.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type TestContext, describe, it } from 'node:test';
import {
  TEST_IMAGE,
  cli,
  cliOk,
  describeRun,
  docker,
  makeRepoConfig,
  makeTempDir,
  onlyWithCompose,
  registerCleanup,
  uniqueName,
  type RepoConfig,
} from './helpers.js';

// ---------------------------------------------------------------------------------------------------
// Which Compose

/** Skips the file unless Compose v2 is the flavour under test (helpers' KD_TEST_COMPOSE choice). */
const V2 = onlyWithCompose('v2');

/** `docker compose version --short`, e.g. "2.40.3"; undefined when Compose v2 is not under test. */
const COMPOSE_VERSION: string | undefined =
  V2.skip === false
    ? spawnSync('docker', ['compose', 'version', '--short'], { encoding: 'utf8', timeout: 30_000 })
        .stdout.trim()
        .replace(/^v/, '')
    : undefined;

/** `include:` needs Compose 2.20 or later. */
function includeSkip(): string | undefined {
  const m = /^(\d+)\.(\d+)/.exec(COMPOSE_VERSION ?? '');
  if (!m) return undefined;
  const [major, minor] = [Number(m[1]), Number(m[2])];
  return major > 2 || (major === 2 && minor >= 20)
    ? undefined
    : `include: needs Compose ≥ 2.20, have ${COMPOSE_VERSION ?? '?'}`;
}

// ---------------------------------------------------------------------------------------------------
// Processes (argv arrays, never a shell)

interface Exec {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs argv[0] with argv[1..] in cwd; throws with stderr on a non-zero exit unless allowFail. */
function run(
  argv: string[],
  opts: { cwd?: string; allowFail?: boolean; timeoutMs?: number } = {},
): Promise<Exec> {
  const [cmd = 'false', ...args] = argv;
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { cwd: opts.cwd, timeout: opts.timeoutMs ?? 180_000, maxBuffer: 32 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        if (code !== 0 && !opts.allowFail) {
          reject(
            new Error(
              `${argv.join(' ')} failed (exit ${code}): ${(stderr || stdout || err?.message || '').trim()}`,
            ),
          );
          return;
        }
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** `docker compose [-p project] ...args` in cwd. */
function compose(cwd: string, project: string | undefined, args: string[], allowFail = false): Promise<Exec> {
  return run(['docker', 'compose', ...(project === undefined ? [] : ['-p', project]), ...args], {
    cwd,
    allowFail,
  });
}

// ---------------------------------------------------------------------------------------------------
// Stacks

interface V2Stack {
  /** The Compose project name (what the containers are labelled with). */
  project: string;
  /** The project directory (holds compose.yaml). */
  dir: string;
  /** `docker compose` in dir, with `-p project` when the stack was made with -p. */
  compose: (args: string[], allowFail?: boolean) => Promise<Exec>;
}

/** Removes every container, volume and network labelled with the project (compose file or not). */
async function removeProject(project: string): Promise<void> {
  const label = `label=com.docker.compose.project=${project}`;
  const ids = async (kind: string[]): Promise<string[]> =>
    (await docker([...kind, '-q', '--filter', label], { allowFail: true })).stdout
      .split('\n')
      .filter(Boolean);
  const containers = await ids(['ps', '-a']);
  if (containers.length > 0) await docker(['rm', '-f', '-v', ...containers], { allowFail: true });
  const volumes = await ids(['volume', 'ls']);
  if (volumes.length > 0) await docker(['volume', 'rm', '-f', ...volumes], { allowFail: true });
  const networks = await ids(['network', 'ls']);
  if (networks.length > 0) await docker(['network', 'rm', ...networks], { allowFail: true });
}

/**
 * Writes `files` into `<fresh temp dir>/<dirName>` and runs `docker compose up -d` there — with
 * `-p project` when `useP`, else Compose names the project itself (`name:`, or the directory). The
 * cleanup (registered first, so a failed `up` is cleaned too) runs `down -v`, removes everything still
 * labelled with the project (e.g. recreated from a restored directory) and the temp dir.
 */
async function v2Stack(
  t: TestContext,
  opts: { project: string; useP: boolean; dirName: string; files: Record<string, string> },
): Promise<V2Stack> {
  const parent = await makeTempDir('v2');
  const dir = path.join(parent, opts.dirName);
  const p = opts.useP ? opts.project : undefined;
  registerCleanup(t, async () => {
    if (existsSync(dir)) await compose(dir, p, ['down', '-v', '--remove-orphans', '-t', '5'], true);
    await removeProject(opts.project);
    await rm(parent, { recursive: true, force: true });
  });
  for (const [rel, content] of Object.entries(opts.files)) {
    await mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
    await writeFile(path.join(dir, rel), content);
  }
  await compose(dir, p, ['up', '-d']);
  return { project: opts.project, dir, compose: (args, allowFail) => compose(dir, p, args, allowFail) };
}

// ---------------------------------------------------------------------------------------------------
// Container state

interface Member {
  name: string;
  service: string;
  status: string;
  /** "healthy", "starting", … or "none" without a healthcheck. */
  health: string;
  exitCode: number;
  startedAt: string;
  finishedAt: string;
}

interface InspectDoc {
  Name: string;
  Config: { Labels: Record<string, string> | null };
  State: {
    Status: string;
    ExitCode: number;
    StartedAt: string;
    FinishedAt: string;
    Health?: { Status: string } | null;
  };
}

/** The project's containers (running or not) by service. */
async function members(project: string): Promise<Map<string, Member>> {
  const ids = (await docker(['ps', '-aq', '--filter', `label=com.docker.compose.project=${project}`])).stdout
    .split('\n')
    .filter(Boolean);
  const out = new Map<string, Member>();
  if (ids.length === 0) return out;
  for (const c of JSON.parse((await docker(['inspect', ...ids])).stdout) as InspectDoc[]) {
    const service = c.Config.Labels?.['com.docker.compose.service'] ?? '?';
    out.set(service, {
      name: c.Name.replace(/^\//, ''),
      service,
      status: c.State.Status,
      health: c.State.Health?.Status ?? 'none',
      exitCode: c.State.ExitCode,
      startedAt: c.State.StartedAt,
      finishedAt: c.State.FinishedAt,
    });
  }
  return out;
}

function member(all: Map<string, Member>, service: string): Member {
  const m = all.get(service);
  assert.ok(m, `service ${service} has a container: ${[...all.keys()].join(', ')}`);
  return m;
}

/** What a service's container must reach: running and healthy, running (no healthcheck), exited 0. */
type Want = 'healthy' | 'running' | 'exited0';

function reached(m: Member | undefined, want: Want): boolean {
  if (!m) return false;
  if (want === 'exited0') return m.status === 'exited' && m.exitCode === 0;
  if (m.status !== 'running') return false;
  return want === 'running' ? m.health === 'none' : m.health === 'healthy';
}

/** Polls until every service of `want` is in its state; returns the containers then. */
async function waitStates(
  project: string,
  want: Record<string, Want>,
  timeoutMs = 90_000,
): Promise<Map<string, Member>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const all = await members(project);
    if (Object.entries(want).every(([svc, w]) => reached(all.get(svc), w))) return all;
    if (Date.now() > deadline) {
      const seen = [...all.values()].map((m) => `${m.service}: ${m.status}/${m.health}/exit ${m.exitCode}`);
      throw new Error(
        `${project} did not reach ${JSON.stringify(want)} in ${timeoutMs} ms: ${seen.join(', ')}`,
      );
    }
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** The value of `name` in the container's environment (Config.Env), or undefined. */
async function envOf(container: string, name: string): Promise<string | undefined> {
  const env = JSON.parse(
    (await docker(['inspect', '--format', '{{json .Config.Env}}', container])).stdout,
  ) as string[];
  return env.find((e) => e.startsWith(`${name}=`))?.slice(name.length + 1);
}

async function mountpoint(volume: string): Promise<string> {
  return (await docker(['volume', 'inspect', '--format', '{{.Mountpoint}}', volume])).stdout.trim();
}

// ---------------------------------------------------------------------------------------------------
// Data

/** `[relative path, what]` for every entry under root, sorted: `dir`, `link -> target` or the sha256. */
async function sha256Tree(root: string): Promise<[string, string][]> {
  const out: [string, string][] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const abs = path.join(dir, e.name);
      const rel = path.relative(root, abs);
      if (e.isDirectory()) {
        out.push([rel, 'dir']);
        await walk(abs);
      } else if (e.isSymbolicLink()) out.push([rel, `link -> ${await readlink(abs)}`]);
      else
        out.push([
          rel,
          createHash('sha256')
            .update(await readFile(abs))
            .digest('hex'),
        ]);
    }
  };
  await walk(root);
  return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** A small tree with binary content, a nested directory and a symlink, written as root into `root`. */
async function fillData(root: string, seed: string): Promise<void> {
  await mkdir(path.join(root, 'nested', 'deeper'), { recursive: true });
  await writeFile(path.join(root, 'random.bin'), randomBytes(256 * 1024));
  await writeFile(path.join(root, 'nested', 'text.txt'), `${seed}\n`);
  await writeFile(path.join(root, 'nested', 'deeper', 'zeros.bin'), Buffer.alloc(4096));
  await symlink('nested/text.txt', path.join(root, 'link'));
}

// ---------------------------------------------------------------------------------------------------
// The CLI's JSON (only the fields read here)

interface ListedUnit {
  name: string;
  kind: string;
  containers: { name: string; service: string | null; state: string }[];
  composeWorkingDir: string | null;
  composeConfigFiles: string[];
}

interface PlannedUnit {
  unit: string;
  stop: { container: string }[];
  start: { container: string; waitHealthy: boolean; waitCompleted?: boolean }[];
  completed?: { container: string }[];
  recipe: { composeFiles: string[]; referencedFiles?: string[] };
  sources: { type: string; name: string }[];
  warnings: string[];
}

interface RunUnit {
  unit: string;
  status: string;
  error?: string;
  snapshots: { type: string; name: string }[];
  warnings: string[];
}

interface RestoreDoc {
  unit: string;
  workDir: string;
  projectDir: string;
  composeFiles: string[];
  executed: boolean;
  data: { type: string; name: string; target: string }[];
}

function makeRepo(t: TestContext): Promise<RepoConfig> {
  return makeRepoConfig(t, { prefix: 'v2-repo', password: 'compose-v2-test-pw' });
}

async function listUnits(repo: RepoConfig): Promise<{ units: ListedUnit[]; warnings: string[] }> {
  return JSON.parse((await cliOk(repo, ['list', '--units', '--json'])).stdout) as {
    units: ListedUnit[];
    warnings: string[];
  };
}

async function dryRun(repo: RepoConfig, unit: string): Promise<PlannedUnit> {
  const r = await cliOk(repo, ['backup', '--dry-run', '--unit', unit, '--json']);
  const plan = (JSON.parse(r.stdout) as { plan: { units: PlannedUnit[] } }).plan;
  assert.equal(plan.units.length, 1, r.stdout);
  return plan.units[0] as PlannedUnit;
}

/** `backup --unit U --json`: exit 0 and the unit ok; returns the unit's record and the run's stderr. */
async function backup(repo: RepoConfig, unit: string): Promise<{ rec: RunUnit; stderr: string }> {
  const r = await cliOk(repo, ['backup', '--unit', unit, '--json']);
  const rec = (JSON.parse(r.stdout) as { units: RunUnit[] }).units.find((u) => u.unit === unit);
  assert.ok(rec, r.stdout);
  assert.equal(rec.status, 'ok', describeRun(r));
  return { rec, stderr: r.stderr };
}

/** `restore --unit U --backup-id latest --to <fresh dir> --json …extra`. */
async function restore(t: TestContext, repo: RepoConfig, unit: string, extra: string[]): Promise<RestoreDoc> {
  const parent = await makeTempDir('v2-restore');
  registerCleanup(t, () => rm(parent, { recursive: true, force: true }));
  const to = path.join(parent, 'work');
  const r = await cliOk(repo, [
    'restore',
    '--unit',
    unit,
    '--backup-id',
    'latest',
    '--to',
    to,
    '--json',
    ...extra,
  ]);
  const doc = JSON.parse(r.stdout) as RestoreDoc;
  assert.equal(doc.unit, unit);
  assert.equal(doc.projectDir, path.join(to, unit), 'the restored project dir is named after the unit');
  return doc;
}

const LOOP = ['sh', '-c', 'trap "exit 0" TERM; while :; do sleep 1; done'];
const yamlArgv = (argv: string[]) => `[${argv.map((a) => JSON.stringify(a)).join(', ')}]`;

/** A healthcheck on /tmp/ready, probed every second. */
const HEALTHCHECK = [
  '    healthcheck:',
  '      test: ["CMD", "test", "-f", "/tmp/ready"]',
  '      interval: 1s',
  '      timeout: 2s',
  '      retries: 60',
];

// ---------------------------------------------------------------------------------------------------

describe('Compose v2 stacks (docker compose, real engine, real Kopia)', V2, () => {
  it(
    'a. compose.yaml + .env + env_file + include: found, all in the recipe; the inactive-profile service is reported',
    { skip: includeSkip() ?? false },
    async (t) => {
      const repo = await makeRepo(t);
      await cliOk(repo, ['init']);
      const project = uniqueName('v2-inc');
      const s = await v2Stack(t, {
        project,
        useP: true,
        dirName: 'app',
        files: {
          'compose.yaml': [
            'include:',
            '  - path: services/db.yaml',
            'services:',
            '  app:',
            `    image: ${TEST_IMAGE}`,
            '    init: true',
            `    command: ${yamlArgv(LOOP)}`,
            '    env_file: config/app.env',
            '    environment:',
            // `:?` makes Compose refuse to run at all without the .env that sets it.
            '      FROM_DOTENV: ${DOTENV_VALUE:?set in .env}',
            '    depends_on:',
            '      db:',
            '        condition: service_healthy',
            '    volumes:',
            '      - appdata:/data',
            '  debug:',
            `    image: ${TEST_IMAGE}`,
            '    profiles: [debug]',
            `    command: ${yamlArgv(LOOP)}`,
            '    volumes:',
            '      - debugdata:/debug',
            'volumes:',
            '  appdata: {}',
            '  debugdata: {}',
            '',
          ].join('\n'),
          // Relative paths in an included file are relative to its own directory.
          'services/db.yaml': [
            'services:',
            '  db:',
            `    image: ${TEST_IMAGE}`,
            '    init: true',
            `    command: ["sh", "-c", "touch /tmp/ready; trap 'exit 0' TERM; while :; do sleep 1; done"]`,
            '    env_file: db.env',
            ...HEALTHCHECK,
            '    volumes:',
            '      - dbdata:/var/lib/db',
            'volumes:',
            '  dbdata: {}',
            '',
          ].join('\n'),
          'services/db.env': 'DB_SETTING=from-db-env\n',
          'config/app.env': 'APP_SETTING=from-app-env\n',
          '.env': 'DOTENV_VALUE=from-dotenv\n',
        },
      });
      const up = await waitStates(project, { app: 'running', db: 'healthy' });
      assert.equal(up.has('debug'), false, 'the profile service has no container');
      // The fixture does what it claims: Compose read .env, both env_files and the include.
      const app = member(up, 'app').name;
      assert.equal(await envOf(app, 'APP_SETTING'), 'from-app-env');
      assert.equal(await envOf(app, 'FROM_DOTENV'), 'from-dotenv');
      assert.equal(await envOf(member(up, 'db').name, 'DB_SETTING'), 'from-db-env');

      const profileWarning = new RegExp(`service debug has no container \\(in profile debug, not active\\)`);
      const unitWarning = new RegExp(`unit ${project}: service debug has no container \\(in profile debug`);

      // list: the unit, its one config file, and the warning (JSON and on stderr of the table form).
      const listed = await listUnits(repo);
      const unit = listed.units.find((u) => u.name === project);
      assert.ok(unit, `unit ${project} listed: ${listed.units.map((u) => u.name).join(', ')}`);
      assert.equal(unit.kind, 'stack');
      assert.equal(unit.composeWorkingDir, s.dir);
      assert.deepEqual(unit.composeConfigFiles, [path.join(s.dir, 'compose.yaml')]);
      assert.deepEqual(unit.containers.map((c) => c.service).sort(), ['app', 'db']);
      assert.ok(
        listed.warnings.some((w) => unitWarning.test(w)),
        listed.warnings.join('\n'),
      );
      const table = await cliOk(repo, ['list', '--units']);
      assert.match(table.stderr, unitWarning, describeRun(table));

      // The dry-run plan: the same warning, and the files the recipe will hold.
      const planned = await dryRun(repo, project);
      assert.ok(
        planned.warnings.some((w) => profileWarning.test(w)),
        planned.warnings.join('\n'),
      );
      assert.deepEqual(planned.recipe.composeFiles, [path.join(s.dir, 'compose.yaml')]);
      assert.deepEqual(
        [...(planned.recipe.referencedFiles ?? [])].sort(),
        ['.env', 'config/app.env', 'services/db.env', 'services/db.yaml'].map((f) => path.join(s.dir, f)),
      );
      assert.deepEqual(planned.sources.map((x) => x.name).sort(), [
        `${project}_appdata`,
        `${project}_dbdata`,
      ]);
      const dryText = await cliOk(repo, ['backup', '--dry-run', '--unit', project]);
      assert.match(dryText.stdout, /warning: service debug has no container/, describeRun(dryText));

      // The run: the unit is ok, the warning is in its record and on stderr.
      const { rec, stderr } = await backup(repo, project);
      assert.ok(
        rec.warnings.some((w) => profileWarning.test(w)),
        rec.warnings.join('\n'),
      );
      assert.match(stderr, unitWarning);
      assert.deepEqual(
        rec.snapshots
          .filter((x) => x.type === 'volume')
          .map((x) => x.name)
          .sort(),
        [`${project}_appdata`, `${project}_dbdata`],
      );
      await waitStates(project, { app: 'running', db: 'healthy' });

      // The recipe, restored (scripts not run): every file in its place, byte for byte.
      const doc = await restore(t, repo, project, []);
      assert.deepEqual(
        doc.composeFiles,
        [path.join(doc.projectDir, 'compose.yaml')],
        'the include is not an -f',
      );
      for (const f of ['compose.yaml', 'services/db.yaml', 'services/db.env', 'config/app.env', '.env']) {
        assert.equal(
          await readFile(path.join(doc.projectDir, f), 'utf8'),
          await readFile(path.join(s.dir, f), 'utf8'),
          `${f} restored as it was`,
        );
      }
      // Compose accepts the restored project as it is (the .env is required by `:?`).
      const services = await compose(doc.projectDir, project, ['config', '--services']);
      assert.deepEqual(services.stdout.split('\n').filter(Boolean).sort(), ['app', 'db']);
      const withProfile = await compose(doc.projectDir, project, [
        '--profile',
        'debug',
        'config',
        '--services',
      ]);
      assert.ok(withProfile.stdout.split('\n').includes('debug'), withProfile.stdout);
    },
  );

  it('b. depends_on conditions: the restart waits for db health; a completed one-shot init is left alone; a running one is waited for', async (t) => {
    const repo = await makeRepo(t);
    await cliOk(repo, ['init']);
    const project = uniqueName('v2-deps');
    await v2Stack(t, {
      project,
      useP: true,
      dirName: project,
      files: {
        'compose.yaml': [
          'services:',
          '  db:',
          `    image: ${TEST_IMAGE}`,
          '    init: true',
          // Healthy 2 s after each start at the earliest (the container's /tmp outlives a restart,
          // hence the rm): what "waited for health" is measured by.
          `    command: ["sh", "-c", "rm -f /tmp/ready; sleep 2; touch /tmp/ready; trap 'exit 0' TERM; while :; do sleep 1; done"]`,
          ...HEALTHCHECK,
          '    volumes:',
          '      - dbdata:/var/lib/db',
          '  init:',
          `    image: ${TEST_IMAGE}`,
          '    init: true',
          '    restart: "no"',
          // A migration-like one-shot: takes 3 s, writes into the db volume, exits 0.
          '    command: ["sh", "-c", "sleep 3; date >> /var/lib/db/migrated"]',
          '    depends_on:',
          '      db:',
          '        condition: service_healthy',
          '    volumes:',
          '      - dbdata:/var/lib/db',
          '  app:',
          `    image: ${TEST_IMAGE}`,
          '    init: true',
          `    command: ${yamlArgv(LOOP)}`,
          '    depends_on:',
          '      db:',
          '        condition: service_healthy',
          '      init:',
          '        condition: service_completed_successfully',
          '    volumes:',
          '      - appdata:/app',
          'volumes:',
          '  dbdata: {}',
          '  appdata: {}',
          '',
        ].join('\n'),
      },
    });
    const before = await waitStates(project, { db: 'healthy', app: 'running', init: 'exited0' });
    const [db, init, app] = [member(before, 'db'), member(before, 'init'), member(before, 'app')];

    // The plan: db and app stopped and started (db waited for), the completed init left alone.
    const planned = await dryRun(repo, project);
    assert.deepEqual(
      planned.stop.map((x) => x.container),
      [app.name, db.name],
    );
    assert.deepEqual(
      planned.start.map((x) => [x.container, x.waitHealthy, x.waitCompleted ?? false]),
      [
        [db.name, true, false],
        [app.name, false, false],
      ],
    );
    assert.deepEqual(
      (planned.completed ?? []).map((x) => x.container),
      [init.name],
    );
    assert.ok(!planned.warnings.some((w) => w.includes(init.name)), planned.warnings.join('\n'));
    // The text plan says the same: completed, not "stays stopped".
    const planText = await cliOk(repo, ['backup', '--dry-run', '--unit', project]);
    assert.match(planText.stdout, new RegExp(`completed \\(one-shot, left as it is\\): ${init.name}`));
    assert.doesNotMatch(planText.stdout, /stays stopped/);

    // 1. The init has completed: the backup neither starts it nor minds that it is not running.
    const first = await backup(repo, project);
    assert.equal(first.rec.error, undefined);
    assert.ok(
      !first.rec.warnings.some((w) => w.includes(init.name) || /stopped/.test(w)),
      first.rec.warnings.join('\n'),
    );
    assert.ok(!first.stderr.includes(init.name), `the run never mentions ${init.name}:\n${first.stderr}`);
    assert.doesNotMatch(first.stderr, /left stopped/);
    const after1 = await waitStates(project, { db: 'healthy', app: 'running', init: 'exited0' });
    const [db1, init1, app1] = [member(after1, 'db'), member(after1, 'init'), member(after1, 'app')];
    assert.notEqual(db1.startedAt, db.startedAt, 'db was stopped for the backup and started again');
    assert.notEqual(app1.startedAt, app.startedAt, 'app was stopped for the backup and started again');
    assert.equal(init1.name, init.name);
    assert.equal(init1.startedAt, init.startedAt, 'the init was not started again');
    assert.equal(init1.finishedAt, init.finishedAt);
    assert.ok(
      Date.parse(app1.startedAt) >= Date.parse(db1.startedAt) + 2000,
      `app started (${app1.startedAt}) only once db was healthy (started ${db1.startedAt}, healthy ≥ 2 s later)`,
    );

    // 2. The init runs while a backup starts (as after `docker compose up` of a new release): it is
    //    stopped with the others, started again, and app starts only once it has completed (exit 0).
    await docker(['start', init.name]);
    const second = await backup(repo, project);
    assert.equal(second.rec.error, undefined);
    assert.match(
      second.stderr,
      new RegExp(`starting ${init.name}`),
      'the init was running, so it is restarted',
    );
    const after2 = await waitStates(project, { db: 'healthy', app: 'running', init: 'exited0' });
    const [init2, app2] = [member(after2, 'init'), member(after2, 'app')];
    assert.notEqual(init2.startedAt, init1.startedAt);
    assert.ok(
      Date.parse(app2.startedAt) >= Date.parse(init2.finishedAt),
      `app started (${app2.startedAt}) after the init completed (${init2.finishedAt})`,
    );
  });

  for (const variant of ['-p', 'name:', 'directory'] as const) {
    it(`c. project named by ${variant}: the unit is the project; backup and restore work`, async (t) => {
      const repo = await makeRepo(t);
      await cliOk(repo, ['init']);
      const base = uniqueName('v2-name');
      // -p: a directory named otherwise. name: — the same, no -p. directory: v2 lowercases the
      // directory's name and drops what a project name cannot hold ("." here).
      const dirName = variant === 'directory' ? `${base.toUpperCase()}.Stack` : `dir-of-${base}`;
      const project = variant === 'directory' ? `${base}stack` : base;
      const body = [
        'services:',
        '  app:',
        `    image: ${TEST_IMAGE}`,
        '    init: true',
        `    command: ${yamlArgv(LOOP)}`,
        '    volumes:',
        '      - vol:/data',
        'volumes:',
        '  vol: {}',
        '',
      ];
      const s = await v2Stack(t, {
        project,
        useP: variant === '-p',
        dirName,
        files: {
          'compose.yaml': [...(variant === 'name:' ? [`name: ${project}`] : []), ...body].join('\n'),
        },
      });
      const up = await waitStates(project, { app: 'running' });
      const vol = `${project}_vol`;
      await fillData(await mountpoint(vol), variant);
      const data = await sha256Tree(await mountpoint(vol));

      const listed = await listUnits(repo);
      const unit = listed.units.find((u) => u.name === project);
      assert.ok(unit, `unit ${project}: ${listed.units.map((u) => u.name).join(', ')}`);
      assert.equal(unit.composeWorkingDir, s.dir);
      assert.deepEqual(
        unit.containers.map((c) => c.name),
        [member(up, 'app').name],
      );
      assert.ok(!listed.units.some((u) => u.name === dirName || u.name === dirName.toLowerCase()));

      const { rec } = await backup(repo, project);
      assert.deepEqual(rec.snapshots.map((x) => `${x.type}:${x.name}`).sort(), [
        `recipe:${project}`,
        `volume:${vol}`,
      ]);
      await s.compose(['down', '-v', '-t', '5']);
      assert.deepEqual([...(await members(project)).keys()], []);
      assert.equal((await docker(['volume', 'inspect', vol], { allowFail: true })).code, 1, 'volume gone');

      const doc = await restore(t, repo, project, ['--execute', '--yes']);
      assert.equal(doc.executed, true);
      assert.deepEqual(
        doc.data.map((d) => [d.type, d.name]),
        [['volume', vol]],
      );
      assert.deepEqual(await sha256Tree(await mountpoint(vol)), data, 'the volume is back as it was');
      // The restored project comes up as the same project: -p as printed for -p; for name: and the
      // directory form, plain `up` (name: in the file, or the restored directory named after the unit).
      await compose(doc.projectDir, variant === '-p' ? project : undefined, ['up', '-d']);
      const again = await waitStates(project, { app: 'running' });
      assert.equal(member(again, 'app').name, member(up, 'app').name);
      assert.deepEqual(
        await sha256Tree(await mountpoint(vol)),
        data,
        'the restarted stack uses the restored volume',
      );
    });
  }

  it('d. round trip: down -v and data deleted, restore --execute, `docker compose up -d` from the restored dir: healthy and byte-identical', async (t) => {
    const repo = await makeRepo(t);
    await cliOk(repo, ['init']);
    const project = uniqueName('v2-trip');
    const s = await v2Stack(t, {
      project,
      useP: true,
      dirName: project,
      files: {
        'compose.yaml': [
          'services:',
          '  db:',
          `    image: ${TEST_IMAGE}`,
          '    init: true',
          `    command: ["sh", "-c", "touch /tmp/ready; trap 'exit 0' TERM; while :; do sleep 1; done"]`,
          ...HEALTHCHECK,
          '    volumes:',
          '      - dbdata:/var/lib/db',
          '  app:',
          `    image: ${TEST_IMAGE}`,
          '    init: true',
          `    command: ["sh", "-c", "test -s /srv/data/nested/text.txt && touch /tmp/ready; trap 'exit 0' TERM; while :; do sleep 1; done"]`,
          ...HEALTHCHECK,
          '    env_file: app.env',
          '    depends_on:',
          '      db:',
          '        condition: service_healthy',
          '    volumes:',
          '      - ./data:/srv/data',
          'volumes:',
          '  dbdata: {}',
          '',
        ].join('\n'),
        'app.env': 'APP_MODE=restored-from-recipe\n',
        'data/.keep': '',
      },
    });
    const vol = `${project}_dbdata`;
    const bind = path.join(s.dir, 'data');
    await fillData(await mountpoint(vol), 'volume');
    await fillData(bind, 'bind');
    // app's health needs the bind's data: restart it now that the data is there.
    await s.compose(['restart', 'app']);
    await waitStates(project, { db: 'healthy', app: 'healthy' });
    const volBefore = await sha256Tree(await mountpoint(vol));
    const bindBefore = await sha256Tree(bind);

    await backup(repo, project);
    await waitStates(project, { db: 'healthy', app: 'healthy' });
    await s.compose(['down', '-v', '-t', '5']);
    await rm(bind, { recursive: true, force: true });
    assert.equal((await docker(['volume', 'inspect', vol], { allowFail: true })).code, 1, 'volume gone');
    assert.deepEqual([...(await members(project)).keys()], []);

    const doc = await restore(t, repo, project, ['--execute', '--yes']);
    assert.equal(doc.executed, true);
    assert.deepEqual(doc.composeFiles, [path.join(doc.projectDir, 'compose.yaml')]);
    assert.deepEqual(doc.data.map((d) => [d.type, d.target]).sort(), [
      ['bind', path.join(doc.projectDir, 'data')],
      ['volume', vol],
    ]);
    assert.equal(existsSync(bind), false, 'the original directory was not written to');
    // The text form names the restored directory and the v2 command to start it.
    const text = await cli(repo, [
      'restore',
      '--unit',
      project,
      '--backup-id',
      'latest',
      '--to',
      doc.workDir,
    ]);
    assert.equal(text.code, 0, describeRun(text));
    assert.ok(text.stdout.includes(doc.projectDir), text.stdout);
    assert.match(text.stdout, /docker compose .*up -d/);

    // Plain `up -d` from the restored directory: it is named after the unit, so the project is the same.
    await compose(doc.projectDir, undefined, ['up', '-d']);
    const back = await waitStates(project, { db: 'healthy', app: 'healthy' });
    assert.equal(await envOf(member(back, 'app').name, 'APP_MODE'), 'restored-from-recipe');
    assert.deepEqual(await sha256Tree(await mountpoint(vol)), volBefore, `volume ${vol} byte-identical`);
    assert.deepEqual(
      await sha256Tree(path.join(doc.projectDir, 'data')),
      bindBefore,
      'bind ./data byte-identical',
    );
  });
});
