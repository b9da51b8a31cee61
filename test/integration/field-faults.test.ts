/**
 * Faults reproduced from public bug reports (../shared/field-cases/), each as a class, against real
 * Docker and real Kopia:
 *  - a stream pipeline whose consumer dies must end, name the cause and restart the containers (tar
 *    mode, Kopia failing mid-stream as on a full repository; SIGTERM while the stream is stalled);
 *  - file names are bytes: a name that is not UTF-8 is backed up and restored byte for byte, in both
 *    volume modes;
 *  - nothing dropped silently: FIFOs and device nodes come back as they were, sockets are listed with
 *    a warning, sparse files stay sparse after a restore and in the safety copy taken before it.
 *
 * Each case uses a standalone container (its unit is the container) with a named volume, so it runs
 * the same on every engine and Compose flavour. A failing repository is simulated with a kopia wrapper
 * (KOPI_DOCKA_KOPIA_BIN) that passes every call through except `snapshot create --stdin-file`.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, lstat, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import {
  KOPIA_BIN,
  TEST_IMAGE,
  cli,
  cliOk,
  describeRun,
  docker,
  makeRepoConfig,
  makeTempDir,
  registerCleanup,
  startCli,
  uniqueName,
  type RepoConfig,
} from './helpers.js';

async function standalone(
  t: TestContext,
  prefix: string,
): Promise<{ name: string; volume: string; mp: string }> {
  const name = uniqueName(prefix);
  const volume = `${name}-data`;
  registerCleanup(t, async () => {
    await docker(['rm', '-f', '-v', name], { allowFail: true });
    await docker(['volume', 'rm', '-f', volume], { allowFail: true });
  });
  await docker(['volume', 'create', volume]);
  await docker([
    'run',
    '-d',
    '--init',
    '--network',
    'none',
    '--name',
    name,
    '-v',
    `${volume}:/d`,
    TEST_IMAGE,
    'sh',
    '-c',
    'while :; do sleep 1; done',
  ]);
  const mp = (await docker(['volume', 'inspect', '--format', '{{.Mountpoint}}', volume])).stdout.trim();
  return { name, volume, mp };
}

async function running(container: string): Promise<string> {
  return (await docker(['inspect', '-f', '{{.State.Running}}', container])).stdout.trim();
}

/** A kopia that reads 64 KiB of a stdin snapshot, then `then` (shell) — every other call is the real kopia. */
async function kopiaWrapper(t: TestContext, then: string): Promise<string> {
  const dir = await makeTempDir('kopia-wrapper');
  registerCleanup(t, () => rm(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'kopia');
  await writeFile(
    file,
    [
      '#!/usr/bin/env bash',
      'if [[ " $* " == *" --stdin-file"* ]]; then',
      '  head -c 65536 >/dev/null',
      `  ${then}`,
      'fi',
      `exec ${KOPIA_BIN} "$@"`,
      '',
    ].join('\n'),
  );
  await chmod(file, 0o755);
  return file;
}

async function tarRepo(t: TestContext): Promise<RepoConfig> {
  const repo = await makeRepoConfig(t, { prefix: 'faults', sections: { backup: { volume_mode: 'tar' } } });
  await cliOk(repo, ['init']);
  return repo;
}

/** 20 MB of incompressible data: far more than the pipes between tar and kopia buffer. */
async function fillVolume(volume: string): Promise<void> {
  await docker([
    'run',
    '--rm',
    '--network',
    'none',
    '-v',
    `${volume}:/d`,
    TEST_IMAGE,
    'sh',
    '-c',
    'head -c 20000000 /dev/urandom > /d/blob',
  ]);
}

describe('a stream pipeline whose consumer dies ends, names the cause and restarts the unit', () => {
  it('tar mode, Kopia fails mid-stream ("no space left on device"): exit 1, Kopia’s error, container running', async (t) => {
    const repo = await tarRepo(t);
    const c = await standalone(t, 'tarfail');
    await fillVolume(c.volume);
    const wrapper = await kopiaWrapper(
      t,
      'sleep 2; echo "ERROR cannot save pack: write: no space left on device" >&2; exit 1',
    );
    const r = await cli({ env: { ...repo.env, KOPI_DOCKA_KOPIA_BIN: wrapper } }, [
      'backup',
      '--unit',
      c.name,
    ]);
    assert.equal(r.code, 1, describeRun(r));
    assert.match(r.stdout + r.stderr, /no space left on device/, describeRun(r));
    assert.match(r.stdout + r.stderr, /repository's filesystem is full/, describeRun(r));
    assert.doesNotMatch(r.stdout + r.stderr, /tar of .* exited SIGTERM/, describeRun(r));
    assert.equal(await running(c.name), 'true');
  });

  it('tar mode, the stream stalls: SIGTERM ends the run (143) and the container is running again', async (t) => {
    const repo = await tarRepo(t);
    const c = await standalone(t, 'tarstall');
    await fillVolume(c.volume);
    const wrapper = await kopiaWrapper(t, 'sleep 600; exit 1');
    const run = startCli(['backup', '--unit', c.name], {
      env: { ...repo.env, KOPI_DOCKA_KOPIA_BIN: wrapper },
      timeoutMs: 120_000,
    });
    await run.waitFor(/stopping /);
    // The wrapper has read its 64 KiB and stalls: tar is blocked on a full pipe.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    run.child.kill('SIGTERM');
    const r = await run.done;
    assert.equal(r.code, 143, describeRun(r));
    assert.equal(await running(c.name), 'true');
  });
});

describe('file names are bytes', () => {
  // "café.txt" in Latin-1 and a directory "naïve" in Latin-1 holding a file.
  const latin1File = Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x2e, 0x74, 0x78, 0x74]);
  const latin1Dir = Buffer.from([0x6e, 0x61, 0xef, 0x76, 0x65]);

  for (const mode of ['direct', 'tar'] as const) {
    it(`${mode} mode: a volume with non-UTF-8 names is backed up and restored byte for byte`, async (t) => {
      const repo = await makeRepoConfig(t, { prefix: 'bytes', sections: { backup: { volume_mode: mode } } });
      await cliOk(repo, ['init']);
      const c = await standalone(t, `bytes-${mode}`);
      const mp = Buffer.from(c.mp);
      const slash = Buffer.from('/');
      await writeFile(Buffer.concat([mp, slash, latin1File]), 'latin-1 name\n');
      await docker(['exec', c.name, 'sh', '-c', 'echo plain > /d/plain.txt']);
      await mkdir(Buffer.concat([mp, slash, latin1Dir]));
      await writeFile(Buffer.concat([mp, slash, latin1Dir, slash, Buffer.from('inner.txt')]), 'inner\n');

      // The plan says beforehand what the run will do with such a source.
      const plan = await cliOk(repo, ['backup', '--dry-run', '--unit', c.name]);
      if (mode === 'direct')
        assert.match(plan.stdout, /stored as a tar stream: \d+ file name\(s\) are not UTF-8/);
      else assert.doesNotMatch(plan.stdout, /stored as a tar stream:/);

      const b = await cliOk(repo, ['backup', '--unit', c.name]);
      if (mode === 'direct') assert.match(b.stdout + b.stderr, /not UTF-8/, describeRun(b));

      // A single path comes back from the same snapshot (its format tag must say how to read it).
      const one = await makeTempDir(`bytes-${mode}-one`);
      registerCleanup(t, () => rm(one, { recursive: true, force: true }));
      const single = await cliOk(repo, [
        'restore',
        '--unit',
        c.name,
        '--backup-id',
        'latest',
        '--volume',
        c.volume,
        '--path',
        'plain.txt',
        '--to',
        path.join(one, 'out'),
      ]);
      assert.equal(
        await readFile(path.join(one, 'out', 'plain.txt'), 'utf8'),
        'plain\n',
        describeRun(single),
      );

      await docker(['rm', '-f', c.name]);
      await docker(['volume', 'rm', c.volume]);
      const to = await makeTempDir(`bytes-${mode}-restore`);
      registerCleanup(t, () => rm(to, { recursive: true, force: true }));
      const r = await cliOk(repo, [
        'restore',
        '--unit',
        c.name,
        '--backup-id',
        'latest',
        '--to',
        path.join(to, 'work'),
        '--execute',
        '--yes',
      ]);
      const restored = Buffer.from(
        (await docker(['volume', 'inspect', '--format', '{{.Mountpoint}}', c.volume])).stdout.trim(),
      );
      const names = (await readdir(restored, { encoding: 'buffer' })).map((n) => n.toString('hex')).sort();
      assert.deepEqual(
        names,
        [latin1File, latin1Dir, Buffer.from('plain.txt')].map((n) => n.toString('hex')).sort(),
        describeRun(r),
      );
      assert.equal(await readFile(Buffer.concat([restored, slash, latin1File]), 'utf8'), 'latin-1 name\n');
      assert.equal(
        await readFile(Buffer.concat([restored, slash, latin1Dir, slash, Buffer.from('inner.txt')]), 'utf8'),
        'inner\n',
      );
    });
  }
});

/** restore --unit U --backup-id latest --to <tmp>/work --execute --yes --json; the parsed document. */
async function restoreLatest(
  t: TestContext,
  repo: RepoConfig,
  unit: string,
): Promise<{ data: { name: string; safetyCopy: string | null }[] }> {
  const to = await makeTempDir('ff-restore');
  registerCleanup(t, () => rm(to, { recursive: true, force: true }));
  const r = await cliOk(repo, [
    'restore',
    '--unit',
    unit,
    '--backup-id',
    'latest',
    '--to',
    path.join(to, 'work'),
    '--execute',
    '--yes',
    '--json',
  ]);
  return JSON.parse(r.stdout) as { data: { name: string; safetyCopy: string | null }[] };
}

async function volumeMountpoint(volume: string): Promise<string> {
  return (await docker(['volume', 'inspect', '--format', '{{.Mountpoint}}', volume])).stdout.trim();
}

describe('nothing dropped silently', () => {
  for (const mode of ['direct', 'tar'] as const) {
    it(`${mode} mode: a FIFO and a device node come back as they were; a socket is named in a warning`, async (t) => {
      const repo = await makeRepoConfig(t, {
        prefix: 'special',
        sections: { backup: { volume_mode: mode } },
      });
      await cliOk(repo, ['init']);
      const c = await standalone(t, `special-${mode}`);
      await docker(['exec', c.name, 'sh', '-c', 'mkfifo /d/pipe && echo data > /d/file']);
      await promisify(execFile)('mknod', [path.join(c.mp, 'null-dev'), 'c', '1', '3']);
      // A listening unix socket left behind in the volume (as a stopped app leaves it).
      await promisify(execFile)('python3', [
        '-c',
        'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])',
        path.join(c.mp, 'app.sock'),
      ]);

      const b = await cliOk(repo, ['backup', '--unit', c.name, '--json']);
      const run = JSON.parse(b.stdout) as { units: { warnings: string[] }[] };
      const warnings = run.units[0]?.warnings ?? [];
      assert.ok(
        warnings.some((w) => /socket\(s\) not backed up/.test(w) && w.includes('app.sock')),
        warnings.join('\n'),
      );
      if (mode === 'direct') {
        assert.ok(
          warnings.some((w) => /FIFO/.test(w) && /device node/.test(w) && /tar stream/.test(w)),
          warnings.join('\n'),
        );
      }

      await docker(['rm', '-f', c.name]);
      await docker(['volume', 'rm', c.volume]);
      await restoreLatest(t, repo, c.name);
      const mp = await volumeMountpoint(c.volume);
      assert.ok((await lstat(path.join(mp, 'pipe'))).isFIFO(), 'the FIFO is a FIFO again');
      const dev = await lstat(path.join(mp, 'null-dev'));
      assert.ok(dev.isCharacterDevice(), 'the device node is a character device again');
      assert.equal(dev.rdev, (await stat('/dev/null')).rdev);
      assert.equal(await readFile(path.join(mp, 'file'), 'utf8'), 'data\n');
    });

    it(`${mode} mode: a sparse file stays sparse after the restore and in the safety copy`, async (t) => {
      const repo = await makeRepoConfig(t, { prefix: 'sparse', sections: { backup: { volume_mode: mode } } });
      await cliOk(repo, ['init']);
      const c = await standalone(t, `sparse-${mode}`);
      const file = path.join(c.mp, 'disk.img');
      await promisify(execFile)('truncate', ['-s', '1G', file]);
      await promisify(execFile)('dd', [
        'if=/dev/urandom',
        `of=${file}`,
        'bs=4096',
        'count=2',
        'conv=notrunc',
      ]);
      const allocated = async (p: string): Promise<number> => (await stat(p)).blocks * 512;
      assert.ok((await allocated(file)) < 1024 * 1024, 'the fixture is sparse');
      await cliOk(repo, ['backup', '--unit', c.name]);

      // Restore over the live volume: the safety copy of what is there is taken first.
      const doc = await restoreLatest(t, repo, c.name);
      const restored = path.join(await volumeMountpoint(c.volume), 'disk.img');
      assert.equal((await stat(restored)).size, 1024 ** 3);
      assert.ok(
        (await allocated(restored)) < 1024 * 1024,
        `restored file uses ${await allocated(restored)} bytes`,
      );
      const copy = doc.data[0]?.safetyCopy;
      assert.ok(copy, JSON.stringify(doc));
      registerCleanup(t, () => rm(copy, { force: true }));
      assert.ok((await stat(copy)).size < 1024 * 1024, `safety copy is ${(await stat(copy)).size} bytes`);
    });
  }
});
