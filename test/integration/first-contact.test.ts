/**
 * First contact (issue #11 §2–§4), with the built CLI, real Kopia and the real Docker daemon: ordinary
 * mistakes get a typed answer (path, what was being done, what to do) and a documented exit code —
 * never `internal error` with a stack trace — and `check`, `doctor`, `init`, the dry-run and the run
 * give the same verdict for the same problem.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import {
  REPO_ROOT,
  cli,
  cliOk,
  createStack,
  describeRun,
  makeRepoConfig,
  registerCleanup,
  TEST_IMAGE,
} from './helpers.js';

const execFileP = promisify(execFile);

function noStackTrace(r: { stderr: string }): void {
  assert.doesNotMatch(r.stderr, /internal error|^\s+at .*\(.*:\d+:\d+\)$/m, r.stderr);
}

/** `dir` remounted read-only (a bind mount of itself) until the test ends. */
async function readOnly(t: TestContext, dir: string): Promise<void> {
  await execFileP('mount', ['--bind', dir, dir]);
  registerCleanup(t, async () => {
    await execFileP('umount', [dir]).catch(() => undefined);
  });
  await execFileP('mount', ['-o', 'remount,ro,bind', dir]);
}

describe('first contact: typed errors and one set of pre-flight checks', () => {
  it('init below a regular file: exit 5, names the path and what to do, no stack trace', async (t) => {
    const repo = await makeRepoConfig(t);
    const file = path.join(repo.dir, 'a-file');
    await writeFile(file, 'not a directory\n');
    await repo.configure({ kopia: { repository_path: path.join(file, 'repo') } });
    const r = await cli(repo, ['init']);
    assert.equal(r.code, 5, describeRun(r));
    noStackTrace(r);
    assert.match(r.stderr, /creating the repository directory/);
    assert.match(r.stderr, /a-file/);
    assert.match(r.stderr, /ENOTDIR|not a directory/);
    assert.match(r.stderr, /hint: /);
  });

  it('init on a read-only filesystem: exit 5 with EROFS in words', async (t) => {
    const repo = await makeRepoConfig(t);
    const ro = path.join(repo.dir, 'ro');
    await mkdir(ro);
    await readOnly(t, ro);
    await repo.configure({ kopia: { repository_path: path.join(ro, 'repo') } });
    const r = await cli(repo, ['init']);
    assert.equal(r.code, 5, describeRun(r));
    noStackTrace(r);
    assert.match(r.stderr, /read-only/);
  });

  it('init with Docker unreachable: exit 6, as the original checked dependencies first', async (t) => {
    const repo = await makeRepoConfig(t);
    const r = await cli({ env: { ...repo.env, DOCKER_HOST: 'unix:///nonexistent/docker.sock' } }, ['init']);
    assert.equal(r.code, 6, describeRun(r));
    noStackTrace(r);
  });

  it('a read-only repository: check, doctor, the dry-run and the run all say 5', async (t) => {
    const repo = await makeRepoConfig(t);
    await cliOk(repo, ['init']);
    await createStack(t, {
      files: {
        'docker-compose.yml': `services:\n  app:\n    image: ${TEST_IMAGE}\n    command: sleep 3600\n`,
      },
    });
    await readOnly(t, repo.repoPath);
    const check = await cli(repo, ['check']);
    assert.equal(check.code, 5, describeRun(check));
    assert.match(check.stdout, /FAIL\s+writable\s+cannot write/);
    const doctor = await cli(repo, ['doctor']);
    assert.equal(doctor.code, 5, describeRun(doctor));
    const dry = await cli(repo, ['backup', '--dry-run']);
    assert.equal(dry.code, 5, describeRun(dry));
    assert.match(dry.stdout, /pre-flight: the run would stop here/);
    const run = await cli(repo, ['backup']);
    assert.equal(run.code, 5, describeRun(run));
    noStackTrace(run);
  });

  it('without kopia the dry-run exits 4, as the run does', async (t) => {
    const repo = await makeRepoConfig(t);
    const env = { ...repo.env, KOPI_DOCKA_KOPIA_BIN: '/nonexistent/kopia' };
    const dry = await cli({ env }, ['backup', '--dry-run']);
    assert.equal(dry.code, 4, describeRun(dry));
    const run = await cli({ env }, ['backup']);
    assert.equal(run.code, 4, describeRun(run));
    const check = await cli({ env }, ['check']);
    assert.equal(check.code, 4, describeRun(check));
  });

  it('doctor with a wrong password exits 5 as documented, not 1', async (t) => {
    const repo = await makeRepoConfig(t);
    await cliOk(repo, ['init']);
    await repo.configure({ kopia: { password: 'not-the-password' } });
    const r = await cli(repo, ['doctor']);
    assert.equal(r.code, 5, describeRun(r));
    assert.match(r.stdout, /wrong password/);
  });

  it("doctor tells a live run's journal from a dead run's", async (t) => {
    const repo = await makeRepoConfig(t);
    await cliOk(repo, ['init']);
    const journal = (pid: number) =>
      JSON.stringify({
        entries: [
          {
            pid,
            backupId: '2026-11-30T18-00-00Z',
            unit: 'web',
            stoppedAt: new Date().toISOString(),
            containers: [{ id: 'x', name: 'web-app-1' }],
          },
        ],
      });
    const file = path.join(repo.stateDir, 'journal.json');
    // This test process is alive: a run in progress.
    await writeFile(file, journal(process.pid));
    const live = await cli(repo, ['doctor']);
    assert.match(live.stdout, /OK\s+journal\s+backup \S+ is running/, describeRun(live));
    assert.equal(live.code, 0, describeRun(live));
    // A pid that cannot exist (above pid_max): a dead run.
    await writeFile(file, journal(2 ** 22 + 1));
    const dead = await cli(repo, ['doctor']);
    assert.match(
      dead.stdout,
      /FAIL\s+journal\s+backup \S+ \(pid \d+, no longer running\) left web-app-1 stopped/,
    );
    assert.equal(dead.code, 1, describeRun(dead));
  });

  it("the original README's example config runs init, list and a backup unchanged but for paths", async (t) => {
    const repo = await makeRepoConfig(t);
    const original = await readFile(path.join(REPO_ROOT, 'test', 'fixtures', 'original-readme.conf'), 'utf8');
    const ini = original
      .replaceAll('/backup/', `${repo.dir}/backup/`)
      .replaceAll('/var/cache/kopia', `${repo.dir}/cache`);
    await writeFile(repo.configPath, ini, { mode: 0o600 });
    await cliOk(repo, ['init']);
    const s = await createStack(t, {
      files: {
        'docker-compose.yml': `services:\n  app:\n    image: ${TEST_IMAGE}\n    command: sleep 3600\n`,
      },
    });
    const list = await cliOk(repo, ['list', '--units']);
    assert.match(list.stdout, new RegExp(s.project));
    const run = await cli(repo, ['backup', '--unit', s.project]);
    assert.equal(run.code, 0, describeRun(run));
    // encryption = aes256 was the original's name for Kopia's AES256-GCM-HMAC-SHA256.
    const shown = await cliOk(repo, ['config', 'show']);
    assert.match(shown.stdout, /AES256-GCM-HMAC-SHA256/);
  });
});
