/**
 * A cheap check that the machine is what the integration suite expects (scripts/provision.sh made it
 * so): Docker answers with API >= 1.41, docker-compose runs, kopia is the pinned version, and the test
 * image runs and stops promptly on SIGTERM (with `init: true`/`--init`, or a shell that traps TERM).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import {
  KOPIA_BIN,
  REPO_ROOT,
  TEST_IMAGE,
  compose,
  createStack,
  docker,
  registerCleanup,
  uniqueName,
} from './helpers.js';

const execFileP = promisify(execFile);

/** The loop test containers run when they cannot use docker-init. */
const TRAP_LOOP = 'trap "exit 0" TERM; while :; do sleep 1; done';

async function pinnedKopiaVersion(): Promise<string> {
  const text = await readFile(path.join(REPO_ROOT, 'scripts', 'versions.env'), 'utf8');
  const m = /^KOPIA_VERSION=(\S+)$/m.exec(text);
  assert.ok(m?.[1], 'scripts/versions.env pins KOPIA_VERSION');
  return m[1];
}

function versionAtLeast(actual: string, wanted: string): boolean {
  const a = actual.split('.').map(Number);
  const w = wanted.split('.').map(Number);
  for (let i = 0; i < Math.max(a.length, w.length); i++) {
    const x = a[i] ?? 0;
    const y = w[i] ?? 0;
    if (x !== y) return x > y;
  }
  return true;
}

/** Seconds `docker stop -t 10` takes for a running container. */
async function timeStop(name: string): Promise<number> {
  const started = process.hrtime.bigint();
  await docker(['stop', '-t', '10', name]);
  return Number(process.hrtime.bigint() - started) / 1e9;
}

void test('the Docker daemon answers with API >= 1.41', async () => {
  const r = await docker(['version', '--format', '{{.Server.APIVersion}}']);
  const api = r.stdout.trim();
  assert.match(api, /^\d+\.\d+$/, `unexpected API version '${api}'`);
  assert.ok(versionAtLeast(api, '1.41'), `Docker API ${api} < 1.41`);
});

void test('docker-compose (v1) runs', async () => {
  const { stdout } = await execFileP('docker-compose', ['version', '--short']);
  assert.match(stdout.trim(), /^\d+\.\d+\.\d+/);
});

void test('kopia reports the pinned version', async () => {
  const pinned = await pinnedKopiaVersion();
  const { stdout } = await execFileP(KOPIA_BIN, ['--version'], {
    env: { ...process.env, KOPIA_CHECK_FOR_UPDATES: 'false' },
  });
  // Release builds print "0.23.1 build: …", `go build` prints "v0.23.1 build: …".
  const reported = (stdout.trim().split(/\s+/)[0] ?? '').replace(/^v/, '');
  assert.equal(reported, pinned, `${KOPIA_BIN} --version printed: ${stdout}`);
});

void test('the test image runs with --init', async () => {
  const r = await docker(['run', '--rm', '--init', TEST_IMAGE, 'sh', '-c', 'echo ok']);
  assert.equal(r.stdout.trim(), 'ok');
});

void test('the test image has the applets tests rely on', async () => {
  const applets =
    'sh sleep cat ls echo touch mkdir rm test true false wc sha256sum dd head seq chmod chown ln stat find kill';
  const r = await docker([
    'run',
    '--rm',
    TEST_IMAGE,
    'sh',
    '-c',
    `for a in ${applets}; do command -v "$a" >/dev/null || echo "missing $a"; done; echo done`,
  ]);
  assert.equal(r.stdout.trim(), 'done', r.stdout);
});

void test('a test container with --init stops promptly on SIGTERM', async (t) => {
  const name = uniqueName('init');
  registerCleanup(t, async () => {
    await docker(['rm', '-f', name], { allowFail: true });
  });
  await docker(['run', '-d', '--init', '--name', name, TEST_IMAGE, 'sleep', '300']);
  const seconds = await timeStop(name);
  assert.ok(
    seconds < 5,
    `docker stop -t 10 took ${seconds.toFixed(1)} s (docker-init should forward SIGTERM)`,
  );
});

void test('a test container trapping TERM stops promptly without --init', async (t) => {
  const name = uniqueName('trap');
  registerCleanup(t, async () => {
    await docker(['rm', '-f', name], { allowFail: true });
  });
  await docker(['run', '-d', '--name', name, TEST_IMAGE, 'sh', '-c', TRAP_LOOP]);
  const seconds = await timeStop(name);
  assert.ok(seconds < 5, `docker stop -t 10 took ${seconds.toFixed(1)} s (the TERM trap should exit)`);
});

void test('createStack: a Compose service with init: true comes up and stops promptly', async (t) => {
  const stack = await createStack(t, {
    files: {
      'docker-compose.yml': [
        "version: '2.4'",
        'services:',
        '  app:',
        `    image: ${TEST_IMAGE}`,
        '    init: true',
        '    command: ["sleep", "300"]',
        '    volumes:',
        '      - data:/data',
        '      - ./files:/files',
        'volumes:',
        '  data: {}',
        '',
      ].join('\n'),
      'files/hello.txt': 'hello\n',
    },
  });
  const ps = await compose(stack.dir, stack.project, ['ps', '-q']);
  const id = ps.stdout.trim();
  assert.match(id, /^[0-9a-f]{12,}$/, `one running container expected, got: ${ps.stdout}`);
  const cat = await docker(['exec', id, 'cat', '/files/hello.txt']);
  assert.equal(cat.stdout, 'hello\n');
  const started = process.hrtime.bigint();
  await compose(stack.dir, stack.project, ['stop', '-t', '10']);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  assert.ok(seconds < 5, `docker-compose stop -t 10 took ${seconds.toFixed(1)} s`);
  await stack.down();
  const left = await docker(['ps', '-aq', '--filter', `label=com.docker.compose.project=${stack.project}`]);
  assert.equal(left.stdout.trim(), '', 'down() removed the containers');
  const vols = await docker([
    'volume',
    'ls',
    '-q',
    '--filter',
    `label=com.docker.compose.project=${stack.project}`,
  ]);
  assert.equal(vols.stdout.trim(), '', 'down() removed the volumes');
});
