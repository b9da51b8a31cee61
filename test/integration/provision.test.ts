/**
 * A cheap check that the machine is what the integration suite expects (scripts/provision.sh and
 * scripts/engine.sh made it so), for the engine under test (DOCKER_HOST, else the default socket) and
 * the Compose under test (helpers' COMPOSE_FLAVOUR): Docker answers with API >= 1.41 and its supported
 * range, a daemon that refuses old API versions (Engine 29: below 1.44) really does and still answers
 * kopi-docka, the Compose under test runs and is that flavour, kopia is the pinned version, and the test
 * image runs and stops promptly on SIGTERM (with `init: true`/`--init`, or a shell that traps TERM).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import {
  COMPOSE_COMMAND,
  COMPOSE_FLAVOUR,
  KOPIA_BIN,
  REPO_ROOT,
  TEST_IMAGE,
  cliOk,
  compose,
  createStack,
  docker,
  makeRepoConfig,
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

/** The daemon's API version and the oldest it accepts, as it reports them (through the docker CLI). */
async function daemonApi(): Promise<{ api: string; min: string }> {
  const r = await docker(['version', '--format', '{{.Server.APIVersion}} {{.Server.MinAPIVersion}}']);
  const [api = '', min = ''] = r.stdout.trim().split(' ');
  assert.match(api, /^\d+\.\d+$/, `unexpected API version '${api}'`);
  assert.match(min, /^\d+\.\d+$/, `unexpected minimum API version '${min}'`);
  return { api, min };
}

/** The daemon's unix socket: DOCKER_HOST (unix:// only), else the default; undefined for tcp:// etc. */
function daemonSocket(): string | undefined {
  const host = process.env.DOCKER_HOST;
  if (!host) return '/var/run/docker.sock';
  return host.startsWith('unix://') ? host.slice('unix://'.length) : undefined;
}

/** GET `urlPath` on the daemon's socket: status code and body. */
function daemonGet(socketPath: string, urlPath: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath, path: urlPath, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${urlPath} on ${socketPath} timed out`)));
    req.on('error', reject);
  });
}

void test('the Docker daemon answers with API >= 1.41 and a range that includes it', async () => {
  const { api, min } = await daemonApi();
  assert.ok(versionAtLeast(api, '1.41'), `Docker API ${api} < 1.41`);
  assert.ok(versionAtLeast(api, min), `API ${api} below the daemon's own minimum ${min}`);
});

void test('a daemon refusing API 1.41 does so, and kopi-docka still talks to it', async (t) => {
  const { api, min } = await daemonApi();
  const socket = daemonSocket();
  if (!socket) {
    t.skip(`DOCKER_HOST=${process.env.DOCKER_HOST ?? ''} is not a unix socket`);
    return;
  }
  // What a client pinned to 1.41 (Debian's docker.io 20.10 era) gets from this daemon.
  const old = await daemonGet(socket, '/v1.41/version');
  if (versionAtLeast('1.41', min)) {
    assert.equal(old.status, 200, `daemon (API ${min}..${api}) refused /v1.41/version: ${old.body}`);
  } else {
    assert.equal(old.status, 400, `daemon (API ${min}..${api}) answered /v1.41/version: ${old.body}`);
    assert.match(old.body, /too old|minimum supported API version/i, old.body);
  }
  // kopi-docka negotiates a version inside the daemon's range and lists this host's units.
  const repo = await makeRepoConfig(t, { prefix: 'provision' });
  const r = await cliOk(repo, ['list', '--units', '--json']);
  assert.ok(Array.isArray((JSON.parse(r.stdout) as { units?: unknown }).units), r.stdout);
});

void test(`${COMPOSE_COMMAND.join(' ')} (Compose ${COMPOSE_FLAVOUR}, the one under test) runs`, async () => {
  const [command = '', ...args] = COMPOSE_COMMAND;
  const { stdout } = await execFileP(command, [...args, 'version', '--short']);
  // v1 prints "1.29.2"; v2 "2.40.3" (older v2 releases: "v2.x.y").
  const m = /^v?(\d+)\.\d+\.\d+/.exec(stdout.trim());
  assert.ok(m, `unexpected version output: ${stdout}`);
  const major = Number(m[1]);
  if (COMPOSE_FLAVOUR === 'v1') assert.equal(major, 1, `expected Compose v1, got ${stdout.trim()}`);
  else assert.ok(major >= 2, `expected Compose v2 or later, got ${stdout.trim()}`);
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
  assert.ok(seconds < 5, `${COMPOSE_COMMAND.join(' ')} stop -t 10 took ${seconds.toFixed(1)} s`);
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
