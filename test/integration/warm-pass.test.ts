/**
 * The warm pass (#14) end to end: real Docker, real Kopia, the built CLI. Checked with kopia itself
 * (`snapshot list`, `snapshot restore`) and `restore --list --json`:
 *  - a backup with the warm pass gives the same restore points (count, completeness, content) as one
 *    without, and leaves no warm snapshot behind — in direct and in tar mode, while the app keeps
 *    writing and deleting files (read errors of the warm pass must not fail anything);
 *  - a SIGKILL of the CLI between the passes leaves a warm snapshot that `restore --list` never shows
 *    and that the next backup removes, and that next backup is complete.
 *
 * Run under both engines: DOCKER_HOST unset, and DOCKER_HOST=unix:///run/kopi-docka-engine/docker.sock
 * KD_TEST_COMPOSE=v2.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { type TestContext, describe, it } from 'node:test';
import { promisify } from 'node:util';
import {
  KOPIA_BIN,
  TEST_IMAGE as IMAGE,
  type RepoConfig,
  type RepoSections,
  cliOk,
  createStack,
  describeRun,
  docker,
  makeRepoConfig,
  makeTempDir,
  registerCleanup,
  startCli,
  uniqueName,
} from './helpers.js';

const execFileP = promisify(execFile);

/** `stable/` is written once (the content checked after restore); `churn/` changes all the time. */
const APP = `sh -c 'mkdir -p /data/churn; while :; do i=$$((RANDOM % 50)); echo $$RANDOM > /data/churn/f$$i; rm -f /data/churn/f$$((RANDOM % 50)); done'`;

function composeFile(): string {
  return [
    "version: '2.4'",
    'services:',
    '  app:',
    `    image: ${IMAGE}`,
    `    command: ${APP}`,
    '    init: true',
    '    volumes:',
    '      - data:/data',
    'volumes:',
    '  data: {}',
    '',
  ].join('\n');
}

async function makeRepo(t: TestContext, sections: RepoSections): Promise<RepoConfig> {
  const repo = await makeRepoConfig(t, { prefix: 'warm-repo', password: 'warm-test-pw-1', sections });
  await cliOk(repo, ['init']);
  return repo;
}

interface Snap {
  id: string;
  source: { host: string; userName: string; path: string };
  incomplete?: string;
  rootEntry: { obj: string };
  tags?: Record<string, string>;
}

async function kopiaConfigFile(repo: RepoConfig): Promise<string> {
  const r = await cliOk(repo, ['config', 'show', '--json']);
  return (JSON.parse(r.stdout) as { kopiaConfigFile: string }).kopiaConfigFile;
}

async function kopia(repo: RepoConfig, args: string[]): Promise<string> {
  const { stdout } = await execFileP(
    KOPIA_BIN,
    [
      ...args,
      `--config-file=${await kopiaConfigFile(repo)}`,
      `--log-dir=${path.join(repo.dir, 'test-kopia-logs')}`,
      '--no-progress',
    ],
    {
      env: { ...process.env, KOPIA_PASSWORD: repo.password, KOPIA_CHECK_FOR_UPDATES: 'false' },
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  return stdout;
}

async function snapshots(repo: RepoConfig): Promise<Snap[]> {
  return JSON.parse(await kopia(repo, ['snapshot', 'list', '--json'])) as Snap[];
}

const isWarm = (s: Snap) => s.tags?.['tag:pass'] === 'warm';

interface ListedPoint {
  unit: string;
  backupId: string;
  complete: boolean;
  problems: string[];
  data: { id: string; type: string; name: string }[];
}

async function listPoints(repo: RepoConfig, unit: string): Promise<ListedPoint[]> {
  const r = await cliOk(repo, ['restore', '--list', '--json']);
  return (JSON.parse(r.stdout) as { restorePoints: ListedPoint[] }).restorePoints.filter(
    (p) => p.unit === unit,
  );
}

/** sha256 of every file under dir (relative path → hash). */
async function hashTree(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (rel: string) => {
    for (const e of await readdir(path.join(dir, rel), { withFileTypes: true })) {
      const r = path.join(rel, e.name);
      if (e.isDirectory()) await walk(r);
      else if (e.isFile())
        out.set(
          r,
          createHash('sha256')
            .update(await readFile(path.join(dir, r)))
            .digest('hex'),
        );
    }
  };
  await walk('');
  return out;
}

/** A Compose stack whose volume holds `stable/` (200 files written now) and a writer churning `churn/`. */
async function startApp(t: TestContext): Promise<{ project: string; volume: string; mountpoint: string }> {
  const project = uniqueName('warm');
  const stack = await createStack(t, { name: project, files: { 'docker-compose.yml': composeFile() } });
  void stack;
  const volume = `${project}_data`;
  const mountpoint = (await docker(['volume', 'inspect', '-f', '{{.Mountpoint}}', volume])).stdout.trim();
  // Written through the container, so ownership is what the app sees.
  const container = (
    await docker(['ps', '-q', '--filter', `label=com.docker.compose.project=${project}`])
  ).stdout.trim();
  await docker([
    'exec',
    container,
    'sh',
    '-c',
    'mkdir -p /data/stable && for i in $(seq 1 200); do head -c $((i * 997)) /dev/urandom > /data/stable/s$i; done',
  ]);
  return { project, volume, mountpoint };
}

/** Restore the data snapshot of `point` with kopia into a temp dir and hash its `stable/` part. */
async function restoredStable(t: TestContext, repo: RepoConfig, point: ListedPoint, mode: 'direct' | 'tar') {
  const target = await makeTempDir('warm-restore');
  registerCleanup(t, async () => {
    await execFileP('rm', ['-rf', target]);
  });
  const data = point.data[0];
  assert.ok(data, 'the point has a data snapshot');
  if (mode === 'direct') {
    await kopia(repo, ['snapshot', 'restore', data.id, target]);
  } else {
    const snap = (await snapshots(repo)).find((s) => s.id === data.id);
    assert.ok(snap);
    const tarFile = path.join(target, '..', `${path.basename(target)}.stream`);
    registerCleanup(t, async () => {
      await execFileP('rm', ['-f', tarFile]);
    });
    const name = (await kopia(repo, ['ls', snap.rootEntry.obj])).trim().split('\n')[0] ?? '';
    await kopia(repo, ['snapshot', 'restore', `${snap.rootEntry.obj}/${name}`, tarFile]);
    await execFileP('tar', ['-xf', tarFile, '-C', target]);
  }
  return hashTree(path.join(target, 'stable'));
}

for (const mode of ['direct', 'tar'] as const) {
  describe(`warm pass (${mode} mode)`, () => {
    it('gives the same restore points as without it and leaves no warm snapshot', async (t) => {
      const app = await startApp(t);
      const repo = await makeRepo(t, { backup: { volume_mode: mode, warm_pass: 'always' } });

      const dry = await cliOk(repo, ['backup', '--dry-run', '--unit', app.project]);
      assert.match(dry.stdout, /warm pass: always/);
      assert.match(dry.stdout, /warm pass: yes \(warm_pass = always\)/);

      const warmRun = await cliOk(repo, ['--log-level', 'debug', 'backup', '--unit', app.project]);
      assert.match(warmRun.stderr, /warm pass of 1 source/, describeRun(warmRun));
      assert.match(warmRun.stderr, /removed 1 warm snapshot/, describeRun(warmRun));

      // The same unit without the warm pass: the baseline restore point.
      await repo.configure({ backup: { volume_mode: mode, warm_pass: 'never' } });
      const coldRun = await cliOk(repo, ['--log-level', 'debug', 'backup', '--unit', app.project]);
      assert.doesNotMatch(coldRun.stderr, /warm pass of/);

      const all = await snapshots(repo);
      assert.deepEqual(all.filter(isWarm), [], 'no warm snapshot is left');
      const points = await listPoints(repo, app.project);
      assert.equal(points.length, 2, JSON.stringify(points));
      for (const p of points) {
        assert.ok(p.complete, p.problems.join('; '));
        assert.equal(p.data.length, 1);
      }
      // Content: the part the app does not touch is byte-identical in both points and to the volume.
      const original = await hashTree(path.join(app.mountpoint, 'stable'));
      assert.equal(original.size, 200);
      for (const p of points) assert.deepEqual(await restoredStable(t, repo, p, mode), original);
    });
  });
}

describe('warm pass: a SIGKILL between the passes', () => {
  it('leaves nothing that restore --list shows or the next backup trips over', async (t) => {
    const app = await startApp(t);
    const repo = await makeRepo(t, { backup: { warm_pass: 'always' } });
    const run = startCli(['backup', '--unit', app.project], { env: repo.env, timeoutMs: 180_000 });
    registerCleanup(t, () => {
      run.child.kill('SIGKILL');
    });
    // Printed once the warm snapshot exists, right before the stop.
    await run.waitFor(/warm pass done in/, 120_000);
    run.child.kill('SIGKILL');
    await run.done.catch(() => undefined);

    const left = (await snapshots(repo)).filter(isWarm);
    assert.equal(left.length, 1, 'the killed run left its warm snapshot');
    // restore --list never shows it (no restore point of the killed run at all: it made no cold one).
    assert.deepEqual(await listPoints(repo, app.project), []);

    // The next run removes it (and restarts the containers if the kill left them stopped) and is complete.
    const next = await cliOk(repo, ['backup', '--unit', app.project]);
    assert.match(
      next.stderr,
      /removed 1 warm-pass snapshot\(s\) a previous run left behind/,
      describeRun(next),
    );
    assert.deepEqual((await snapshots(repo)).filter(isWarm), []);
    const points = await listPoints(repo, app.project);
    assert.equal(points.length, 1, JSON.stringify(points));
    assert.ok(points[0]?.complete, points[0]?.problems.join('; '));
    const running = (
      await docker(['ps', '-q', '--filter', `label=com.docker.compose.project=${app.project}`])
    ).stdout.trim();
    assert.notEqual(running, '', 'the app runs again');
  });
});
