import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ContainerInfo, Unit } from '../../src/core/model.js';
import { containerInfo } from './fixtures.js';
import {
  classifyBind,
  groupUnits,
  hostInternalReason,
  isCompletedOneShot,
  oneShotServices,
  startOrder,
  stopOrder,
  type BindContext,
} from '../../src/core/units.js';

const container = containerInfo;

function member(project: string, service: string, dependsOn: string[] = [], n = 1): ContainerInfo {
  return container(`${project}-${service}-${n}`, {
    composeProject: project,
    composeService: service,
    composeWorkingDir: `/srv/${project}`,
    composeConfigFiles: [`/srv/${project}/docker-compose.yml`],
    dependsOn,
  });
}

function stack(containers: ContainerInfo[]): Unit {
  return {
    name: 's',
    kind: 'stack',
    containers,
    composeWorkingDir: undefined,
    composeConfigFiles: [],
    missingConfigFiles: [],
  };
}

const names = (cs: ContainerInfo[]) => cs.map((c) => c.name);

describe('groupUnits', () => {
  it('makes one unit per project (stopped members included) and one per standalone container, sorted', () => {
    const units = groupUnits([
      container('zeta'),
      member('web', 'db'),
      { ...member('web', 'worker'), running: false, state: 'exited' },
      member('web', 'app'),
      container('alpha', { running: false, state: 'exited' }),
    ]);
    assert.deepEqual(
      units.map((u) => [u.name, u.kind, names(u.containers)]),
      [
        ['alpha', 'standalone', ['alpha']],
        ['web', 'stack', ['web-app-1', 'web-db-1', 'web-worker-1']],
        ['zeta', 'standalone', ['zeta']],
      ],
    );
    const web = units.find((u) => u.name === 'web');
    assert.equal(web?.composeWorkingDir, '/srv/web');
    assert.deepEqual(web?.composeConfigFiles, ['/srv/web/docker-compose.yml']);
    assert.deepEqual(web?.missingConfigFiles, []);
    assert.equal(units.find((u) => u.name === 'alpha')?.composeWorkingDir, undefined);
  });

  it('collects the union of config files of all members in order', () => {
    const a = { ...member('p', 'a'), composeConfigFiles: ['/p/a.yml', '/p/b.yml'] };
    const b = { ...member('p', 'b'), composeConfigFiles: ['/p/a.yml', '/p/c.yml'] };
    assert.deepEqual(groupUnits([b, a])[0]?.composeConfigFiles, ['/p/a.yml', '/p/b.yml', '/p/c.yml']);
  });

  it('gives a standalone container whose name is a project name a distinct unit name', () => {
    const units = groupUnits([container('web'), member('web', 'app')]);
    assert.deepEqual(
      units.map((u) => [u.name, u.kind]),
      [
        ['web', 'stack'],
        ['web.container', 'standalone'],
      ],
    );
  });

  it('never takes a name another container has as its own', () => {
    const units = groupUnits([container('web.container'), container('web'), member('web', 'app')]);
    assert.deepEqual(
      units.map((u) => [u.name, names(u.containers)]),
      [
        ['web', ['web-app-1']],
        ['web.container', ['web.container']],
        ['web.container.2', ['web']],
      ],
    );
    assert.equal(new Set(units.map((u) => u.name)).size, units.length);
  });

  it('returns nothing for no containers', () => {
    assert.deepEqual(groupUnits([]), []);
  });
});

describe('classifyBind', () => {
  const ctx: BindContext = { dockerRootDir: '/var/lib/docker', repositoryPath: '/backup/kopia/repo' };
  const table: [string, 'data' | 'host-internal'][] = [
    ['/srv/app/data', 'data'],
    ['/home/user/vw-data', 'data'],
    ['/etc/nginx/conf.d', 'data'],
    ['/etc/localtimezone', 'data'],
    ['/var/lib/postgres', 'data'],
    ['/var/lib/docker2', 'data'],
    ['/backup/kopia/repository-other', 'data'],
    ['/running', 'data'],
    ['/', 'host-internal'],
    ['//', 'host-internal'],
    ['/proc', 'host-internal'],
    ['/proc/1/ns', 'host-internal'],
    ['/sys/fs/cgroup', 'host-internal'],
    ['/dev', 'host-internal'],
    ['/dev/dri', 'host-internal'],
    ['/run', 'host-internal'],
    ['/run/user/1000', 'host-internal'],
    ['/var/run', 'host-internal'],
    ['/var/run/docker.sock', 'host-internal'],
    ['/run/docker.sock', 'host-internal'],
    ['/home/u/.docker/run/docker.sock', 'host-internal'],
    ['/var/lib/docker', 'host-internal'],
    ['/var/lib/docker/', 'host-internal'],
    ['/var/lib/docker/volumes/x/_data', 'host-internal'],
    ['/var/lib', 'host-internal'],
    ['/var', 'host-internal'],
    ['/backup/kopia/repo', 'host-internal'],
    ['/backup/kopia/repo/p0a/blob', 'host-internal'],
    ['/backup/kopia/repo/../repo', 'host-internal'],
    ['/backup/kopia', 'host-internal'],
    ['/backup', 'host-internal'],
    ['/backup/', 'host-internal'],
    ['/etc/localtime', 'host-internal'],
    ['/etc/timezone', 'host-internal'],
    ['/etc/hosts', 'host-internal'],
    ['/etc/resolv.conf', 'host-internal'],
  ];
  for (const [source, want] of table) {
    it(`${source} → ${want}`, () => assert.equal(classifyBind(source, ctx), want));
  }

  it('honours extra host-internal paths and everything below them', () => {
    const extra = { ...ctx, extraHostInternal: ['/mnt/nas'] };
    assert.equal(classifyBind('/mnt/nas', extra), 'host-internal');
    assert.equal(classifyBind('/mnt/nas/media', extra), 'host-internal');
    assert.equal(classifyBind('/mnt/nas2', extra), 'data');
    assert.equal(classifyBind('/mnt', extra), 'data');
  });

  it('uses the configured Docker root, not a fixed one', () => {
    const other = { dockerRootDir: '/data/docker', repositoryPath: '/repo' };
    assert.equal(classifyBind('/var/lib/docker/volumes', other), 'data');
    assert.equal(classifyBind('/data/docker/volumes', other), 'host-internal');
    assert.equal(classifyBind('/data', other), 'host-internal');
  });

  it('says why a path is host-internal', () => {
    assert.equal(hostInternalReason('/backup', ctx), 'a parent of the Kopia repository');
    assert.equal(hostInternalReason('/backup/kopia/repo/x', ctx), 'inside the Kopia repository');
    assert.equal(hostInternalReason('/srv/data', ctx), undefined);
  });
});

describe('startOrder / stopOrder', () => {
  it('starts dependencies first and stops them last', () => {
    const u = stack([member('p', 'app', ['db', 'cache']), member('p', 'db'), member('p', 'cache')]);
    assert.deepEqual(names(startOrder(u)), ['p-cache-1', 'p-db-1', 'p-app-1']);
    assert.deepEqual(names(stopOrder(u)), ['p-app-1', 'p-db-1', 'p-cache-1']);
  });

  it('follows chains and places every replica of a service before its dependants', () => {
    const u = stack([
      member('p', 'a', ['b']),
      member('p', 'b', ['c']),
      member('p', 'c', [], 1),
      member('p', 'c', [], 2),
    ]);
    assert.deepEqual(names(startOrder(u)), ['p-c-1', 'p-c-2', 'p-b-1', 'p-a-1']);
  });

  it('ignores dependencies on services outside the unit and on itself', () => {
    const u = stack([member('p', 'b', ['ghost']), member('p', 'a', ['a'])]);
    assert.deepEqual(names(startOrder(u)), ['p-a-1', 'p-b-1']);
  });

  it('breaks cycles by name without throwing and still orders the rest', () => {
    const u = stack([
      member('p', 'x', ['y']),
      member('p', 'y', ['x']),
      member('p', 'web', ['x']),
      member('p', 'a', ['web']),
    ]);
    const order = names(startOrder(u));
    assert.equal(order.length, 4);
    // x and y are in a cycle: the smaller name (x) breaks it, then y; web after x; a after web.
    assert.deepEqual(order, ['p-x-1', 'p-y-1', 'p-web-1', 'p-a-1']);
    assert.deepEqual(names(stopOrder(u)), [...order].reverse());
  });

  it('starts what a cycle depends on before the cycle', () => {
    const u = stack([member('p', 'x', ['y']), member('p', 'y', ['x', 'z']), member('p', 'z')]);
    assert.deepEqual(names(startOrder(u)), ['p-z-1', 'p-x-1', 'p-y-1']);
  });

  it('is stable for containers without dependencies (sorted by name)', () => {
    const u = stack([container('c'), container('a'), container('b')]);
    assert.deepEqual(names(startOrder(u)), ['a', 'b', 'c']);
  });

  it('does not mutate the unit', () => {
    const cs = [member('p', 'b', ['a']), member('p', 'a')];
    const u = stack(cs);
    startOrder(u);
    stopOrder(u);
    assert.deepEqual(names(u.containers), ['p-b-1', 'p-a-1']);
  });
});

describe('oneShotServices / isCompletedOneShot', () => {
  const init = (over: Partial<ContainerInfo> = {}): ContainerInfo => ({
    ...member('p', 'init'),
    state: 'exited',
    running: false,
    exitCode: 0,
    ...over,
  });
  const app = {
    ...member('p', 'app', ['db', 'init']),
    dependencies: [
      { service: 'db', condition: 'service_healthy' as const },
      { service: 'init', condition: 'service_completed_successfully' as const },
    ],
  };

  it('are the services depended on with service_completed_successfully, and nothing else', () => {
    assert.deepEqual([...oneShotServices(stack([app, member('p', 'db'), init()]))], ['init']);
    // Without conditions (Compose v1 list form, or not filled in) nothing is a one-shot.
    assert.deepEqual([...oneShotServices(stack([member('p', 'app', ['init']), init()]))], []);
  });

  it('a one-shot is completed only when it exited with code 0', () => {
    const shots = new Set(['init']);
    assert.equal(isCompletedOneShot(init(), shots), true);
    assert.equal(isCompletedOneShot(init({ exitCode: 1 }), shots), false);
    assert.equal(isCompletedOneShot(init({ exitCode: undefined }), shots), false);
    assert.equal(isCompletedOneShot(init({ state: 'running', running: true }), shots), false);
    assert.equal(isCompletedOneShot(init({ state: 'created' }), shots), false);
    assert.equal(
      isCompletedOneShot(init(), new Set()),
      false,
      'an exited service nobody waits for is just stopped',
    );
  });

  it('orders the one-shot between what it needs and what needs it', () => {
    const u = stack([app, { ...member('p', 'init', ['db']) }, member('p', 'db')]);
    assert.deepEqual(names(startOrder(u)), ['p-db-1', 'p-init-1', 'p-app-1']);
  });
});
