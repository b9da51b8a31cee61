/**
 * Discovery and the Docker adapter against the real daemon (what a real daemon can't be made to do on
 * demand — hang, speak another API range — is in test/unit/docker-api.test.ts, against a fake one).
 *
 * A real Compose project (format 2.4, init: true; brought up by the Compose under test, v1 or v2 — see
 * helpers' COMPOSE_FLAVOUR) with a healthchecked db, an app that depends on it with a named volume, a
 * relative bind and /etc/localtime, a stopped worker; a standalone container; a project whose compose
 * file was deleted. Everything is named kdt-<random> and removed in after(). Container names differ
 * between v1 (`p_db_1`) and v2 (`p-db-1`): they are looked up by label once the stack is up.
 */
import assert from 'node:assert/strict';
import { mkdir, rm, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ContainerStateError, createDocker, type DockerClient } from '../../src/adapters/docker.js';
import { run } from '../../src/adapters/process.js';
import type { ContainerInfo, Unit } from '../../src/core/model.js';
import { classifyBind, startOrder } from '../../src/core/units.js';
import { DockerError } from '../../src/errors.js';
import { containerInfoFromInspect, discoverUnits, type Discovery } from '../../src/pipeline/discover.js';
import {
  REPO_ROOT,
  TEST_IMAGE as IMAGE,
  COMPOSE_FLAVOUR,
  compose,
  composeArgv,
  composeContainers,
  docker as dockerCli,
  escapeRegExp,
  makeTempDir,
  runCli,
  testEnv,
  uniqueName,
  writeConfig,
} from './helpers.js';

const ID = uniqueName('disc');
const PROJECT = ID;
const GONE_PROJECT = `${ID}-gone`;
const SOLO = `${ID}-solo`;
const SOLO_VOL = `${ID}-solovol`;
const SICK = `${ID}-sick`;
const CREATED = `${ID}-created`;
const LOOP = "sh -c 'while :; do sleep 1; done'";

const COMPOSE = `version: '2.4'
services:
  db:
    image: ${IMAGE}
    init: true
    command: sh -c 'touch /tmp/ok; while :; do sleep 1; done'
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ok"]
      interval: 1s
      timeout: 2s
      retries: 3
    volumes:
      - dbdata:/var/lib/db
  app:
    image: ${IMAGE}
    init: true
    command: ${LOOP}
    depends_on:
      db:
        condition: service_healthy
    volumes:
      - appdata:/appdata
      - ./data:/data
      - /etc/localtime:/etc/localtime:ro
  worker:
    image: ${IMAGE}
    init: true
    command: ${LOOP}
volumes:
  dbdata:
  appdata:
`;

const GONE_COMPOSE = `version: '2.4'
services:
  only:
    image: ${IMAGE}
    init: true
    command: ${LOOP}
`;

/** Scratch dir: the repository path given to discovery, the fake daemon's socket. */
let tmp = '';
let stackDir = '';
let goneFile = '';
/** The stack's container names, by service (looked up by label after `up`). */
let ctr: Record<'db' | 'app' | 'worker', string> = { db: '', app: '', worker: '' };
const docker: DockerClient = createDocker();

/**
 * Removes everything this file made, whatever state a failed run left it in: the Compose projects by
 * label (no compose file needed), the rest by name (all carry ID). Never throws.
 */
async function cleanup(): Promise<void> {
  if (stackDir) {
    await run(composeArgv(PROJECT, ['down', '-v', '-t', '1']), {
      cwd: stackDir,
      timeoutMs: 120_000,
    });
  }
  const list = async (args: string[]) =>
    (await dockerCli(args, { allowFail: true })).stdout.split('\n').filter(Boolean);
  const containers = [
    ...(await list(['ps', '-aq', '--filter', `name=${ID}`])),
    ...(await list(['ps', '-aq', '--filter', `label=com.docker.compose.project=${PROJECT}`])),
    ...(await list(['ps', '-aq', '--filter', `label=com.docker.compose.project=${GONE_PROJECT}`])),
  ];
  if (containers.length) await dockerCli(['rm', '-f', '-v', ...new Set(containers)], { allowFail: true });
  const volumes = await list(['volume', 'ls', '-q', '--filter', `name=${ID}`]);
  if (volumes.length) await dockerCli(['volume', 'rm', '-f', ...volumes], { allowFail: true });
  const networks = await list(['network', 'ls', '-q', '--filter', `name=${ID}`]);
  if (networks.length) await dockerCli(['network', 'rm', ...networks], { allowFail: true });
  if (tmp) await rm(tmp, { recursive: true, force: true });
}

// Set up once for the whole file. (helpers' createStack registers its cleanup with node:test's after(),
// which inside a before() hook would run right after that hook, so this file cleans up on its own.)
before(async () => {
  tmp = await makeTempDir('discovery');
  stackDir = path.join(tmp, 'stack');
  await mkdir(path.join(stackDir, 'data'), { recursive: true });
  await writeFile(path.join(stackDir, 'docker-compose.yml'), COMPOSE);
  await compose(stackDir, PROJECT, ['up', '-d']);
  await compose(stackDir, PROJECT, ['stop', '-t', '1', 'worker']);
  ctr = await composeContainers(PROJECT, ['db', 'app', 'worker']);

  // A project whose compose file is gone by the time we look (created, never started).
  const goneDir = path.join(tmp, 'gone');
  await mkdir(goneDir);
  goneFile = path.join(goneDir, 'compose-gone.yml');
  await writeFile(goneFile, GONE_COMPOSE);
  await compose(goneDir, GONE_PROJECT, ['-f', 'compose-gone.yml', 'up', '--no-start']);
  await unlink(goneFile);

  await dockerCli([
    'run',
    '-d',
    '--init',
    '--name',
    SOLO,
    '-v',
    `${SOLO_VOL}:/v`,
    IMAGE,
    'sh',
    '-c',
    'while :; do sleep 1; done',
  ]);
});

after(async () => {
  docker.close();
  await cleanup();
});

function unitNamed(units: Unit[], name: string): Unit {
  const u = units.find((x) => x.name === name);
  assert.ok(u, `unit ${name} not found in ${units.map((x) => x.name).join(', ')}`);
  return u;
}

function containerOf(u: Unit, service: string): ContainerInfo {
  const c = u.containers.find((x) => x.composeService === service);
  assert.ok(c, `service ${service} not in unit ${u.name}`);
  return c;
}

describe('discoverUnits against the real daemon', () => {
  let found: Discovery;
  const repo = () => path.join(tmp, 'repo');

  before(async () => {
    found = await discoverUnits(docker, { repositoryPath: repo() });
  });

  it('reports Docker’s data root', async () => {
    assert.equal(found.dockerRootDir, (await docker.info()).dockerRootDir);
    assert.ok(path.isAbsolute(found.dockerRootDir));
  });

  it('finds the stack with all three containers, the stopped one included', () => {
    const u = unitNamed(found.units, PROJECT);
    assert.equal(u.kind, 'stack');
    assert.deepEqual(u.containers.map((c) => c.composeService).sort(), ['app', 'db', 'worker']);
    assert.equal(u.containers.filter((c) => c.running).length, 2);
    const worker = containerOf(u, 'worker');
    assert.equal(worker.running, false);
    assert.equal(worker.state, 'exited');
    assert.equal(worker.name, ctr.worker);
  });

  it(`resolves the config file (v1: relative, v2: absolute label; under test: ${COMPOSE_FLAVOUR}) against the working dir, and finds it`, async () => {
    // The label really has the form this Compose writes (else the case would test nothing new).
    const labels = (await docker.inspectContainer(ctr.app)).Config.Labels ?? {};
    assert.equal(
      labels['com.docker.compose.project.config_files'],
      COMPOSE_FLAVOUR === 'v1' ? 'docker-compose.yml' : path.join(stackDir, 'docker-compose.yml'),
    );
    const u = unitNamed(found.units, PROJECT);
    assert.equal(u.composeWorkingDir, stackDir);
    assert.deepEqual(u.composeConfigFiles, [path.join(stackDir, 'docker-compose.yml')]);
    assert.deepEqual(u.missingConfigFiles, []);
  });

  it(`reads depends_on (v1: from the compose file, v2: its label; under test: ${COMPOSE_FLAVOUR}) and orders start/stop by it`, async () => {
    const labels = (await docker.inspectContainer(ctr.app)).Config.Labels ?? {};
    assert.equal(
      labels['com.docker.compose.depends_on'],
      COMPOSE_FLAVOUR === 'v1' ? undefined : 'db:service_healthy:false',
    );
    const u = unitNamed(found.units, PROJECT);
    assert.deepEqual(containerOf(u, 'app').dependsOn, ['db']);
    assert.deepEqual(containerOf(u, 'db').dependsOn, []);
    assert.deepEqual(containerOf(u, 'worker').dependsOn, []);
    const order = startOrder(u).map((c) => c.composeService);
    assert.ok(order.indexOf('db') < order.indexOf('app'), `start order ${order.join(',')}`);
  });

  it('reports healthchecks, images and named volumes with their mountpoints', async () => {
    const u = unitNamed(found.units, PROJECT);
    const db = containerOf(u, 'db');
    const app = containerOf(u, 'app');
    assert.equal(db.hasHealthcheck, true);
    assert.equal(app.hasHealthcheck, false);
    assert.equal(app.image, IMAGE);
    assert.match(app.imageId, /^sha256:/);
    const dbVol = db.mounts.find((m) => m.kind === 'volume');
    const appVol = app.mounts.find((m) => m.kind === 'volume');
    assert.equal(dbVol?.name, `${PROJECT}_dbdata`);
    assert.equal(appVol?.name, `${PROJECT}_appdata`);
    assert.equal(appVol?.destination, '/appdata');
    assert.equal(appVol?.driver, 'local');
    assert.equal(appVol?.source, (await docker.inspectVolume(`${PROJECT}_appdata`)).mountpoint);
  });

  it('classifies the relative bind (resolved to an absolute path) as data and /etc/localtime as host-internal', () => {
    const app = containerOf(unitNamed(found.units, PROJECT), 'app');
    const ctx = { dockerRootDir: found.dockerRootDir, repositoryPath: repo() };
    const data = app.mounts.find((m) => m.kind === 'bind' && m.destination === '/data');
    assert.equal(data?.source, path.join(stackDir, 'data'));
    assert.equal(classifyBind(data.source, ctx), 'data');
    const tz = app.mounts.find((m) => m.kind === 'bind' && m.destination === '/etc/localtime');
    assert.equal(tz?.source, '/etc/localtime');
    assert.equal(tz.readOnly, true);
    assert.equal(classifyBind(tz.source, ctx), 'host-internal');
  });

  it('finds the standalone container as its own unit with its volume', () => {
    const u = unitNamed(found.units, SOLO);
    assert.equal(u.kind, 'standalone');
    assert.equal(u.containers.length, 1);
    assert.equal(u.containers[0]?.running, true);
    assert.equal(u.containers[0]?.mounts.find((m) => m.kind === 'volume')?.name, SOLO_VOL);
    assert.deepEqual(u.composeConfigFiles, []);
  });

  it('reports a compose file that no longer exists, as a unit field and a warning', () => {
    const u = unitNamed(found.units, GONE_PROJECT);
    assert.deepEqual(u.missingConfigFiles, [goneFile]);
    assert.equal(u.containers[0]?.running, false);
    assert.ok(
      found.warnings.some((w) => w.includes(goneFile) && w.includes(GONE_PROJECT)),
      found.warnings.join('\n'),
    );
  });

  it('warns when a data bind is skipped because it contains the repository', async () => {
    const d = await discoverUnits(docker, { repositoryPath: path.join(stackDir, 'data', 'repo') });
    assert.ok(
      d.warnings.some(
        (w) => w.includes(path.join(stackDir, 'data')) && w.includes('parent of the Kopia repository'),
      ),
      d.warnings.join('\n'),
    );
    assert.ok(!found.warnings.some((w) => w.includes(PROJECT) && w.includes('Kopia repository')));
  });
});

describe('kopi-docka list --units (CLI, built dist/main.js)', () => {
  let env: Record<string, string> = {};
  before(async () => {
    // The built artifact is what ships: test it, not the sources through a loader. scripts/test.sh
    // builds first too; building here keeps a standalone run of this file from testing a stale dist.
    const build = await run(['npx', 'tsc', '-p', 'tsconfig.build.json'], {
      cwd: REPO_ROOT,
      timeoutMs: 300_000,
    });
    assert.equal(build.code, 0, `build failed:\n${build.stdout}${build.stderrTail}`);
    // Inside the tmp dir this file removes (makeRepoConfig's own cleanup would fire too early here).
    const dir = path.join(tmp, 'cli');
    await mkdir(path.join(dir, 'state'), { recursive: true });
    const configPath = await writeConfig(
      dir,
      `[kopia]\nrepository_path = ${path.join(dir, 'repo')}\npassword = x\n`,
    );
    env = { ...testEnv(path.join(dir, 'state')), KOPI_DOCKA_CONFIG: configPath };
  });

  async function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return runCli(args, { env, timeoutMs: 120_000 });
  }

  interface JsonUnit {
    name: string;
    kind: string;
    containers: {
      name: string;
      service: string | null;
      state: string;
      running: boolean;
      image: string;
      hasHealthcheck: boolean;
      dependsOn: string[];
      volumes: { name: string | null; mountpoint: string; destination: string; driver: string | null }[];
      binds: { source: string; destination: string; classification: string }[];
    }[];
    composeWorkingDir: string | null;
    composeConfigFiles: string[];
    missingConfigFiles: string[];
  }

  it('--json describes the stack and the standalone unit', async () => {
    const res = await cli(['list', '--units', '--json']);
    assert.equal(res.code, 0, res.stderr);
    const doc = JSON.parse(res.stdout) as { units: JsonUnit[]; warnings: string[] };
    const stack = doc.units.find((u) => u.name === PROJECT);
    assert.ok(stack, res.stdout);
    assert.equal(stack.kind, 'stack');
    assert.equal(stack.containers.length, 3);
    assert.equal(stack.containers.filter((c) => c.running).length, 2);
    assert.equal(stack.composeWorkingDir, stackDir);
    assert.deepEqual(stack.composeConfigFiles, [path.join(stackDir, 'docker-compose.yml')]);
    assert.deepEqual(stack.missingConfigFiles, []);
    const app = stack.containers.find((c) => c.service === 'app');
    assert.deepEqual(app?.dependsOn, ['db']);
    assert.deepEqual(
      app?.volumes.map((v) => v.name),
      [`${PROJECT}_appdata`],
    );
    assert.deepEqual(app?.binds.map((b) => [b.source, b.classification]).sort(), [
      ['/etc/localtime', 'host-internal'],
      [path.join(stackDir, 'data'), 'data'],
    ]);
    const db = stack.containers.find((c) => c.service === 'db');
    assert.equal(db?.hasHealthcheck, true);
    assert.deepEqual(
      db?.volumes.map((v) => v.name),
      [`${PROJECT}_dbdata`],
    );
    const solo = doc.units.find((u) => u.name === SOLO);
    assert.equal(solo?.kind, 'standalone');
    assert.equal(solo.containers[0]?.service, null);
    assert.equal(solo.composeWorkingDir, null);
    assert.ok(doc.warnings.some((w) => w.includes(goneFile)));
  });

  it('prints a table by default (list = list --units)', async () => {
    const res = await cli(['list']);
    assert.equal(res.code, 0, res.stderr);
    const lines = res.stdout.split('\n');
    assert.match(lines[0] ?? '', /^UNIT\s+KIND\s+RUNNING\s+VOLUMES\s+BINDS\s+COMPOSE FILE$/);
    const row = lines.find((l) => l.startsWith(`${PROJECT} `))?.split(/\s+/);
    assert.deepEqual(row, [PROJECT, 'stack', '2/3', '2', '1', path.join(stackDir, 'docker-compose.yml')]);
    const solo = lines.find((l) => l.startsWith(`${SOLO} `))?.split(/\s+/);
    assert.deepEqual(solo, [SOLO, 'standalone', '1/1', '1', '0', '-']);
    assert.match(res.stderr, new RegExp(`compose file ${escapeRegExp(goneFile)}`));
  });
});

describe('Docker adapter against the real daemon', () => {
  it('negotiates the API and reads version and info', async () => {
    const v = await docker.version();
    assert.match(v.apiVersion, /^1\.\d+$/);
    assert.ok(v.version.length > 0);
    await docker.ping();
    const info = await docker.info();
    assert.ok(path.isAbsolute(info.dockerRootDir));
  });

  it('stops and starts (304 = already in that state) and waits until healthy', async () => {
    const id = ctr.db;
    assert.equal(await docker.stopContainer(id, 2), true);
    assert.equal((await docker.inspectContainer(id)).State.Running, false);
    assert.equal(await docker.stopContainer(id, 2), false);
    assert.equal(await docker.startContainer(id), true);
    assert.equal(await docker.startContainer(id), false);
    const c = await docker.waitHealthy(id, { timeoutMs: 30_000 });
    assert.equal(c.State.Health?.Status, 'healthy');
    assert.equal((await docker.waitRunning(id, { timeoutMs: 5000 })).State.Running, true);
  });

  it('waitRunning on a container without healthcheck is satisfied by running', async () => {
    const c = await docker.waitHealthy(SOLO, { timeoutMs: 5000 });
    assert.equal(c.State.Running, true);
  });

  it('fails at once for an exited container, naming it and its state', async () => {
    const err = await docker.waitHealthy(ctr.worker, { timeoutMs: 30_000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof ContainerStateError, String(err));
    assert.equal(err.container, ctr.worker);
    assert.equal(err.state, 'exited');
    assert.equal(err.timedOut, false);
    assert.match(err.message, new RegExp(`${escapeRegExp(ctr.worker)} stopped .*state exited`));
    assert.equal(err.exitCode, 6);
  });

  it('fails for an unhealthy container with its last health check output', async () => {
    await dockerCli([
      'run',
      '-d',
      '--init',
      '--name',
      SICK,
      '--health-cmd',
      'echo boom-from-check; false',
      '--health-interval',
      '1s',
      '--health-retries',
      '1',
      IMAGE,
      'sh',
      '-c',
      'while :; do sleep 1; done',
    ]);
    const err = await docker.waitHealthy(SICK, { timeoutMs: 30_000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof ContainerStateError, String(err));
    assert.equal(err.health, 'unhealthy');
    assert.match(err.lastHealthOutput ?? '', /exit 1: boom-from-check/);
    assert.match(err.message, new RegExp(`${SICK} is unhealthy.*boom-from-check`));
  });

  it('times out waiting for a container that never starts, and honours an abort signal', async () => {
    await dockerCli(['create', '--name', CREATED, IMAGE, 'true']);
    const t0 = Date.now();
    const err = await docker.waitRunning(CREATED, { timeoutMs: 1200 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof ContainerStateError, String(err));
    assert.equal(err.timedOut, true);
    assert.equal(err.state, 'created');
    assert.ok(Date.now() - t0 >= 1200 && Date.now() - t0 < 5000);

    const ac = new AbortController();
    const reason = new Error('stop waiting');
    setTimeout(() => ac.abort(reason), 200);
    await assert.rejects(
      docker.waitRunning(CREATED, { timeoutMs: 30_000, signal: ac.signal }),
      (e) => e === reason,
    );
  });

  it('gives the daemon’s message and status code for API errors', async () => {
    const err = await docker.inspectContainer(`${ID}-does-not-exist`).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(err instanceof DockerError);
    assert.equal(err.statusCode, 404);
    assert.match(err.message, /No such container/);
  });

  it('builds ContainerInfo with v2 labels: absolute config files and the depends_on label win', async () => {
    const inspect = await docker.inspectContainer(ctr.app);
    const labels = {
      ...(inspect.Config.Labels ?? {}),
      'com.docker.compose.project.config_files': '/abs/compose.yml,/abs/override.yml',
      'com.docker.compose.depends_on': 'db:service_healthy:false,cache:service_started:true',
    };
    const info = containerInfoFromInspect(
      { ...inspect, Config: { ...inspect.Config, Labels: labels } },
      new Map(),
    );
    assert.deepEqual(info.composeConfigFiles, ['/abs/compose.yml', '/abs/override.yml']);
    assert.deepEqual(info.dependsOn, ['db', 'cache']);
    assert.equal(info.name, ctr.app);
  });
});
