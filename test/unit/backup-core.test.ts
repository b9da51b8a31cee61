import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatBackupId, nextBackupId, parseBackupId } from '../../src/core/backup-id.js';
import {
  REDACTED,
  isSecretName,
  redactArgs,
  redactInspect,
  redactedEnvNames,
} from '../../src/core/redact.js';
import { bindPath, escapeSegment, recipePath, unescapeSegment, volumePath } from '../../src/core/sources.js';
import { buildPlan, selectUnits, type PlanOptions } from '../../src/core/plan.js';
import type { ContainerInfo, MountInfo, Unit } from '../../src/core/model.js';
import { containerInfo, planOptions } from './fixtures.js';
import type { Logger } from '../../src/core/log.js';
import { startContainers, type ContainerControl } from '../../src/pipeline/containers.js';

test('backup_id is UTC seconds without colons and strictly increases within one second', () => {
  const d = new Date('2025-01-31T23:59:59.750Z');
  assert.equal(formatBackupId(d), '2025-01-31T23-59-59Z');
  assert.equal(parseBackupId('2025-01-31T23-59-59Z')?.toISOString(), '2025-01-31T23:59:59.000Z');
  assert.equal(parseBackupId('2025-01-31 23:59:59'), undefined);
  const first = nextBackupId(d);
  const second = nextBackupId(d, first);
  assert.equal(second, '2025-02-01T00-00-00Z');
  assert.ok(second > first);
  // A clock that went backwards still yields a later id.
  assert.equal(nextBackupId(new Date('2025-01-01T00:00:00Z'), second), '2025-02-01T00-00-01Z');
});

test('secret names match the documented pattern and ordinary names do not', () => {
  for (const n of [
    'DB_PASSWORD',
    'POSTGRES_PASS',
    'api_key',
    'SECRET',
    'GITHUB_TOKEN',
    'X_API_URL',
    'AUTH',
    'oauth_client',
  ])
    assert.ok(isSecretName(n), n);
  for (const n of ['PATH', 'HOME', 'TZ', 'LANG', 'POSTGRES_DB', 'PUID', 'HOSTNAME', 'DATA_DIR', 'PORT'])
    assert.ok(!isSecretName(n), n);
});

test('redactInspect redacts env, labels and password-style arguments but keeps everything else', () => {
  const inspect = {
    Id: 'abc',
    Args: ['--password=hunter2', '--port', '5432'],
    Config: {
      Env: ['DB_PASSWORD=hunter2', 'PATH=/usr/bin', 'API_TOKEN=t', 'EMPTY='],
      Labels: { 'com.example.auth-token': 'x', 'com.docker.compose.project': 'p' },
      Cmd: ['server', '--api-key', 'k123', '--name=db'],
      Entrypoint: null,
    },
  };
  const r = redactInspect(inspect) as typeof inspect;
  assert.deepEqual(r.Config.Env, [
    `DB_PASSWORD=${REDACTED}`,
    'PATH=/usr/bin',
    `API_TOKEN=${REDACTED}`,
    'EMPTY=',
  ]);
  assert.equal(r.Config.Labels['com.example.auth-token'], REDACTED);
  assert.equal(r.Config.Labels['com.docker.compose.project'], 'p');
  assert.deepEqual(r.Config.Cmd, ['server', '--api-key', REDACTED, '--name=db']);
  assert.deepEqual(r.Args, [`--password=${REDACTED}`, '--port', '5432']);
  assert.equal(r.Config.Entrypoint, null);
  assert.deepEqual(redactedEnvNames(r), ['DB_PASSWORD', 'API_TOKEN']);
  // The original is untouched.
  assert.equal(inspect.Config.Env[0], 'DB_PASSWORD=hunter2');
  assert.deepEqual(redactArgs(['-p', 'x']), ['-p', 'x']);
});

test('source identities are stable and reversible', () => {
  assert.equal(recipePath('web'), '/recipes/web');
  assert.equal(volumePath('web', 'web_db'), '/volumes/web/web_db');
  assert.equal(bindPath('web', '/srv/app/data/'), '/binds/web/srv%2Fapp%2Fdata');
  assert.equal(unescapeSegment(escapeSegment('a/b%2Fc')), 'a/b%2Fc');
  assert.notEqual(bindPath('u', '/a/b'), bindPath('u', '/a%2Fb'));
});

function mount(p: Partial<MountInfo> & Pick<MountInfo, 'kind' | 'source' | 'destination'>): MountInfo {
  return { name: undefined, readOnly: false, driver: undefined, ...p };
}

// A service of the Compose project `web` in /srv/web.
const container = (p: Partial<ContainerInfo> & Pick<ContainerInfo, 'name'>): ContainerInfo =>
  containerInfo(p.name, {
    composeProject: 'web',
    composeService: p.name,
    composeWorkingDir: '/srv/web',
    composeConfigFiles: ['/srv/web/docker-compose.yml'],
    ...p,
  });

const opts: PlanOptions = planOptions({ stopTimeout: 30 });

test('plan: reverse dependency stop order, only running containers restarted, shared volume once, coverage', () => {
  const db = container({
    name: 'db',
    hasHealthcheck: true,
    stopTimeout: 120,
    mounts: [
      mount({
        kind: 'volume',
        name: 'web_db',
        source: '/var/lib/docker/volumes/web_db/_data',
        destination: '/db',
        driver: 'local',
      }),
      mount({ kind: 'bind', source: '/etc/localtime', destination: '/etc/localtime', readOnly: true }),
    ],
  });
  const app = container({
    name: 'app',
    dependsOn: ['db'],
    mounts: [
      mount({
        kind: 'volume',
        name: 'web_db',
        source: '/var/lib/docker/volumes/web_db/_data',
        destination: '/shared',
        driver: 'local',
      }),
      mount({ kind: 'bind', source: '/srv/web/data', destination: '/data' }),
      mount({ kind: 'tmpfs', source: '', destination: '/run/cache' }),
    ],
  });
  const worker = container({ name: 'worker', state: 'exited', running: false, dependsOn: ['db'] });
  const unit: Unit = {
    name: 'web',
    kind: 'stack',
    containers: [worker, app, db],
    composeWorkingDir: '/srv/web',
    composeConfigFiles: ['/srv/web/docker-compose.yml'],
    missingConfigFiles: [],
  };
  const plan = buildPlan([unit], opts);
  const up = plan.units[0];
  assert.ok(up);
  assert.deepEqual(
    up.stop.map((s) => [s.container, s.timeoutSec]),
    [
      ['app', 30],
      ['db', 120],
    ],
  );
  assert.deepEqual(
    up.start.map((s) => [s.container, s.waitHealthy]),
    [
      ['db', true],
      ['app', false],
    ],
  );
  assert.deepEqual(
    up.sources.map((s) => [s.key, s.kopiaPath, s.usedBy.length]),
    [
      ['bind:/srv/web/data', '/binds/web/srv%2Fweb%2Fdata', 1],
      ['volume:web_db', '/volumes/web/web_db', 2],
    ],
  );
  assert.equal(up.expectedSnapshots, 3);
  assert.deepEqual(
    up.coverage.filter((c) => c.status !== 'backed-up').map((c) => [c.status, c.destination]),
    [
      ['not-protected', '/run/cache'],
      ['host-internal', '/etc/localtime'],
    ],
  );
});

test('plan: a unit without data sources is not stopped at all', () => {
  const unit: Unit = {
    name: 'proxy',
    kind: 'standalone',
    containers: [container({ name: 'proxy', composeProject: undefined })],
    composeWorkingDir: undefined,
    composeConfigFiles: [],
    missingConfigFiles: [],
  };
  const up = buildPlan([unit], opts).units[0];
  assert.deepEqual(up?.stop, []);
  assert.deepEqual(up?.start, []);
  assert.equal(up?.expectedSnapshots, 1);
});

test('selectUnits reports unknown names instead of dropping them', () => {
  const u = (name: string): Unit => ({
    name,
    kind: 'standalone',
    containers: [],
    composeWorkingDir: undefined,
    composeConfigFiles: [],
    missingConfigFiles: [],
  });
  const r = selectUnits([u('a'), u('b')], ['b', 'zz']);
  assert.deepEqual(
    r.selected.map((x) => x.name),
    ['b'],
  );
  assert.deepEqual(r.unknown, ['zz']);
});

function volumeMount(name: string): MountInfo {
  return mount({
    kind: 'volume',
    name,
    source: `/var/lib/docker/volumes/${name}/_data`,
    destination: '/d',
    driver: 'local',
  });
}

test('plan: a completed one-shot is listed as completed, never stopped or started; a running one is waited for', () => {
  const db = container({ name: 'db', hasHealthcheck: true, mounts: [volumeMount('web_db')] });
  const init = container({
    name: 'init',
    state: 'exited',
    running: false,
    exitCode: 0,
    dependsOn: ['db'],
    dependencies: [{ service: 'db', condition: 'service_healthy' }],
    mounts: [volumeMount('web_db')],
  });
  const app = container({
    name: 'app',
    dependsOn: ['db', 'init'],
    dependencies: [
      { service: 'db', condition: 'service_healthy' },
      { service: 'init', condition: 'service_completed_successfully' },
    ],
  });
  const unit: Unit = {
    name: 'web',
    kind: 'stack',
    containers: [app, db, init],
    composeWorkingDir: '/srv/web',
    composeConfigFiles: ['/srv/web/compose.yaml'],
    missingConfigFiles: [],
  };
  const up = buildPlan([unit], opts).units[0];
  assert.ok(up);
  assert.deepEqual(
    up.stop.map((s) => s.container),
    ['app', 'db'],
  );
  assert.deepEqual(
    up.start.map((s) => [s.container, s.waitHealthy, s.waitCompleted]),
    [
      ['db', true, false],
      ['app', false, false],
    ],
  );
  assert.deepEqual(up.completed, [{ container: 'init', id: 'id-init' }]);
  assert.deepEqual(up.warnings, []);

  // The same one-shot, running when the backup starts: stopped and restarted, and waited for.
  const running = { ...init, state: 'running', running: true, exitCode: 0 };
  const up2 = buildPlan([{ ...unit, containers: [app, db, running] }], opts).units[0];
  assert.deepEqual(
    up2?.start.map((s) => [s.container, s.waitHealthy, s.waitCompleted]),
    [
      ['db', true, false],
      ['init', false, true],
      ['app', false, false],
    ],
  );
  assert.deepEqual(up2?.completed, []);

  // An exited one-shot that failed is not "completed" (the plan does not pretend it is fine).
  const failed = { ...init, exitCode: 2 };
  assert.deepEqual(buildPlan([{ ...unit, containers: [app, db, failed] }], opts).units[0]?.completed, []);
});

test('plan: services without a container become warnings; referenced files go to the recipe', () => {
  const unit: Unit = {
    name: 'web',
    kind: 'stack',
    containers: [container({ name: 'app', mounts: [volumeMount('web_app')] })],
    composeWorkingDir: '/srv/web',
    composeConfigFiles: ['/srv/web/compose.yaml'],
    missingConfigFiles: [],
    composeReferencedFiles: ['/srv/web/.env', '/srv/web/db/compose.yaml'],
    composeEnvironmentFiles: [],
    servicesWithoutContainers: [
      { service: 'debug', profiles: ['debug'], scale: undefined },
      { service: 'worker', profiles: [], scale: 0 },
    ],
  };
  const up = buildPlan([unit], opts).units[0];
  assert.deepEqual(up?.warnings, [
    'service debug has no container (in profile debug, not active): it is not running and nothing of it is backed up',
    'service worker has no container (scaled to 0): it is not running and nothing of it is backed up',
  ]);
  assert.deepEqual(up?.recipe.referencedFiles, ['/srv/web/.env', '/srv/web/db/compose.yaml']);
  assert.deepEqual(up?.recipe.environmentFiles, []);
  // A Unit built without the optional fields (older callers) plans as before.
  const bare = buildPlan(
    [{ ...unit, composeReferencedFiles: undefined, servicesWithoutContainers: undefined }],
    opts,
  );
  assert.deepEqual(bare.units[0]?.warnings, []);
  assert.deepEqual(bare.units[0]?.recipe.referencedFiles, []);
});

/** A fake Docker: containers start "running", a one-shot exits `exitAfterPolls` inspections later. */
function fakeControl(oneShot: { id: string; exitCode: number; exitAfterPolls: number }) {
  const calls: string[] = [];
  let polls = 0;
  const control: ContainerControl = {
    stopContainer: (id) => (calls.push(`stop ${id}`), Promise.resolve()),
    startContainer: (id) => (calls.push(`start ${id}`), Promise.resolve()),
    waitRunning: (id) => (calls.push(`running ${id}`), Promise.resolve()),
    waitHealthy: (id) => (calls.push(`healthy ${id}`), Promise.resolve()),
    inspectContainer: (id) => {
      calls.push(`inspect ${id}`);
      if (id !== oneShot.id) return Promise.resolve({ State: { Status: 'running' } });
      polls++;
      return Promise.resolve({
        State:
          polls > oneShot.exitAfterPolls
            ? { Status: 'exited', ExitCode: oneShot.exitCode }
            : { Status: 'running', ExitCode: 0 },
      });
    },
  };
  return { control, calls };
}

const quiet: Logger = { level: 'error', debug() {}, info() {}, warn() {}, error() {} };

test('startContainers: waits for a one-shot to complete before starting what follows', async () => {
  const { control, calls } = fakeControl({ id: 'init', exitCode: 0, exitAfterPolls: 2 });
  const problems = await startContainers(
    control,
    [
      { container: 'db', id: 'db', waitHealthy: true, waitCompleted: false },
      { container: 'init', id: 'init', waitHealthy: false, waitCompleted: true },
      { container: 'app', id: 'app', waitHealthy: false, waitCompleted: false },
    ],
    { startTimeoutSec: 30, log: quiet },
  );
  assert.deepEqual(problems, []);
  assert.deepEqual(calls, [
    'start db',
    'healthy db',
    'start init',
    'inspect init',
    'inspect init',
    'inspect init',
    'start app',
    'running app',
  ]);
});

test('startContainers: a one-shot that exits non-zero is a problem, and the rest still start', async () => {
  const { control, calls } = fakeControl({ id: 'init', exitCode: 3, exitAfterPolls: 0 });
  const problems = await startContainers(
    control,
    [
      { container: 'init', id: 'init', waitHealthy: false, waitCompleted: true },
      { container: 'app', id: 'app', waitHealthy: false, waitCompleted: false },
    ],
    { startTimeoutSec: 30, log: quiet },
  );
  assert.equal(problems.length, 1);
  assert.match(problems[0] ?? '', /^init: one-shot container exited with exit code 3/);
  assert.ok(calls.includes('start app'));
});
