/**
 * scripts/quickstart.sh against real Docker and real Kopia, with a temporary repository, config and
 * state dir (never /var/lib/kopi-docka):
 *
 * - no terminal and no --yes: it stops after the plan (`backup --dry-run`), exits 0, says how to
 *   continue (with the backup arguments), and backs up or stops nothing — for a test stack's unit
 *   (`--unit`), on whatever the host has, and with the demo forced;
 * - on a terminal it asks ("Back up these N units now? this stops …"), says "answer y or n" to anything
 *   else, and `n` backs up and stops nothing;
 * - `--yes` is quickstart's own: the other arguments reach `backup` (`--unit` of a test stack);
 * - the demo round trip (KD_QUICKSTART_DEMO=1, since a shared test host has other units): the demo is
 *   backed up, destroyed, restored with its file intact, and removed — also when a step fails.
 *
 * The last line of every outcome names documentation that exists.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, rm, writeFile, chmod } from 'node:fs/promises';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import {
  COMPOSE_FLAVOUR,
  cliOk,
  createStack,
  docker,
  makeRepoConfig,
  makeTempDir,
  registerCleanup,
  REPO_ROOT,
  TEST_IMAGE,
  uniqueName,
  type RepoConfig,
} from './helpers.js';

const SCRIPT = path.join(REPO_ROOT, 'scripts', 'quickstart.sh');
const TIMEOUT_MS = 300_000;

interface Run {
  code: number | null;
  output: string;
}

function describeRun(r: Run): string {
  return `exit ${String(r.code)}\n--- output\n${r.output}`;
}

/**
 * `bash scripts/quickstart.sh …args` with stdin /dev/null (no terminal); stderr goes into stdout (one
 * pipe, so the lines keep the order a terminal shows).
 */
function quickstart(args: string[], env: Record<string, string>): Promise<Run> {
  const child = spawn('bash', ['-c', 'exec bash "$0" "$@" 2>&1', SCRIPT, ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  child.stdout.on('data', (b: Buffer) => (output += b.toString('utf8')));
  child.stderr.on('data', (b: Buffer) => (output += b.toString('utf8')));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      reject(new Error(`quickstart timed out after ${TIMEOUT_MS} ms:\n${output}`));
    }, TIMEOUT_MS);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

/**
 * quickstart on a pseudo-terminal (util-linux `script`, as test/integration/restore.test.ts drives the
 * wizard): answers each prompt as it appears.
 */
async function quickstartOnPty(
  args: string[],
  env: Record<string, string>,
  steps: { expect: RegExp; answer: string }[],
): Promise<Run> {
  const cmd = ['bash', SCRIPT, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const child = spawn('script', ['-qfec', cmd, '/dev/null'], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env, TERM: 'dumb' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (b: Buffer) => (output += b.toString('utf8')));
  child.stderr.on('data', (b: Buffer) => (output += b.toString('utf8')));
  child.stdin.on('error', () => undefined);
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  let done = false;
  void exited.then(() => (done = true));
  const timer = setTimeout(() => child.kill('SIGKILL'), TIMEOUT_MS);
  try {
    let from = 0;
    for (const step of steps) {
      for (;;) {
        const m = step.expect.exec(output.slice(from));
        if (m) {
          from += m.index + m[0].length;
          break;
        }
        if (done) throw new Error(`quickstart exited before asking ${String(step.expect)}:\n${output}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      child.stdin.write(`${step.answer}\r`);
    }
    return { code: await exited, output };
  } finally {
    clearTimeout(timer);
    child.stdin.end();
    if (!done) child.kill('SIGKILL');
  }
}

/** A fresh repository + config + state dir, and the environment quickstart runs with. */
async function setup(
  t: TestContext,
  extra: Record<string, string> = {},
): Promise<{ repo: RepoConfig; env: Record<string, string>; demo: string; image: string }> {
  const repo = await makeRepoConfig(t, { prefix: 'quickstart' });
  const demo = uniqueName('qs-demo');
  const image = `${demo}:busybox`;
  registerCleanup(t, () => removeDemo(demo, image));
  return {
    repo,
    demo,
    image,
    env: {
      ...repo.env,
      KD_QUICKSTART_DEMO_NAME: demo,
      KD_QUICKSTART_DEMO_IMAGE: image,
      KD_QUICKSTART_COMPOSE: COMPOSE_FLAVOUR,
      ...extra,
    },
  };
}

/** Whatever of the demo a broken quickstart might have left (the test's own cleanup). */
async function removeDemo(project: string, image: string): Promise<void> {
  const label = `label=com.docker.compose.project=${project}`;
  const ids = (await docker(['ps', '-aq', '--filter', label], { allowFail: true })).stdout.split('\n');
  const containers = ids.filter(Boolean);
  if (containers.length > 0) await docker(['rm', '-f', '-v', ...containers], { allowFail: true });
  await docker(['volume', 'rm', '-f', `${project}_data`], { allowFail: true });
  const nets = (await docker(['network', 'ls', '-q', '--filter', label], { allowFail: true })).stdout;
  for (const n of nets.split('\n').filter(Boolean)) await docker(['network', 'rm', n], { allowFail: true });
  await docker(['rmi', image], { allowFail: true });
}

/** What of the demo exists on the daemon now. */
async function demoLeftovers(project: string, image: string): Promise<string[]> {
  const left: string[] = [];
  const label = `label=com.docker.compose.project=${project}`;
  if ((await docker(['ps', '-aq', '--filter', label])).stdout.trim()) left.push('containers');
  if ((await docker(['volume', 'inspect', `${project}_data`], { allowFail: true })).code === 0)
    left.push(`volume ${project}_data`);
  if ((await docker(['network', 'ls', '-q', '--filter', label])).stdout.trim()) left.push('network');
  if ((await docker(['image', 'inspect', image], { allowFail: true })).code === 0)
    left.push(`image ${image}`);
  return left;
}

async function restorePoints(repo: RepoConfig): Promise<{ unit: string; backupId: string }[]> {
  const r = await cliOk(repo, ['restore', '--list', '--json']);
  return (JSON.parse(r.stdout) as { restorePoints: { unit: string; backupId: string }[] }).restorePoints;
}

/** The last non-empty line names only documentation that exists (files, and README sections). */
async function assertDocsLine(r: Run): Promise<void> {
  const lines = r.output
    .replace(/\r/g, '')
    .split('\n')
    .filter((l) => l.trim() !== '');
  const last = lines.at(-1) ?? '';
  assert.match(last, /docs\/restore\.md/, describeRun(r));
  const files = [...last.matchAll(/\b((?:docs\/)?[\w.-]+\.md)\b/g)].map((m) => m[1] ?? '');
  assert.ok(files.length >= 2, last);
  for (const f of files) assert.ok(existsSync(path.join(REPO_ROOT, f)), `${f} (named in "${last}") exists`);
  const readme = await readFile(path.join(REPO_ROOT, 'README.md'), 'utf8');
  for (const m of last.matchAll(/README\.md "([^"]+)"/g)) {
    assert.match(readme, new RegExp(`^## ${m[1] ?? ''}$`, 'm'), `README.md has a "${m[1] ?? ''}" section`);
  }
}

/** A one-service Compose stack of the test image with a named volume (removed after the test). */
function oneServiceStack(t: TestContext, prefix: string): ReturnType<typeof createStack> {
  return createStack(t, {
    name: uniqueName(prefix),
    files: {
      'docker-compose.yml': [
        "version: '2.4'",
        'services:',
        '  app:',
        `    image: ${TEST_IMAGE}`,
        '    init: true',
        '    command: ["sleep", "3600"]',
        '    volumes:',
        '      - vol:/data',
        'volumes:',
        '  vol: {}',
        '',
      ].join('\n'),
    },
  });
}

/** When the project's one container last started (changes when a backup stops and starts it). */
async function startedAt(project: string): Promise<string> {
  const id = (
    await docker(['ps', '-q', '--filter', `label=com.docker.compose.project=${project}`])
  ).stdout.trim();
  assert.ok(id && !id.includes('\n'), `one running container in ${project}`);
  return (await docker(['inspect', '-f', '{{.State.StartedAt}}', id])).stdout.trim();
}

function assertStoppedAfterPlan(r: Run): void {
  assert.equal(r.code, 0, describeRun(r));
  assert.match(r.output, /Backup plan /, 'the dry-run plan is shown');
  assert.match(r.output, /stopped after the plan \(no terminal to ask on, and no --yes\)/, describeRun(r));
  assert.match(r.output, /bash scripts\/quickstart\.sh --yes/, 'says how to continue');
  assert.match(r.output, /kopi-docka backup/, 'says how to continue');
  assert.doesNotMatch(r.output, /==> \[\d+\] (Back up|Demo)/, 'no backup or demo step ran');
}

describe('scripts/quickstart.sh (real Docker, real Kopia, temporary repository)', () => {
  it('no terminal, no --yes: stops after the plan, says how to continue, backs up nothing', async (t) => {
    const { repo, env, demo, image } = await setup(t);
    const r = await quickstart([], env);
    assertStoppedAfterPlan(r);
    await assertDocsLine(r);
    assert.deepEqual(await restorePoints(repo), [], 'no restore point was made');
    assert.deepEqual(await demoLeftovers(demo, image), []);
  });

  it('no terminal, no --yes, demo forced: stops after the plan too, creates nothing', async (t) => {
    const { repo, env, demo, image } = await setup(t, { KD_QUICKSTART_DEMO: '1' });
    const r = await quickstart([], env);
    assertStoppedAfterPlan(r);
    assert.match(r.output, /demo stack/);
    await assertDocsLine(r);
    assert.deepEqual(await restorePoints(repo), []);
    assert.deepEqual(await demoLeftovers(demo, image), []);
  });

  it('on a terminal it asks; "maybe" gets "answer y or n", "n" backs up nothing', async (t) => {
    const { repo, env, demo, image } = await setup(t);
    const r = await quickstartOnPty([], env, [
      {
        expect: /(Back up these \d+ units now\?|Run the demo round trip now)[^\n]*\[y\/N\] $/,
        answer: 'maybe',
      },
      { expect: /answer y or n[\s\S]*\[y\/N\] $/, answer: 'n' },
    ]);
    assert.equal(r.code, 0, describeRun(r));
    assert.match(r.output, /nothing was (stopped|created or backed up)/);
    await assertDocsLine(r);
    assert.deepEqual(await restorePoints(repo), []);
    assert.deepEqual(await demoLeftovers(demo, image), []);
  });

  it('on a terminal, units: the question names them and what a backup does; "n" stops nothing', async (t) => {
    const { repo, env } = await setup(t, { KD_QUICKSTART_DEMO: '0' });
    const s = await oneServiceStack(t, 'qs-pty');
    const started = await startedAt(s.project);
    const r = await quickstartOnPty(['--unit', s.project], env, [
      {
        expect:
          /Back up these 1 units now\? this stops each unit's containers while it is snapshotted \[y\/N\] $/,
        answer: 'n',
      },
    ]);
    assert.equal(r.code, 0, describeRun(r));
    assert.match(r.output, /not backing up; nothing was stopped/);
    await assertDocsLine(r);
    assert.deepEqual(await restorePoints(repo), []);
    assert.equal(await startedAt(s.project), started, 'nothing was stopped');
  });

  it('--yes is its own: the other arguments reach backup (--unit of one stack only)', async (t) => {
    const { repo, env } = await setup(t, { KD_QUICKSTART_DEMO: '0' });
    const s = await oneServiceStack(t, 'qs-unit');
    const started = await startedAt(s.project);
    // Without --yes and without a terminal: the plan, how to continue (with the arguments), nothing stopped.
    const stopped = await quickstart(['--unit', s.project], env);
    assertStoppedAfterPlan(stopped);
    assert.match(stopped.output, /To back up these 1 unit\(s\)/, describeRun(stopped));
    assert.ok(stopped.output.includes(`kopi-docka backup --unit ${s.project}`), describeRun(stopped));
    assert.ok(stopped.output.includes(`bash scripts/quickstart.sh --yes --unit ${s.project}`));
    await assertDocsLine(stopped);
    assert.deepEqual(await restorePoints(repo), []);
    assert.equal(await startedAt(s.project), started, 'nothing was stopped');

    const r = await quickstart(['--yes', '--unit', s.project], env);
    assert.equal(r.code, 0, describeRun(r));
    assert.match(r.output, /Back up these 1 unit|Back up \(1 unit/, describeRun(r));
    assert.match(r.output, new RegExp(`backup --unit ${s.project}\\n`), 'backup got --unit, not --yes');
    await assertDocsLine(r);
    const units = [...new Set((await restorePoints(repo)).map((p) => p.unit))];
    assert.deepEqual(units, [s.project]);
  });

  it('--yes, demo: backed up, destroyed, restored with the same file, removed (containers, volume, dirs, image)', async (t) => {
    const { repo, env, demo, image } = await setup(t, { KD_QUICKSTART_DEMO: '1' });
    const r = await quickstart(['--yes'], env);
    assert.equal(r.code, 0, describeRun(r));
    const written = /token (\d+)'? *\n/.exec(r.output)?.[1];
    assert.ok(written, `the file's token is shown:\n${r.output}`);
    assert.match(
      r.output,
      new RegExp(`/data/hello\\.txt is back: kopi-docka demo file, written \\S+, token ${written}\\n`),
    );
    for (const step of [
      'back it up',
      'destroy it',
      'restore it',
      'start it from the restored project directory',
    ])
      assert.match(r.output, new RegExp(`Demo: ${step}`));
    assert.match(r.output, /demo removed/);
    await assertDocsLine(r);
    // The restore point stays; everything else of the demo is gone.
    const points = await restorePoints(repo);
    assert.deepEqual(
      points.map((p) => p.unit),
      [demo],
    );
    assert.deepEqual(await demoLeftovers(demo, image), []);
    const demoDir = /Demo: create Compose project \S+ in (\S+)/.exec(r.output)?.[1];
    assert.ok(demoDir, r.output);
    assert.equal(existsSync(demoDir), false, `${demoDir} removed`);
    assert.equal(existsSync(path.join(repo.stateDir, 'restore', demo)), false, 'restore working dir removed');
  });

  it("a failing demo step still removes the demo, and exits with that step's code", async (t) => {
    // `docker compose … exec` fails (the file cannot be written); every other docker call is real.
    const shimDir = await makeTempDir('qs-shim');
    registerCleanup(t, () => rm(shimDir, { recursive: true, force: true }));
    const which = await new Promise<string>((resolve) => {
      const c = spawn('sh', ['-c', 'command -v docker'], { stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      c.stdout.on('data', (b: Buffer) => (out += b.toString('utf8')));
      c.once('close', () => resolve(out.trim()));
    });
    assert.ok(which.startsWith('/'), `docker found on PATH: ${which}`);
    const shim = path.join(shimDir, 'docker');
    await writeFile(
      shim,
      [
        '#!/bin/sh',
        'if [ "$1" = compose ]; then',
        '  for a in "$@"; do [ "$a" = exec ] && { echo "injected failure" >&2; exit 42; }; done',
        'fi',
        `exec '${which}' "$@"`,
        '',
      ].join('\n'),
    );
    await chmod(shim, 0o755);
    const { repo, env, demo, image } = await setup(t, {
      KD_QUICKSTART_DEMO: '1',
      KD_QUICKSTART_COMPOSE: 'v2',
      PATH: `${shimDir}:${process.env.PATH ?? ''}`,
    });
    const r = await quickstart(['--yes'], env);
    assert.equal(r.code, 42, describeRun(r));
    assert.match(r.output, /injected failure/);
    assert.match(r.output, /the demo round trip failed \(exit code 42\)/);
    await assertDocsLine(r);
    assert.deepEqual(await restorePoints(repo), [], 'it failed before the backup');
    assert.deepEqual(await demoLeftovers(demo, image), []);
    const demoDir = /Demo: create Compose project \S+ in (\S+)/.exec(r.output)?.[1];
    assert.ok(demoDir, r.output);
    assert.equal(existsSync(demoDir), false, `${demoDir} removed`);
  });
});
