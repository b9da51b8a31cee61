/**
 * Issue #10, against real Docker and real Kopia — "never report ok for data it did not capture", the
 * classes about units (field cases ../shared/field-cases/02, 05, 06, 10 and their siblings):
 *
 *  - data that only exists while mounted: a bind-type `local` volume (driver_opts type none, o bind,
 *    device DIR) is read at its device; an NFS volume fails the unit clearly while the rest is backed
 *    up; a source that is empty once its containers stop is refused; a source that collapsed since the
 *    previous restore point is a loud warning (text summary and --json);
 *  - a backup leaves every container and relation as it found them: anonymous volumes are named as such
 *    (plan, run, manifest); another unit's writer of a shared volume is stopped and started with the
 *    unit; a force-killed stop is reported and marked in the restore point; containers of other units
 *    sharing a namespace are restarted after the owner; paused, --rm and crash-looping containers are
 *    left as they were; a container started behind our back during the snapshot is reported.
 *
 * Standalone containers (units named after them) or Compose stacks (helpers' createStack), so every
 * case runs on both engines and both Compose flavours. Every run is limited with --unit.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, readlink, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import {
  KOPIA_BIN,
  TEST_IMAGE,
  cli,
  cliOk,
  composeContainer,
  createStack,
  describeRun,
  docker,
  makeRepoConfig,
  makeTempDir,
  registerCleanup,
  uniqueName,
  type CliResult,
  type RepoConfig,
  type RepoSections,
} from './helpers.js';

const execFileP = promisify(execFile);
const LOOP = 'while :; do sleep 1; done';

async function repoFor(t: TestContext, sections: RepoSections = {}): Promise<RepoConfig> {
  const repo = await makeRepoConfig(t, { prefix: 'units', sections });
  await cliOk(repo, ['init']);
  return repo;
}

/** `docker run -d --network none --name <name> <args…>`, removed (with its anonymous volumes) after the test. */
async function run(t: TestContext, name: string, args: string[], command = LOOP): Promise<void> {
  registerCleanup(t, async () => {
    await docker(['rm', '-f', '-v', name], { allowFail: true });
  });
  await docker(['run', '-d', '--network', 'none', '--name', name, ...args, TEST_IMAGE, 'sh', '-c', command]);
}

/** A named volume, removed after the test (with whatever container still uses it: cleanups run in order). */
async function volume(t: TestContext, name: string, opts: string[] = []): Promise<string> {
  registerCleanup(t, async () => {
    const users = (await docker(['ps', '-aq', '--filter', `volume=${name}`], { allowFail: true })).stdout
      .split('\n')
      .filter(Boolean);
    if (users.length > 0) await docker(['rm', '-f', '-v', ...users], { allowFail: true });
    await docker(['volume', 'rm', '-f', name], { allowFail: true });
  });
  await docker(['volume', 'create', ...opts, name]);
  return name;
}

async function state(container: string, format: string): Promise<string> {
  return (await docker(['inspect', '-f', format, container])).stdout.trim();
}

const text = (r: CliResult) => r.stdout + r.stderr;

interface UnitJson {
  unit: string;
  status: string;
  error?: string;
  warnings: string[];
  snapshots: { type: string; name: string; id: string }[];
}

function unitOf(r: CliResult, unit: string): UnitJson {
  const doc = JSON.parse(r.stdout) as { units: UnitJson[] };
  const u = doc.units.find((x) => x.unit === unit);
  assert.ok(u, `no unit ${unit} in ${r.stdout}`);
  return u;
}

interface PlanJson {
  plan: {
    units: {
      unit: string;
      stop: { container: string; otherUnit?: { unit: string; why: string } }[];
      sources: { name: string; hostPath: string; device?: string; anonymous?: boolean }[];
      uncaptured: { source: string; message: string }[];
      leftAsIs: { container: string; why: string }[];
      warnings: string[];
    }[];
  };
}

async function dryRunJson(repo: RepoConfig, unit: string): Promise<PlanJson['plan']['units'][number]> {
  const r = await cliOk(repo, ['backup', '--dry-run', '--json', '--unit', unit]);
  const u = (JSON.parse(r.stdout) as PlanJson).plan.units.find((x) => x.unit === unit);
  assert.ok(u, r.stdout);
  return u;
}

// ---------------------------------------------------------------------------------------------------
// Kopia, read directly (never through kopi-docka's own code)

interface Snap {
  id: string;
  source: { path: string };
  rootEntry: { obj: string; summ?: { size: number; files: number } };
  tags?: Record<string, string>;
}

async function kopia(repo: RepoConfig, args: string[]): Promise<string> {
  const shown = JSON.parse((await cliOk(repo, ['config', 'show', '--json'])).stdout) as {
    kopiaConfigFile: string;
  };
  const { stdout } = await execFileP(
    KOPIA_BIN,
    [...args, `--config-file=${shown.kopiaConfigFile}`, `--log-dir=${path.join(repo.dir, 'kopia-logs')}`],
    {
      env: { ...process.env, KOPIA_PASSWORD: repo.password, KOPIA_CHECK_FOR_UPDATES: 'false' },
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  return stdout;
}

async function snapsOf(repo: RepoConfig, unit: string): Promise<Snap[]> {
  const all = JSON.parse(await kopia(repo, ['snapshot', 'list', '--json', '--all'])) as Snap[];
  return all.filter((s) => s.tags?.['tag:unit'] === unit);
}

/** The manifest.json of the unit's only recipe snapshot. */
async function manifestOf(
  repo: RepoConfig,
  unit: string,
): Promise<Record<string, unknown> & { recipe: Snap }> {
  const recipes = (await snapsOf(repo, unit)).filter((s) => s.tags?.['tag:type'] === 'recipe');
  assert.equal(recipes.length, 1, `recipes of ${unit}: ${JSON.stringify(recipes)}`);
  const recipe = recipes[0] as Snap;
  const m = JSON.parse(await kopia(repo, ['show', `${recipe.rootEntry.obj}/manifest.json`])) as Record<
    string,
    unknown
  >;
  return { ...m, recipe };
}

// ---------------------------------------------------------------------------------------------------

describe('class 2: data that only exists while mounted', () => {
  it('a bind-type local volume (driver_opts type none, o bind, device DIR) is read at its device: the data is in the snapshot', async (t) => {
    const repo = await repoFor(t);
    const disk = await makeTempDir('disk');
    registerCleanup(t, () => rm(disk, { recursive: true, force: true }));
    await writeFile(path.join(disk, 'db.sqlite'), 'the only copy of this data\n');
    const s = await createStack(t, {
      files: {
        'docker-compose.yml': [
          'version: "2.4"',
          'services:',
          '  app:',
          `    image: ${TEST_IMAGE}`,
          '    init: true',
          `    command: sh -c '${LOOP}'`,
          '    volumes: [data:/data]',
          'volumes:',
          '  data:',
          '    driver: local',
          `    driver_opts: { type: none, o: bind, device: ${disk} }`,
          '',
        ].join('\n'),
      },
    });
    const vol = `${s.project}_data`;
    registerCleanup(t, async () => {
      await docker(['volume', 'rm', '-f', vol], { allowFail: true });
    });

    await cliOk(repo, ['backup', '--unit', s.project]);

    const snap = (await snapsOf(repo, s.project)).find((x) => x.tags?.['tag:volume'] === vol);
    assert.ok(snap);
    assert.equal(snap.rootEntry.summ?.files, 1, JSON.stringify(snap));
    assert.equal(
      await kopia(repo, ['show', `${snap.rootEntry.obj}/db.sqlite`]),
      'the only copy of this data\n',
    );
    // The plan says where it reads: the device, not the (now empty) Mountpoint.
    const planned = await dryRunJson(repo, s.project);
    assert.deepEqual(
      planned.sources.map((x) => [x.name, x.hostPath, x.device]),
      [[vol, disk, disk]],
    );
    const m = await manifestOf(repo, s.project);
    assert.deepEqual(m.volumes, [
      {
        name: vol,
        anonymous: false,
        device: disk,
        usedBy: [
          { container: await composeContainer(s.project, 'app'), destination: '/data', readOnly: false },
        ],
      },
    ]);
  });

  it('an NFS volume fails the unit with a clear message and hint; the rest of the unit is backed up', async (t) => {
    const repo = await repoFor(t);
    const name = uniqueName('nfs');
    // No NFS server is needed: the container is only created, so Docker never mounts the share —
    // exactly what its Mountpoint looks like once a backup has stopped a running one.
    const nfs = await volume(t, `${name}-media`, [
      '--driver',
      'local',
      '--opt',
      'type=nfs',
      '--opt',
      'o=addr=127.0.0.1,ro',
      '--opt',
      'device=:/export/media',
    ]);
    const plain = await volume(t, `${name}-db`);
    registerCleanup(t, async () => {
      await docker(['rm', '-f', name], { allowFail: true });
    });
    await docker([
      'create',
      '--name',
      name,
      '-v',
      `${nfs}:/media`,
      '-v',
      `${plain}:/db`,
      TEST_IMAGE,
      'sh',
      '-c',
      LOOP,
    ]);

    const r = await cli(repo, ['backup', '--json', '--unit', name]);
    assert.equal(r.code, 1, describeRun(r));
    const u = unitOf(r, name);
    assert.equal(u.status, 'failed');
    assert.match(
      u.error ?? '',
      /type nfs.*is not backed up: Docker mounts it only while a container uses it/,
    );
    assert.match(u.error ?? '', /back it up where it lives \(on the file server\)/);
    // The plain volume and the recipe are there: a restore point of everything that could be read.
    assert.deepEqual(u.snapshots.map((x) => [x.type, x.name]).sort(), [
      ['recipe', name],
      ['volume', plain],
    ]);
    const m = await manifestOf(repo, name);
    assert.equal((m.uncaptured as { source: string }[])[0]?.source, nfs);
    // The dry-run plans the same (run after the backup: the containers are as they were).
    const dry = await cliOk(repo, ['backup', '--dry-run', '--unit', name]);
    assert.match(
      dry.stdout,
      /NOT CAPTURED \(the unit will be reported failed\): volume .*-media \(local driver, type nfs, device :\/export\/media\)/,
    );
  });

  it('a source that had data while its container ran and is empty once stopped is refused, not stored empty', async (t) => {
    const repo = await repoFor(t);
    const name = uniqueName('vanish');
    const v = await volume(t, `${name}-data`);
    // Stands for any data that is there only while the container runs (here: removed at its shutdown).
    await run(
      t,
      name,
      ['--init', '-v', `${v}:/d`],
      "echo x > /d/a; echo y > /d/b; trap 'rm -f /d/*; exit 0' TERM; while :; do sleep 1 & wait; done",
    );

    const r = await cli(repo, ['backup', '--unit', name]);
    assert.equal(r.code, 1, describeRun(r));
    assert.match(
      text(r),
      /held 2 file\(s\) .* while its containers ran and is empty now that they are stopped/,
    );
    assert.match(text(r), /docs\/data-safety\.md/);
    assert.equal(await state(name, '{{.State.Running}}'), 'true');
    // No recipe: the restore point stays incomplete, never mistaken for a good one; no empty snapshot.
    const snaps = await snapsOf(repo, name);
    assert.deepEqual(snaps, [], JSON.stringify(snaps));
  });

  it('a source that collapsed since the previous restore point is a loud warning in the summary and in --json', async (t) => {
    const repo = await repoFor(t);
    const name = uniqueName('shrink');
    const v = await volume(t, `${name}-data`);
    await run(t, name, ['--init', '-v', `${v}:/d`]);
    await docker(['exec', name, 'sh', '-c', 'head -c 3000000 /dev/urandom > /d/big; echo small > /d/small']);
    const first = await cliOk(repo, ['backup', '--unit', name]);
    assert.doesNotMatch(text(first), /shrank|EMPTY/, describeRun(first));

    await docker(['exec', name, 'rm', '/d/big']);
    const second = await cliOk(repo, ['backup', '--unit', name]);
    assert.match(
      second.stdout,
      new RegExp(
        `${name}: warning: volume ${v} shrank to 6 B in 1 file\\(s\\) from 2\\.9 MiB in 2 file\\(s\\) in restore point \\S+ \\(below 10 %\\)`,
      ),
      describeRun(second),
    );

    await docker(['exec', name, 'rm', '/d/small']);
    const third = await cliOk(repo, ['backup', '--json', '--unit', name]);
    const u = unitOf(third, name);
    assert.equal(u.status, 'ok');
    assert.ok(
      u.warnings.some((w) =>
        w.startsWith(`volume ${v} is EMPTY now but held 6 B in 1 file(s) in restore point`),
      ),
      JSON.stringify(u.warnings),
    );
  });
});

describe('class 5: a backup leaves every container and relation as it found them', () => {
  it('an anonymous volume: backed up, and run, plan and manifest say that compose up will not reattach it', async (t) => {
    const repo = await repoFor(t);
    const s = await createStack(t, {
      files: {
        'docker-compose.yml': [
          'version: "2.4"',
          'services:',
          '  app:',
          `    image: ${TEST_IMAGE}`,
          '    init: true',
          `    command: sh -c '${LOOP}'`,
          '    volumes: [/appdata]',
          '',
        ].join('\n'),
      },
    });
    const app = await composeContainer(s.project, 'app');
    const vol = await state(app, '{{range .Mounts}}{{.Name}}{{end}}');
    registerCleanup(t, async () => {
      await docker(['volume', 'rm', '-f', vol], { allowFail: true });
    });
    await docker(['exec', app, 'sh', '-c', 'echo precious > /appdata/data.txt']);

    const r = await cliOk(repo, ['backup', '--unit', s.project]);
    assert.match(r.stdout, new RegExp(`${s.project}: warning: volume ${vol} .*is anonymous`), describeRun(r));
    const snap = (await snapsOf(repo, s.project)).find((x) => x.tags?.['tag:volume'] === vol);
    assert.ok(snap);
    assert.equal(await kopia(repo, ['show', `${snap.rootEntry.obj}/data.txt`]), 'precious\n');
    const m = await manifestOf(repo, s.project);
    assert.deepEqual(m.volumes, [
      { name: vol, anonymous: true, usedBy: [{ container: app, destination: '/appdata', readOnly: false }] },
    ]);
    const dry = await cliOk(repo, ['backup', '--dry-run', '--unit', s.project]);
    assert.match(dry.stdout, new RegExp(`warning: volume ${vol} \\(${app}:/appdata\\) is anonymous`));
    assert.match(
      dry.stdout,
      /`compose up` creates a new, empty anonymous volume and does not reattach this one/,
    );
  });

  it('a volume shared with another unit: its running writer is stopped and started around the snapshot; a reader is left alone', async (t) => {
    const repo = await repoFor(t);
    const a = uniqueName('share-a');
    const b = uniqueName('share-b');
    const reader = uniqueName('share-r');
    const v = await volume(t, `${a}-shared`);
    await run(t, a, ['--init', '-v', `${v}:/shared`], 'while :; do date >> /shared/a.log; sleep 0.1; done');
    await run(t, b, ['--init', '-v', `${v}:/shared`], 'while :; do date >> /shared/b.log; sleep 0.1; done');
    await run(t, reader, ['--init', '-v', `${v}:/shared:ro`]);
    const bStarted = await state(b, '{{.State.StartedAt}}');
    const readerStarted = await state(reader, '{{.State.StartedAt}}');

    const r = await cliOk(repo, ['backup', '--unit', a]);
    assert.notEqual(await state(b, '{{.State.StartedAt}}'), bStarted, 'b was not stopped and started');
    assert.equal(
      await state(reader, '{{.State.StartedAt}}'),
      readerStarted,
      'the read-only user was restarted',
    );
    for (const c of [a, b, reader]) assert.equal(await state(c, '{{.State.Running}}'), 'true', c);
    assert.match(
      r.stderr,
      new RegExp(`stopping ${b} of unit ${b}, which writes to volume ${v}`),
      describeRun(r),
    );
    assert.match(
      r.stdout,
      new RegExp(
        `warning: volume ${v} is also written by ${b} of unit ${b}: ${b} is stopped for this snapshot too`,
      ),
    );
    const dry = await cliOk(repo, ['backup', '--dry-run', '--unit', a]);
    assert.match(
      dry.stdout,
      new RegExp(`stop: +${b} \\(10s, unit ${b}: writes to volume ${v}\\) → ${a} \\(10s\\)`),
    );
    assert.doesNotMatch(dry.stdout, new RegExp(`stop:.*${reader}`));
  });

  it('a container that ignores SIGTERM and is killed at the stop timeout: warned in --json, marked in the manifest and the recipe tags', async (t) => {
    const repo = await repoFor(t, { backup: { stop_timeout: '2' } });
    const name = uniqueName('stubborn');
    const v = await volume(t, `${name}-data`);
    // PID 1 without --init ignores SIGTERM: Docker SIGKILLs it after the 2 s timeout (exit code 137).
    await run(t, name, ['-v', `${v}:/d`], `trap "" TERM; ${LOOP}`);

    const r = await cliOk(repo, ['backup', '--json', '--unit', name]);
    const u = unitOf(r, name);
    assert.equal(u.status, 'ok');
    assert.ok(
      u.warnings.some((w) =>
        new RegExp(
          `^${name} did not exit within its stop timeout of 2s and was killed \\(SIGKILL, exit code 137, after \\d`,
        ).test(w),
      ),
      JSON.stringify(u.warnings),
    );
    assert.match(r.stderr, /was killed \(SIGKILL, exit code 137/);
    assert.equal(await state(name, '{{.State.Running}}'), 'true');
    const m = await manifestOf(repo, name);
    assert.deepEqual(m.forceKilled, [name]);
    const stops = m.stops as { container: string; exitCode: number; forceKilled: boolean; seconds: number }[];
    assert.equal(stops.length, 1);
    assert.equal(stops[0]?.exitCode, 137);
    assert.equal(stops[0]?.forceKilled, true);
    assert.ok((stops[0]?.seconds ?? 0) >= 1.5, JSON.stringify(stops));
    assert.equal(m.recipe.tags?.['tag:force_killed'], name);
  });

  it('a container of another unit sharing the network and PID namespace is stopped first and started after: it is back in the owner’s namespace', async (t) => {
    const repo = await repoFor(t);
    const owner = uniqueName('ns-owner');
    const joiner = uniqueName('ns-join');
    const v = await volume(t, `${owner}-data`);
    await run(t, owner, ['--init', '-v', `${v}:/d`]);
    registerCleanup(t, async () => {
      await docker(['rm', '-f', joiner], { allowFail: true });
    });
    const shared = ['--network', `container:${owner}`, '--pid', `container:${owner}`];
    await docker(['run', '-d', '--name', joiner, ...shared, TEST_IMAGE, 'sh', '-c', LOOP]);

    const r = await cliOk(repo, ['backup', '--unit', owner]);
    // Without this, the joiner dies with the owner's PID namespace and is left stopped.
    assert.equal(await state(joiner, '{{.State.Running}}'), 'true', describeRun(r));
    const ns = async (c: string) => readlink(`/proc/${await state(c, '{{.State.Pid}}')}/ns/net`);
    assert.equal(await ns(joiner), await ns(owner), 'the joiner is not in the owner’s network namespace');
    assert.match(
      r.stdout,
      new RegExp(
        `${joiner} of unit ${joiner} shares the network namespace of ${owner}: it is stopped before`,
      ),
    );
    const dry = await cliOk(repo, ['backup', '--dry-run', '--unit', owner]);
    assert.match(
      dry.stdout,
      new RegExp(
        `stop: +${joiner} \\(10s, unit ${joiner}: shares the network namespace of ${owner}\\) → ${owner}`,
      ),
    );
  });

  it('a paused container is left paused, a --rm container is left running (not deleted), each with a warning', async (t) => {
    const repo = await repoFor(t);
    const paused = uniqueName('paused');
    const rmName = uniqueName('autorm');
    const v1 = await volume(t, `${paused}-data`);
    const v2 = await volume(t, `${rmName}-data`);
    await run(t, paused, ['--init', '-v', `${v1}:/d`]);
    await run(t, rmName, ['--init', '--rm', '-v', `${v2}:/d`]);
    await docker(['pause', paused]);
    registerCleanup(t, async () => {
      await docker(['unpause', paused], { allowFail: true });
    });
    const pausedStarted = await state(paused, '{{.State.StartedAt}}');
    const rmStarted = await state(rmName, '{{.State.StartedAt}}');

    const r = await cli(repo, ['backup', '--unit', paused, '--unit', rmName]);
    assert.equal(await state(paused, '{{.State.Status}}'), 'paused', describeRun(r));
    assert.equal(await state(paused, '{{.State.StartedAt}}'), pausedStarted);
    assert.equal(await state(rmName, '{{.State.StartedAt}}'), rmStarted);
    assert.equal(await state(rmName, '{{.State.Running}}'), 'true');
    assert.equal(r.code, 0, describeRun(r));
    assert.match(r.stdout, new RegExp(`${paused}: warning: ${paused} is paused: it is left paused`));
    assert.match(
      r.stdout,
      new RegExp(`${rmName}: warning: ${rmName} was started with --rm: .*snapshotted live`),
    );
    const dry = await cliOk(repo, ['backup', '--dry-run', '--unit', paused, '--unit', rmName]);
    assert.match(dry.stdout, new RegExp(`left as it is \\(not stopped\\): ${paused} \\(paused\\)`));
    assert.match(
      dry.stdout,
      new RegExp(`left as it is \\(not stopped\\): ${rmName} \\(started with --rm\\)`),
    );
  });

  it('a crash-looping container is stopped for the snapshot and started again as it was, not waited for', async (t) => {
    const repo = await repoFor(t, { backup: { start_timeout: '20' } });
    const name = uniqueName('crashloop');
    const v = await volume(t, `${name}-data`);
    registerCleanup(t, async () => {
      await docker(['rm', '-f', name], { allowFail: true });
    });
    await docker([
      'run',
      '-d',
      '--network',
      'none',
      '--restart',
      'always',
      '--name',
      name,
      '-v',
      `${v}:/d`,
      TEST_IMAGE,
      'sh',
      '-c',
      'date >> /d/starts; exit 3',
    ]);
    // Docker doubles the delay between attempts: by the 5th it waits seconds, long enough to be
    // found "restarting" by the backup's discovery.
    for (let i = 0; ; i++) {
      const st = await state(name, '{{.State.Status}} {{.RestartCount}}');
      if (/^restarting ([5-9]|\d\d)/.test(st)) break;
      assert.ok(i < 200, `never settled into a slow crash loop: ${st}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const r = await cliOk(repo, ['backup', '--unit', name]);
    assert.match(
      r.stdout,
      new RegExp(
        `${name}: warning: ${name} is restarting \\(crash loop\\): it is stopped for the snapshot and started again`,
      ),
      describeRun(r),
    );
    // As found: in its restart loop again, not left exited.
    await new Promise((res) => setTimeout(res, 500));
    assert.match(await state(name, '{{.State.Status}}'), /^(running|restarting)$/);
  });

  it('a stopped container that something else starts during the snapshot is reported', async (t) => {
    const repo = await repoFor(t);
    const name = uniqueName('racer');
    const v = await volume(t, `${name}-data`);
    await run(t, name, ['--init', '-v', `${v}:/d`]);
    await docker(['exec', name, 'sh', '-c', 'echo x > /d/x']);
    // A kopia that starts the container again (as a supervisor or a restart policy would) when the data
    // snapshot begins; every other call is the real kopia.
    const dir = await makeTempDir('racer-kopia');
    registerCleanup(t, () => rm(dir, { recursive: true, force: true }));
    const wrapper = path.join(dir, 'kopia');
    await writeFile(
      wrapper,
      [
        '#!/usr/bin/env bash',
        // The same daemon as the test (the current engine sets DOCKER_HOST).
        process.env.DOCKER_HOST ? `export DOCKER_HOST=${process.env.DOCKER_HOST}` : '',
        `if [[ " $* " == *" snapshot create "* && " $* " == *"/volumes/"* ]]; then docker start ${name} >/dev/null; fi`,
        `exec ${KOPIA_BIN} "$@"`,
        '',
      ].join('\n'),
    );
    await chmod(wrapper, 0o755);
    const r = await cliOk({ env: { ...repo.env, KOPI_DOCKA_KOPIA_BIN: wrapper } }, [
      'backup',
      '--unit',
      name,
    ]);
    assert.match(
      r.stdout,
      new RegExp(
        `${name}: warning: ${name} was started again by something else while the data was being snapshotted`,
      ),
      describeRun(r),
    );
    assert.equal(await state(name, '{{.State.Running}}'), 'true');
  });
});
