/**
 * Pure logic behind issue #10's classes 2 and 5: where a volume's data lives (driver options), which
 * volumes are anonymous, namespaces shared between containers, and what the plan does with other units'
 * writers, namespace joiners, paused, --rm and crash-looping containers; the size-collapse guard; and
 * the stop/start steps (force-killed stops, containers started behind our back, not waiting for a
 * container that was crash-looping).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Logger } from '../../src/core/log.js';
import type { ContainerInfo, MountInfo, Unit } from '../../src/core/model.js';
import { containerInfo, planOptions } from './fixtures.js';
import {
  COLLAPSE_MIN_BYTES,
  buildPlan,
  shrinkWarning,
  type PlanOptions,
  type UnitPlan,
} from '../../src/core/plan.js';
import {
  isAnonymousVolume,
  namespaceJoins,
  refersTo,
  startOrder,
  startOrderOf,
  volumeBacking,
} from '../../src/core/units.js';
import {
  forceKilledWarning,
  runningAgain,
  startContainers,
  stopContainers,
  type ContainerControl,
} from '../../src/pipeline/containers.js';

const HEX64 = 'c11d21991ddd382e18e8671643860d9045df02c813d624f9440db9ff522b3415';

// Full-length ids, as Docker gives them (messages shorten them).
const container = (name: string, over: Partial<ContainerInfo> = {}): ContainerInfo =>
  containerInfo(name, { id: `${name}-0123456789abcdef`, ...over });

function volume(name: string, over: Partial<MountInfo> = {}): MountInfo {
  return {
    kind: 'volume',
    name,
    source: `/var/lib/docker/volumes/${name}/_data`,
    destination: '/d',
    readOnly: false,
    driver: 'local',
    ...over,
  };
}

function standalone(c: ContainerInfo): Unit {
  return {
    name: c.name,
    kind: 'standalone',
    containers: [c],
    composeWorkingDir: undefined,
    composeConfigFiles: [],
    missingConfigFiles: [],
  };
}

const opts: PlanOptions = planOptions();

/** Plans `unit` with `others` as the rest of the host. */
function plan(unit: Unit, others: Unit[] = []): UnitPlan {
  const up = buildPlan([unit], { ...opts, hostUnits: [unit, ...others] }).units[0];
  assert.ok(up);
  return up;
}

describe('volumeBacking: where a local volume’s data lives', () => {
  it('plain volumes and other drivers are directories', () => {
    assert.deepEqual(volumeBacking('local', {}), { kind: 'directory' });
    assert.deepEqual(volumeBacking('rexray', { type: 'nfs', device: ':/x' }), { kind: 'directory' });
  });
  it('o=bind (or rbind, among other flags) with an absolute device is that directory', () => {
    assert.deepEqual(volumeBacking('local', { type: 'none', o: 'bind', device: '/srv/disk/' }), {
      kind: 'bind',
      device: '/srv/disk',
    });
    assert.deepEqual(volumeBacking('local', { o: 'ro,rbind', device: '/srv/x' }), {
      kind: 'bind',
      device: '/srv/x',
    });
  });
  it('nfs, cifs, block devices and relative binds are mounts; tmpfs is memory', () => {
    assert.deepEqual(volumeBacking('local', { type: 'nfs', o: 'addr=10.0.0.1,rw', device: ':/export' }), {
      kind: 'mount',
      type: 'nfs',
      device: ':/export',
    });
    assert.deepEqual(
      volumeBacking('local', { type: 'cifs', o: 'username=u,password=p', device: '//s/share' }),
      {
        kind: 'mount',
        type: 'cifs',
        device: '//s/share',
      },
    );
    assert.deepEqual(volumeBacking('local', { type: 'ext4', device: '/dev/sdb1' }), {
      kind: 'mount',
      type: 'ext4',
      device: '/dev/sdb1',
    });
    assert.equal(volumeBacking('local', { type: 'none', o: 'bind', device: 'rel/dir' }).kind, 'mount');
    assert.deepEqual(volumeBacking('local', { type: 'tmpfs', device: 'tmpfs', o: 'size=100m' }), {
      kind: 'tmpfs',
    });
  });
});

describe('anonymous volumes and shared namespaces', () => {
  it('a volume is anonymous by the engine’s label or by a generated 64-hex name', () => {
    assert.equal(isAnonymousVolume('data', { 'com.docker.volume.anonymous': '' }), true);
    assert.equal(isAnonymousVolume(HEX64, {}), true);
    assert.equal(isAnonymousVolume('web_data', {}), false);
    assert.equal(isAnonymousVolume(HEX64.toUpperCase(), {}), false);
  });
  it('namespaceJoins reads container: modes; refersTo matches ID, 12+ prefix or name', () => {
    assert.deepEqual(
      namespaceJoins({ NetworkMode: `container:${HEX64}`, PidMode: 'container:db', IpcMode: 'private' }),
      [
        { namespace: 'network', target: HEX64 },
        { namespace: 'pid', target: 'db' },
      ],
    );
    assert.deepEqual(namespaceJoins({ NetworkMode: 'bridge', PidMode: '', IpcMode: 'container:' }), []);
    const c = { id: HEX64, name: 'db' };
    assert.equal(refersTo(HEX64, c), true);
    assert.equal(refersTo(HEX64.slice(0, 12), c), true);
    assert.equal(refersTo(HEX64.slice(0, 6), c), false);
    assert.equal(refersTo('/db', c), true);
  });
  it('startOrder puts a namespace joiner after its owner, without a depends_on', () => {
    const owner = container('zz-owner');
    const joiner = container('aa-joiner', { joins: [{ namespace: 'network', target: owner.id }] });
    const u: Unit = { ...standalone(owner), kind: 'stack', containers: [joiner, owner] };
    assert.deepEqual(
      startOrder(u).map((c) => c.name),
      ['zz-owner', 'aa-joiner'],
    );
  });
  it('startOrderOf matches a depends_on service only within its own project', () => {
    const aApp = container('a1', { composeProject: 'a', composeService: 'app', dependsOn: ['db'] });
    const aDb = container('a9', { composeProject: 'a', composeService: 'db' });
    const bDb = container('b0', { composeProject: 'b', composeService: 'db' });
    // Matched across projects, a1 would also wait for b0 (order a9, b0, a1).
    assert.deepEqual(
      startOrderOf([bDb, aApp, aDb]).map((c) => c.name),
      ['a9', 'a1', 'b0'],
    );
  });
});

describe('plan: data that only exists while mounted (class 2)', () => {
  it('a bind-type volume is read at its device, under its usual Kopia source', () => {
    const c = container('app', {
      mounts: [volume('p_data', { backing: { kind: 'bind', device: '/srv/disk' } })],
    });
    const up = plan(standalone(c));
    assert.equal(up.sources.length, 1);
    assert.equal(up.sources[0]?.hostPath, '/srv/disk');
    assert.equal(up.sources[0]?.device, '/srv/disk');
    assert.equal(up.sources[0]?.kopiaPath, '/volumes/app/p_data');
    assert.deepEqual(up.uncaptured, []);
    assert.deepEqual(up.warnings, []);
  });
  it('a bind-type volume whose device is the repository is host-internal, not read', () => {
    const c = container('app', {
      mounts: [volume('p_data', { backing: { kind: 'bind', device: '/backup/repo/x' } })],
    });
    const up = plan(standalone(c));
    assert.deepEqual(up.sources, []);
    assert.equal(up.coverage[0]?.status, 'host-internal');
  });
  it('an nfs volume is not read, is uncaptured (the unit will fail) and the rest is still planned', () => {
    const c = container('app', {
      mounts: [
        volume('media', {
          destination: '/media',
          backing: { kind: 'mount', type: 'nfs', device: ':/export' },
        }),
        volume('db', { destination: '/db' }),
      ],
    });
    const up = plan(standalone(c));
    assert.deepEqual(
      up.sources.map((s) => s.name),
      ['db'],
    );
    assert.equal(up.uncaptured.length, 1);
    assert.match(
      up.uncaptured[0]?.message ?? '',
      /volume media \(local driver, type nfs, device :\/export\)/,
    );
    assert.match(up.uncaptured[0]?.message ?? '', /mounts it only while a container uses it/);
    assert.match(up.uncaptured[0]?.hint ?? '', /file server/);
    assert.equal(up.coverage.find((e) => e.source === 'media')?.status, 'not-protected');
    // Said once, as the failure — not repeated as a "not protected" warning.
    assert.deepEqual(up.warnings, []);
    assert.deepEqual(
      up.stop.map((s) => s.container),
      ['app'],
    );
  });
  it('a tmpfs-type volume is in memory: not protected, a warning, no failure', () => {
    const c = container('app', { mounts: [volume('scratch', { backing: { kind: 'tmpfs' } })] });
    const up = plan(standalone(c));
    assert.deepEqual(up.uncaptured, []);
    assert.match(up.warnings[0] ?? '', /scratch .* is not protected \(a tmpfs volume is in memory only\)/);
  });
});

describe('plan: leaving containers and relations as found (class 5)', () => {
  it('an anonymous volume is backed up with a warning that says compose up will not reattach it, and how', () => {
    const c = container('p-app-1', {
      composeProject: 'p',
      composeService: 'app',
      mounts: [volume(HEX64, { destination: '/appdata', anonymous: true })],
    });
    const up = plan({ ...standalone(c), name: 'p', kind: 'stack' });
    assert.equal(up.sources[0]?.anonymous, true);
    assert.equal(up.warnings.length, 1);
    assert.match(up.warnings[0] ?? '', /is anonymous/);
    assert.match(up.warnings[0] ?? '', /`compose up` creates a new, empty anonymous volume/);
    assert.match(up.warnings[0] ?? '', /- data:\/appdata/);
    const solo = plan(standalone({ ...c, composeProject: undefined, name: 'solo' }));
    assert.match(solo.warnings[0] ?? '', new RegExp(`-v ${HEX64}:/appdata`));
  });

  it('another unit’s running writer of the same volume is stopped after, and started after, the unit', () => {
    const a = container('a', { mounts: [volume('shared')] });
    const b = container('b', { mounts: [volume('shared')], hasHealthcheck: true });
    const reader = container('r', { mounts: [volume('shared', { readOnly: true })] });
    const idle = container('i', { state: 'exited', running: false, mounts: [volume('shared')] });
    const up = plan(standalone(a), [standalone(b), standalone(reader), standalone(idle)]);
    assert.deepEqual(
      up.stop.map((s) => [s.container, s.otherUnit?.unit]),
      [
        ['b', 'b'],
        ['a', undefined],
      ],
    );
    assert.equal(up.stop[0]?.otherUnit?.why, 'writes to volume shared');
    assert.deepEqual(
      up.start.map((s) => [s.container, s.waitHealthy]),
      [
        ['a', false],
        ['b', true],
      ],
    );
    assert.equal(up.warnings.length, 1);
    assert.match(up.warnings[0] ?? '', /volume shared is also written by b of unit b: b is stopped/);
  });

  it('a bind inside the unit’s bind is a writer; a bind of a parent directory is only a warning', () => {
    const a = container('a', {
      mounts: [
        {
          kind: 'bind',
          name: undefined,
          source: '/srv/a',
          destination: '/a',
          readOnly: false,
          driver: undefined,
        },
      ],
    });
    const inside = container('in', {
      mounts: [
        {
          kind: 'bind',
          name: undefined,
          source: '/srv/a/up',
          destination: '/u',
          readOnly: false,
          driver: undefined,
        },
      ],
    });
    const parent = container('par', {
      mounts: [
        {
          kind: 'bind',
          name: undefined,
          source: '/srv',
          destination: '/srv',
          readOnly: false,
          driver: undefined,
        },
      ],
    });
    const agent = container('agent', {
      mounts: [
        {
          kind: 'bind',
          name: undefined,
          source: '/',
          destination: '/host',
          readOnly: false,
          driver: undefined,
        },
      ],
    });
    const up = plan(standalone(a), [standalone(inside), standalone(parent), standalone(agent)]);
    assert.deepEqual(up.stop.map((s) => s.container).sort(), ['a', 'in']);
    assert.ok(
      up.warnings.some((w) => /par \(unit par\) binds \/srv read-write/.test(w)),
      up.warnings.join('\n'),
    );
    assert.ok(!up.warnings.some((w) => w.includes('agent')), up.warnings.join('\n'));
  });

  it('paused and --rm writers of another unit are not stopped; the warning says so', () => {
    const a = container('a', { mounts: [volume('shared')] });
    const paused = container('p', { state: 'paused', paused: true, mounts: [volume('shared')] });
    const rm = container('r', { autoRemove: true, mounts: [volume('shared')] });
    const up = plan(standalone(a), [standalone(paused), standalone(rm)]);
    assert.deepEqual(
      up.stop.map((s) => s.container),
      ['a'],
    );
    assert.ok(up.warnings.some((w) => /by p \(unit p\), which is paused: it is left paused/.test(w)));
    assert.ok(up.warnings.some((w) => /by r \(unit r\), started with --rm: .* keeps running/.test(w)));
  });

  it('containers of other units sharing a stopped container’s namespaces stop before it and start after it', () => {
    const a = container('a', { mounts: [volume('data')] });
    const net = container('net', { joins: [{ namespace: 'network', target: a.id }] });
    // Joins net, which is itself only stopped because it joins a: found transitively.
    const pid = container('aaa-pid', { joins: [{ namespace: 'pid', target: net.name }] });
    const unrelated = container('u', { joins: [{ namespace: 'network', target: 'elsewhere' }] });
    const up = plan(standalone(a), [standalone(net), standalone(pid), standalone(unrelated)]);
    assert.deepEqual(
      up.stop.map((s) => s.container),
      ['aaa-pid', 'net', 'a'],
    );
    assert.deepEqual(
      up.start.map((s) => s.container),
      ['a', 'net', 'aaa-pid'],
    );
    assert.equal(up.stop[1]?.otherUnit?.why, 'shares the network namespace of a');
    assert.ok(up.warnings.some((w) => /aaa-pid of unit aaa-pid shares the pid namespace of net/.test(w)));
  });

  it('a paused container is left paused, a --rm one running, a crash-looping one restarted without a wait', () => {
    const paused = container('p', { state: 'paused', paused: true, mounts: [volume('d1')] });
    const rm = container('r', { autoRemove: true, mounts: [volume('d2')] });
    const looping = container('l', {
      state: 'restarting',
      restarting: true,
      hasHealthcheck: true,
      mounts: [volume('d3')],
    });
    const u: Unit = { ...standalone(paused), name: 's', kind: 'stack', containers: [paused, rm, looping] };
    const up = plan(u);
    assert.deepEqual(
      up.stop.map((s) => s.container),
      ['l'],
    );
    assert.deepEqual(
      up.start.map((s) => [s.container, s.noWait, s.waitHealthy]),
      [['l', true, false]],
    );
    assert.deepEqual(
      up.leftAsIs.map((x) => [x.container, x.why]),
      [
        ['p', 'paused'],
        ['r', 'started with --rm'],
      ],
    );
    assert.ok(up.warnings.some((w) => /p is paused: it is left paused/.test(w)));
    assert.ok(up.warnings.some((w) => /r was started with --rm: .*snapshotted live/.test(w)));
    assert.ok(up.warnings.some((w) => /l is restarting \(crash loop\)/.test(w)));
  });

  it('without other units the plan is as before (default hostUnits = the planned units)', () => {
    const a = container('a', { mounts: [volume('shared')] });
    const b = container('b', { mounts: [volume('shared')] });
    // b is planned too: when a is backed up, b (its own unit) is still a writer of a's volume.
    const p = buildPlan([standalone(a), standalone(b)], opts);
    assert.deepEqual(
      p.units[0]?.stop.map((s) => s.container),
      ['b', 'a'],
    );
    const alone = buildPlan([standalone(a)], opts);
    assert.deepEqual(
      alone.units[0]?.stop.map((s) => s.container),
      ['a'],
    );
  });
});

describe('shrinkWarning: size collapse since the previous restore point', () => {
  const prev = { sizeBytes: 5 * COLLAPSE_MIN_BYTES, files: 40, format: 'dir' as const, backupId: 'B1' };
  it('empty now after files before is a warning naming the restore point', () => {
    const w = shrinkWarning('volume v', prev, { sizeBytes: 0, files: 0, format: 'dir' });
    assert.match(w ?? '', /^volume v is EMPTY now but held 5\.0 MiB in 40 file\(s\) in restore point B1/);
  });
  it('below 10 % of at least 1 MiB is a warning; 10 % or more is not', () => {
    assert.match(
      shrinkWarning('volume v', prev, { sizeBytes: 100, files: 1, format: 'dir' }) ?? '',
      /shrank to 100 B in 1 file\(s\) from 5\.0 MiB in 40 file\(s\).*below 10 %/,
    );
    assert.equal(
      shrinkWarning('v', prev, { sizeBytes: prev.sizeBytes / 10, files: 3, format: 'dir' }),
      undefined,
    );
  });
  it('small sources, a first backup and a change of format are not compared', () => {
    const small = { sizeBytes: COLLAPSE_MIN_BYTES - 1, files: 2, format: 'dir' as const };
    assert.equal(shrinkWarning('v', small, { sizeBytes: 1, files: 1, format: 'dir' }), undefined);
    assert.equal(shrinkWarning('v', undefined, { sizeBytes: 0, files: 0, format: 'dir' }), undefined);
    assert.equal(shrinkWarning('v', prev, { sizeBytes: 10240, files: 1, format: 'tar' }), undefined);
    // tar: only the byte rule (the stream is one file whatever it holds).
    assert.match(
      shrinkWarning(
        'v',
        { ...prev, format: 'tar', files: 1 },
        { sizeBytes: 10240, files: 1, format: 'tar' },
      ) ?? '',
      /shrank to 10\.0 KiB from 5\.0 MiB/,
    );
  });
});

const quiet: Logger = { level: 'error', debug() {}, info() {}, warn() {}, error() {} };

/** A fake Docker whose containers end with `exit` codes; `running` ids look running when inspected. */
function fakeDocker(exit: Record<string, number>, running: Set<string> = new Set()) {
  const calls: string[] = [];
  const control: ContainerControl = {
    stopContainer: (id) => (calls.push(`stop ${id}`), Promise.resolve(id !== 'gone')),
    startContainer: (id) => (calls.push(`start ${id}`), Promise.resolve(true)),
    waitRunning: (id) => (calls.push(`running ${id}`), Promise.resolve()),
    waitHealthy: (id) => (calls.push(`healthy ${id}`), Promise.resolve()),
    inspectContainer: (id) =>
      Promise.resolve({
        State: running.has(id)
          ? { Status: 'running', Running: true, ExitCode: 0 }
          : { Status: 'exited', Running: false, ExitCode: exit[id] ?? 0 },
      }),
  };
  return { control, calls };
}

describe('stop and start steps', () => {
  it('a stop that ends in exit code 137 is recorded as force-killed; 143 and a 304 are not', async () => {
    const { control } = fakeDocker({ k: 137, t: 143, gone: 137 });
    const out = await stopContainers(
      control,
      [
        { container: 'k', id: 'k', timeoutSec: 3 },
        { container: 't', id: 't', timeoutSec: 3, otherUnit: { unit: 'o', why: 'writes to volume v' } },
        { container: 'gone', id: 'gone', timeoutSec: 3 },
      ],
      quiet,
    );
    assert.equal(out.error, undefined);
    assert.deepEqual(
      out.records.map((r) => [r.container, r.exitCode, r.forceKilled, r.otherUnit]),
      [
        ['k', 137, true, undefined],
        ['t', 143, false, 'o'],
        ['gone', undefined, false, undefined],
      ],
    );
    const w = forceKilledWarning({ ...out.records[0]!, seconds: 3.1 });
    assert.match(
      w,
      /^k did not exit within its stop timeout of 3s and was killed \(SIGKILL, exit code 137, after 3\.1s\)/,
    );
    assert.match(w, /did not shut down cleanly/);
  });

  it('runningAgain names the stopped containers something else started', async () => {
    const { control } = fakeDocker({}, new Set(['b']));
    const again = await runningAgain(control, [
      { container: 'a', id: 'a', timeoutSec: 1 },
      { container: 'b', id: 'b', timeoutSec: 1 },
    ]);
    assert.deepEqual(
      again.map((s) => s.container),
      ['b'],
    );
  });

  it('a container that was crash-looping is started and not waited for', async () => {
    const { control, calls } = fakeDocker({});
    const problems = await startContainers(
      control,
      [
        { container: 'l', id: 'l', waitHealthy: false, waitCompleted: false, noWait: true },
        { container: 'b', id: 'b', waitHealthy: true, waitCompleted: false },
      ],
      { startTimeoutSec: 5, log: quiet },
    );
    assert.deepEqual(problems, []);
    assert.deepEqual(calls, ['start l', 'start b', 'healthy b']);
  });
});
