/**
 * Every backend kopi-docka claims and can reach here, for real: the argv/env from `repositoryArgs`
 * drive the real kopia binary against a server the test starts on 127.0.0.1 (test/servers/*.ts) —
 * filesystem, SFTP (a private sshd, key auth, known_hosts), WebDAV (rclone serve webdav, basic auth)
 * and S3 (versitygw). For each: create a repository, snapshot a small directory, check that
 * `repository status --json` maps back to the same backend, disconnect, connect again with the same
 * builder, list the snapshot, restore it and compare bytes. Secrets are checked to be absent from the
 * argv (what `ps` shows). Servers stop themselves (t.after, and the kernel's parent-death signal).
 *
 * Needs: kopia (scripts/provision.sh), openssh-server, rclone and versitygw (scripts/servers.sh).
 * A missing server skips its test with the reason.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { run } from '../../src/adapters/process.js';
import {
  backendFromStatus,
  describeBackend,
  repositoryArgs,
  sameBackend,
  type BackendSecrets,
  type RepositoryBackend,
} from '../../src/core/repository-backend.js';
import { REPO_ROOT, findCommand, makeTempDir } from '../servers/common.js';
import { s3Unavailable, startS3Server } from '../servers/s3.js';
import { sftpUnavailable, startSftpServer } from '../servers/sftp.js';
import { startWebdavServer, webdavUnavailable } from '../servers/webdav.js';
import { rm } from 'node:fs/promises';

const KOPIA = process.env.KOPI_DOCKA_KOPIA_BIN || findCommand('kopia') || 'kopia';
const TIMEOUT_MS = 120_000;

interface Client {
  dir: string;
  configFile: string;
  cacheDir: string;
  password: string;
}

async function newClient(t: TestContext): Promise<Client> {
  const dir = await makeTempDir('kopia-client');
  t.after(() => rm(dir, { recursive: true, force: true }));
  return {
    dir,
    configFile: path.join(dir, 'repository.config'),
    cacheDir: path.join(dir, 'cache'),
    password: randomBytes(16).toString('hex'),
  };
}

async function kopia(
  c: Client,
  args: string[],
  extraEnv: Record<string, string> = {},
): Promise<{ stdout: string; argv: string[] }> {
  const argv = [KOPIA, ...args, `--config-file=${c.configFile}`];
  const res = await run(argv, {
    env: {
      KOPIA_PASSWORD: c.password,
      KOPIA_CHECK_FOR_UPDATES: 'false',
      KOPIA_LOG_DIR: path.join(c.dir, 'logs'),
      ...extraEnv,
    },
    timeoutMs: TIMEOUT_MS,
  });
  assert.equal(
    res.code,
    0,
    `kopia ${args.slice(0, 3).join(' ')} failed (${String(res.code)}): ${res.stderrTail.trim()}`,
  );
  return { stdout: res.stdout, argv };
}

function connectFlags(c: Client): string[] {
  return [
    '--override-hostname=kd-test-host',
    '--override-username=kd-test',
    `--cache-directory=${c.cacheDir}`,
    '--no-check-for-updates',
    '--no-persist-credentials',
  ];
}

/** The whole round trip for one backend; returns nothing, asserts everything. */
async function roundTrip(t: TestContext, backend: RepositoryBackend, secrets: BackendSecrets): Promise<void> {
  const c = await newClient(t);
  const { argv, env } = repositoryArgs(backend, secrets);
  for (const s of Object.values(secrets)) {
    if (typeof s !== 'string' || s === '') continue;
    assert.ok(!argv.some((a) => a.includes(s)), 'a secret reached the argv');
  }
  assert.ok(!describeBackend(backend).includes(secrets.s3SecretAccessKey ?? '\0'));

  const src = path.join(c.dir, 'src');
  await mkdir(path.join(src, 'sub'), { recursive: true });
  const payload = randomBytes(300_000);
  await writeFile(path.join(src, 'data.bin'), payload);
  await writeFile(path.join(src, 'sub', 'hello.txt'), `hello from ${backend.kind}\n`);

  const created = await kopia(c, ['repository', 'create', ...argv, ...connectFlags(c)], env);
  for (const s of Object.values(secrets)) {
    if (typeof s === 'string' && s !== '') assert.ok(!created.argv.join(' ').includes(s));
  }
  await kopia(c, ['snapshot', 'create', src, '--json', '--no-progress']);

  // Kopia's own view of the connection maps back to the configured backend.
  const status: unknown = JSON.parse((await kopia(c, ['repository', 'status', '--json'])).stdout);
  const seen = backendFromStatus(status);
  assert.ok(seen, `backendFromStatus understood ${JSON.stringify(status)}`);
  assert.ok(sameBackend(backend, seen), `${describeBackend(seen)} is ${describeBackend(backend)}`);

  await kopia(c, ['repository', 'disconnect']);
  await kopia(c, ['repository', 'connect', ...argv, ...connectFlags(c)], env);
  const list = JSON.parse((await kopia(c, ['snapshot', 'list', '--json', '--all'])).stdout) as {
    id: string;
    source: { path: string };
  }[];
  const snap = list.find((s) => s.source.path === src);
  assert.ok(snap, `snapshot of ${src} listed after reconnecting`);

  const target = path.join(c.dir, 'restored');
  await kopia(c, ['restore', snap.id, target, '--no-progress']);
  assert.deepEqual(await readFile(path.join(target, 'data.bin')), payload);
  assert.equal(await readFile(path.join(target, 'sub', 'hello.txt'), 'utf8'), `hello from ${backend.kind}\n`);
  assert.deepEqual((await readdir(target)).sort(), ['data.bin', 'sub']);
}

describe('repository backends against real servers on 127.0.0.1', { timeout: 600_000 }, () => {
  it('filesystem', async (t) => {
    const dir = await makeTempDir('fsrepo');
    t.after(() => rm(dir, { recursive: true, force: true }));
    await roundTrip(t, { kind: 'filesystem', path: path.join(dir, 'repo') }, {});
  });

  it('sftp (private sshd, key auth, known_hosts)', { skip: sftpUnavailable() ?? false }, async (t) => {
    const srv = await startSftpServer();
    t.after(srv.stop);
    await roundTrip(
      t,
      {
        kind: 'sftp',
        host: srv.host,
        port: srv.port,
        username: srv.username,
        path: path.join(srv.dataDir, 'repo'),
        keyFile: srv.keyFile,
        knownHostsFile: srv.knownHostsFile,
      },
      {},
    );
  });

  it(
    'sftp refuses a server whose host key is not in known_hosts',
    { skip: sftpUnavailable() ?? false },
    async (t) => {
      const srv = await startSftpServer();
      t.after(srv.stop);
      const c = await newClient(t);
      const otherKnownHosts = path.join(c.dir, 'known_hosts');
      // A syntactically valid entry for the same host:port with another key.
      await writeFile(
        otherKnownHosts,
        `[127.0.0.1]:${srv.port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGk0Rrj2Uy4M9ykFSzOqUpPJXMmO0/U8QZNvrzdKMfJr\n`,
      );
      const { argv, env } = repositoryArgs({
        kind: 'sftp',
        host: srv.host,
        port: srv.port,
        username: srv.username,
        path: path.join(srv.dataDir, 'repo'),
        keyFile: srv.keyFile,
        knownHostsFile: otherKnownHosts,
      });
      const res = await run(
        [KOPIA, 'repository', 'create', ...argv, ...connectFlags(c), `--config-file=${c.configFile}`],
        {
          env: { ...env, KOPIA_PASSWORD: c.password, KOPIA_CHECK_FOR_UPDATES: 'false', KOPIA_LOG_DIR: c.dir },
          timeoutMs: TIMEOUT_MS,
        },
      );
      assert.notEqual(res.code, 0);
      assert.match(res.stderrTail, /key mismatch|knownhosts|host key/i);
    },
  );

  it(
    'webdav (rclone serve webdav, basic auth from the environment)',
    { skip: webdavUnavailable() ?? false },
    async (t) => {
      const srv = await startWebdavServer();
      t.after(srv.stop);
      // Kopia does not create the collection a WebDAV URL names; a real server's admin would.
      await mkdir(path.join(srv.dataDir, 'repo'));
      await roundTrip(
        t,
        { kind: 'webdav', url: `${srv.url}repo/` },
        { webdavUsername: srv.username, webdavPassword: srv.password },
      );
    },
  );

  it('s3 (versitygw, prefix, region, no TLS on loopback)', { skip: s3Unavailable() ?? false }, async (t) => {
    const srv = await startS3Server({ buckets: ['kd-bucket'] });
    t.after(srv.stop);
    await roundTrip(
      t,
      {
        kind: 's3',
        bucket: 'kd-bucket',
        endpoint: srv.endpoint,
        region: srv.region,
        prefix: 'hosts/test-host/',
        disableTls: true,
      },
      { s3AccessKeyId: srv.accessKeyId, s3SecretAccessKey: srv.secretAccessKey },
    );
    // The prefix really is where the repository went.
    const under = await readdir(path.join(srv.dataDir, 'kd-bucket', 'hosts', 'test-host'));
    assert.ok(under.includes('kopia.repository'), `kopia.repository under the prefix: ${under.join(', ')}`);
  });
});

describe('test servers never outlive the test process', () => {
  it(
    'SIGKILL of the process that started them takes sshd, rclone and versitygw down too',
    {
      skip: sftpUnavailable() ?? webdavUnavailable() ?? s3Unavailable() ?? false,
    },
    async (t) => {
      // A separate Node process starts all three servers, prints their pids, and is then SIGKILLed: no
      // cleanup code of its own runs; only the parent-death signal (setpriv --pdeathsig) can stop them.
      const script = [
        "import { startSftpServer } from './test/servers/sftp.ts';",
        "import { startWebdavServer } from './test/servers/webdav.ts';",
        "import { startS3Server } from './test/servers/s3.ts';",
        'const s = await Promise.all([startSftpServer(), startWebdavServer(), startS3Server({ buckets: [] })]);',
        "process.stdout.write(JSON.stringify(s.map((x) => [x.pid, x.dir])) + '\\n');",
        'setInterval(() => {}, 1000);',
      ].join('\n');
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        cwd: REPO_ROOT,
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const line = await new Promise<string>((resolve, reject) => {
        let buf = '';
        child.stdout.on('data', (c: Buffer) => {
          buf += c.toString();
          if (buf.includes('\n')) resolve(buf.split('\n')[0] ?? '');
        });
        child.once('exit', (code) => reject(new Error(`the server starter exited early (${String(code)})`)));
        setTimeout(() => reject(new Error('servers did not start within 60 s')), 60_000).unref();
      });
      const started = JSON.parse(line) as [number, string][];
      t.after(() => Promise.all(started.map(([, dir]) => rm(dir, { recursive: true, force: true }))));
      const pids = started.map(([pid]) => pid);
      assert.equal(pids.length, 3);
      for (const pid of pids) assert.ok(pid > 0 && isAlive(pid), `server ${pid} runs`);
      child.kill('SIGKILL');
      const deadline = Date.now() + 10_000;
      while (pids.some(isAlive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(pids.filter(isAlive), [], 'every server died with its parent');
    },
  );
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    // A zombie (not yet reaped) is dead for our purpose.
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}
