/**
 * The fresh-host drill, for real, on three backends — filesystem, SFTP (a private sshd, key auth,
 * known_hosts) and S3 (versitygw) — with the built CLI, real Kopia and real Docker/Compose:
 *
 *  1. a Compose stack whose volume holds a random file; `kopi-docka init`, a backup, one bundle
 *     (filesystem: `backup --update-recovery`; SFTP: `[backup] update_recovery_bundle = true`; S3:
 *     `disaster-recovery --output DIR`);
 *  2. every piece of local state wiped: the kopi-docka config and password file, Kopia's config and
 *     cache, the state dir, the SFTP known_hosts and key; the stack's containers, volumes and project dir;
 *  3. the bundle decrypted with the `openssl` command line of its README alone, then `tar -x` and
 *     `sha256sum -c`;
 *  4. recover.sh run with the built CLI as `kopi-docka` on PATH (a wrapper script);
 *  5. `kopi-docka restore --unit U --backup-id latest --execute --yes`, the stack brought up from the
 *     project dir the restore printed: running and healthy, the file byte-identical.
 *
 * Plus: rotation keeps exactly recovery_bundle_retention bundles; a Kopia config connected to another
 * repository makes `check` refuse and `init` reconnect. The passphrase never appears in any output.
 *
 * Run under both engines: DOCKER_HOST unset (docker 20.10 + docker-compose v1) and
 * `DOCKER_HOST=unix:///run/kopi-docka-engine/docker.sock KD_TEST_COMPOSE=v2`.
 */
import assert from 'node:assert/strict';
import { chmod, copyFile, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { run } from '../../src/adapters/process.js';
import { s3Unavailable, startS3Server } from '../servers/s3.js';
import { sftpUnavailable, startSftpServer } from '../servers/sftp.js';
import {
  CLI_PATH,
  KOPIA_BIN,
  TEST_IMAGE,
  compose,
  composeContainer,
  createStack,
  describeRun,
  docker,
  makeTempDir,
  registerCleanup,
  runCli,
  testEnv,
  uniqueName,
  type CliResult,
} from './helpers.js';

const PASSWORD = 'dr-repository-password-7';

interface Host {
  /** Everything of the "host" lives under here and is wiped: config, password file, state, cache, ssh. */
  root: string;
  configPath: string;
  stateDir: string;
  /** The bundle directory: stands for a copy kept off the host (never wiped). */
  offsite: string;
  env: Record<string, string>;
}

async function cli(h: Host, args: string[]): Promise<CliResult> {
  return runCli(args, { env: h.env, timeoutMs: 300_000 });
}

async function cliOk(h: Host, args: string[]): Promise<CliResult> {
  const r = await cli(h, args);
  assert.equal(r.code, 0, `kopi-docka ${args.join(' ')}: ${describeRun(r)}`);
  return r;
}

/** A stack with a volume holding a random file, healthy once the file is there. */
async function stackWithFile(t: TestContext): Promise<{ project: string; dir: string; sum: string }> {
  const project = uniqueName('dr');
  const stack = await createStack(t, {
    name: project,
    files: {
      'docker-compose.yml': `version: '2.4'
services:
  app:
    image: ${TEST_IMAGE}
    command: ["sh", "-c", "test -f /data/payload.bin || head -c 300000 /dev/urandom > /data/payload.bin; touch /tmp/ok; while :; do sleep 1; done"]
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ok"]
      interval: 1s
      timeout: 2s
      retries: 3
    volumes:
      - data:/data
volumes:
  data:
`,
    },
  });
  await waitHealthy(project);
  return { project, dir: stack.dir, sum: await payloadSum(project) };
}

async function payloadSum(project: string): Promise<string> {
  const c = await composeContainer(project, 'app');
  const out = (await docker(['exec', c, 'sha256sum', '/data/payload.bin'])).stdout;
  const sum = out.split(/\s+/)[0] ?? '';
  assert.match(sum, /^[0-9a-f]{64}$/);
  return sum;
}

async function waitHealthy(project: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const c = await composeContainer(project, 'app').catch(() => undefined);
    if (c) {
      const s = (
        await docker(['inspect', '-f', '{{.State.Status}}|{{.State.Health.Status}}', c], { allowFail: true })
      ).stdout.trim();
      if (s === 'running|healthy') return;
      if (Date.now() > deadline) assert.fail(`${project}: ${s}`);
    } else if (Date.now() > deadline) assert.fail(`${project}: no container`);
    await sleep(300);
  }
}

async function newHost(t: TestContext, name: string): Promise<Host> {
  const base = await makeTempDir(`dr-${name}`);
  registerCleanup(t, () => rm(base, { recursive: true, force: true }));
  const root = path.join(base, 'host');
  const offsite = path.join(base, 'offsite');
  const stateDir = path.join(root, 'state');
  await mkdir(path.join(root, 'etc'), { recursive: true });
  await mkdir(stateDir, { recursive: true });
  return {
    root,
    configPath: path.join(root, 'etc', 'kopi-docka.conf'),
    stateDir,
    offsite,
    env: { ...testEnv(stateDir) },
  };
}

async function writeHostConfig(h: Host, kopiaKeys: string[], backupKeys: string[] = []): Promise<void> {
  const pwFile = path.join(h.root, 'etc', 'kopi-docka.password');
  await writeFile(pwFile, `${PASSWORD}\n`, { mode: 0o600 });
  const ini = [
    '[kopia]',
    ...kopiaKeys,
    `password_file = ${pwFile}`,
    `cache_directory = ${path.join(h.root, 'cache')}`,
    'hostname = drhost',
    '[backup]',
    'stop_timeout = 10',
    'start_timeout = 60',
    `recovery_bundle_path = ${h.offsite}`,
    'recovery_bundle_retention = 2',
    ...backupKeys,
    '',
  ].join('\n');
  await writeFile(h.configPath, ini, { mode: 0o600 });
  await chmod(h.configPath, 0o600);
}

/** The bundle stems in the offsite dir (newest last). */
async function bundles(dir: string): Promise<string[]> {
  return (await readdir(dir))
    .filter((n) => n.endsWith('.tar.enc'))
    .sort()
    .map((n) => n.slice(0, -'.tar.enc'.length));
}

/** Decrypt and unpack with the README's openssl command line, tar and sha256sum — no kopi-docka. */
async function openBundle(offsite: string, stem: string): Promise<string> {
  const readme = await readFile(path.join(offsite, `${stem}.README`), 'utf8');
  const line = readme.split('\n').find((l) => /^\s+openssl enc -d /.test(l));
  assert.ok(line, `the README gives the openssl command:\n${readme}`);
  const argv = line
    .trim()
    .replace(/\s*\\$/, '')
    .split(/\s+/);
  const dec = await run(argv, { cwd: offsite, timeoutMs: 120_000 });
  assert.equal(dec.code, 0, `${argv.join(' ')}: ${dec.stderrTail}`);
  const tar = await run(['tar', '-xf', `${stem}.tar`], { cwd: offsite, timeoutMs: 60_000 });
  assert.equal(tar.code, 0, tar.stderrTail);
  await rm(path.join(offsite, `${stem}.tar`));
  const dir = path.join(offsite, stem);
  const sums = await run(['sha256sum', '-c', 'SHA256SUMS'], { cwd: dir, timeoutMs: 60_000 });
  assert.equal(sums.code, 0, sums.stderrTail);
  return dir;
}

/** Everything the lost host had: config, password file, Kopia config and cache, state, ssh files. */
async function wipeHost(h: Host, stack: { project: string; dir: string }): Promise<void> {
  await compose(stack.dir, stack.project, ['down', '-v', '-t', '5'], { allowFail: true });
  const left = (
    await docker(['volume', 'ls', '-q', '--filter', `label=com.docker.compose.project=${stack.project}`])
  ).stdout.trim();
  assert.equal(left, '', 'the stack volumes are gone');
  await rm(stack.dir, { recursive: true, force: true });
  await rm(h.root, { recursive: true, force: true });
}

/** A directory with `kopi-docka` = the built CLI, to put first on PATH. */
async function cliWrapper(t: TestContext): Promise<string> {
  const dir = await makeTempDir('dr-bin');
  registerCleanup(t, () => rm(dir, { recursive: true, force: true }));
  const p = path.join(dir, 'kopi-docka');
  await writeFile(
    p,
    `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(CLI_PATH)} "$@"\n`,
    {
      mode: 0o755,
    },
  );
  const kopiaDir = path.dirname(KOPIA_BIN);
  return `${dir}:${path.isAbsolute(KOPIA_BIN) ? `${kopiaDir}:` : ''}${process.env.PATH ?? '/usr/bin:/bin'}`;
}

/** Steps 3–5 of the drill; `beforeRecover` puts back what the user must (the SFTP key). */
async function recoverAndRestore(
  t: TestContext,
  h: Host,
  stack: { project: string; sum: string },
  passphrases: string[],
  extraEnv: Record<string, string> = {},
  beforeRecover: () => Promise<void> = async () => {},
): Promise<void> {
  const stems = await bundles(h.offsite);
  const stem = stems[stems.length - 1];
  assert.ok(stem, 'a bundle was written');
  const dir = await openBundle(h.offsite, stem);
  const info = JSON.parse(await readFile(path.join(dir, 'kopia-repository.json'), 'utf8')) as {
    backend: { kind: string };
  };
  const status = JSON.parse(await readFile(path.join(dir, 'backup-status.json'), 'utf8')) as {
    units: { unit: string; latestComplete?: { backupId: string; sizeBytes: number } }[];
  };
  const unit = status.units.find((u) => u.unit === stack.project);
  assert.ok(unit?.latestComplete, `backup-status.json names ${stack.project}: ${JSON.stringify(status)}`);
  assert.ok(unit.latestComplete.sizeBytes >= 300_000);

  await beforeRecover();
  const PATH = await cliWrapper(t);
  const rec = await run(['bash', path.join(dir, 'recover.sh'), '--yes'], {
    cwd: dir,
    env: { ...h.env, ...extraEnv, PATH },
    timeoutMs: 300_000,
  });
  assert.equal(rec.code, 0, `recover.sh: ${rec.stdout}\n${rec.stderrTail}`);
  assert.match(rec.stdout, new RegExp(stack.project), 'recover.sh lists the restore points');
  assert.match(rec.stdout, /installed .*kopi-docka\.conf/);
  // Idempotent: a second run finds everything in place.
  const again = await run(['bash', path.join(dir, 'recover.sh'), '--yes'], {
    cwd: dir,
    env: { ...h.env, ...extraEnv, PATH },
    timeoutMs: 300_000,
  });
  assert.equal(again.code, 0, again.stderrTail);
  assert.match(again.stdout, /kopi-docka\.conf is already in place/);

  h.env.KOPI_DOCKA_CONFIG = h.configPath;
  Object.assign(h.env, extraEnv);
  const restored = await cliOk(h, [
    'restore',
    '--unit',
    stack.project,
    '--backup-id',
    'latest',
    '--execute',
    '--yes',
  ]);
  const m = /^\s+cd '([^']+)' && /m.exec(restored.stdout);
  assert.ok(m?.[1], `restore printed the project dir: ${restored.stdout}`);
  assert.ok(m[1].startsWith(h.stateDir), `a fresh host restores under the state dir: ${m[1]}`);
  // The restored stack carries the project's labels: createStack's cleanup removes it. (A `compose
  // down` in the restored directory could not: that directory is gone by then, with the test's base.)
  await compose(m[1], stack.project, ['up', '-d']);
  await waitHealthy(stack.project);
  assert.equal(await payloadSum(stack.project), stack.sum, 'the file is byte-identical');
  assert.equal(info.backend.kind.length > 0, true);

  for (const r of [rec.stdout, rec.stderrTail, restored.stdout, restored.stderr]) {
    for (const p of passphrases) assert.ok(!r.includes(p), 'the passphrase never appears in output');
  }
  // The plaintext bundle directory is the user's to delete; the test's cleanup removes it.
  await stat(path.join(dir, 'kopia-password.txt'));
}

async function passphrasesIn(dir: string): Promise<string[]> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.PASSWORD'));
  const out: string[] = [];
  for (const n of names) {
    const st = await stat(path.join(dir, n));
    assert.equal(st.mode & 0o777, 0o600, `${n} is 0600`);
    out.push((await readFile(path.join(dir, n), 'utf8')).trim());
  }
  return out;
}

describe('disaster recovery: a fresh host from the bundle alone', { timeout: 900_000 }, () => {
  it('filesystem (backup --update-recovery)', async (t) => {
    const h = await newHost(t, 'fs');
    const repo = path.join(path.dirname(h.root), 'remote', 'repo');
    await writeHostConfig(h, [`repository_path = ${repo}`]);
    h.env.KOPI_DOCKA_CONFIG = h.configPath;
    const stack = await stackWithFile(t);
    await cliOk(h, ['init']);
    const b = await cliOk(h, ['backup', '--unit', stack.project, '--update-recovery']);
    assert.match(
      b.stderr,
      /recovery bundle written: .*\.tar\.enc \(passphrase in .*\.PASSWORD: move it off this host/,
    );
    assert.equal((await bundles(h.offsite)).length, 1, 'one bundle per run');
    const secrets = await passphrasesIn(h.offsite);
    for (const s of secrets) assert.ok(!b.stdout.includes(s) && !b.stderr.includes(s));
    await wipeHost(h, stack);
    delete h.env.KOPI_DOCKA_CONFIG;
    await recoverAndRestore(t, h, stack, [...secrets, PASSWORD]);
  });

  it('sftp (update_recovery_bundle = true)', { skip: sftpUnavailable() ?? false }, async (t) => {
    const srv = await startSftpServer();
    t.after(srv.stop);
    const h = await newHost(t, 'sftp');
    const ssh = path.join(h.root, 'ssh');
    await mkdir(ssh, { mode: 0o700 });
    const key = path.join(ssh, 'id_ed25519');
    const knownHosts = path.join(ssh, 'known_hosts');
    await copyFile(srv.keyFile, key);
    await chmod(key, 0o600);
    await copyFile(srv.knownHostsFile, knownHosts);
    await writeHostConfig(
      h,
      [
        'backend = sftp',
        `sftp_host = ${srv.host}`,
        `sftp_port = ${srv.port}`,
        `sftp_user = ${srv.username}`,
        `sftp_path = ${path.join(srv.dataDir, 'repo')}`,
        `sftp_key_file = ${key}`,
        `sftp_known_hosts_file = ${knownHosts}`,
      ],
      ['update_recovery_bundle = true'],
    );
    h.env.KOPI_DOCKA_CONFIG = h.configPath;
    const stack = await stackWithFile(t);
    const init = await cliOk(h, ['init']);
    assert.match(init.stdout, /created repository sftp /);
    const doctor = await cli(h, ['doctor']);
    assert.match(doctor.stdout, /OK\s+backend\s+sftp .*: reachable, repository status in \d+ ms/);
    assert.match(doctor.stdout, /OK\s+writable\s+sftp .*checked by repository status/);
    await cliOk(h, ['backup', '--unit', stack.project]);
    assert.equal((await bundles(h.offsite)).length, 1);
    const secrets = await passphrasesIn(h.offsite);
    await wipeHost(h, stack);
    delete h.env.KOPI_DOCKA_CONFIG;
    await recoverAndRestore(t, h, stack, [...secrets, PASSWORD], {}, async () => {
      // The one thing never in the bundle: the user copies the private key back.
      await mkdir(ssh, { recursive: true, mode: 0o700 });
      await copyFile(srv.keyFile, key);
      await chmod(key, 0o600);
    });
    // recover.sh put the known_hosts back from the bundle.
    assert.equal(await readFile(knownHosts, 'utf8'), await readFile(srv.knownHostsFile, 'utf8'));
  });

  it(
    's3 (disaster-recovery --output; credentials from the environment)',
    { skip: s3Unavailable() ?? false },
    async (t) => {
      const srv = await startS3Server({ buckets: ['kd-dr'] });
      t.after(srv.stop);
      const h = await newHost(t, 's3');
      await writeHostConfig(h, [
        'backend = s3',
        'bucket = kd-dr',
        `endpoint = ${srv.endpoint}`,
        `region = ${srv.region}`,
        'prefix = hosts/drhost/',
        'disable_tls = true',
      ]);
      const creds = { AWS_ACCESS_KEY_ID: srv.accessKeyId, AWS_SECRET_ACCESS_KEY: srv.secretAccessKey };
      h.env.KOPI_DOCKA_CONFIG = h.configPath;
      Object.assign(h.env, creds);
      const stack = await stackWithFile(t);
      await cliOk(h, ['init']);
      const check = await cliOk(h, ['check']);
      assert.match(check.stdout, /OK\s+repository\s+s3 s3:\/\/kd-dr\/hosts\/drhost\/ at 127\.0\.0\.1:\d+/);
      await cliOk(h, ['backup', '--unit', stack.project]);
      const dr = await cliOk(h, ['disaster-recovery', '--output', h.offsite]);
      assert.match(dr.stdout, /passphrase: .*\.PASSWORD \(mode 600\) — move it OFF this host/);
      const secrets = await passphrasesIn(h.offsite);
      for (const s of [...secrets, srv.secretAccessKey]) {
        assert.ok(!dr.stdout.includes(s) && !dr.stderr.includes(s), 'no secret in the output');
      }
      // The bundle's repository description has every parameter; never a credential.
      await wipeHost(h, stack);
      delete h.env.KOPI_DOCKA_CONFIG;
      delete h.env.AWS_ACCESS_KEY_ID;
      delete h.env.AWS_SECRET_ACCESS_KEY;
      await recoverAndRestore(t, h, stack, [...secrets, PASSWORD, srv.secretAccessKey], creds);
      const json = await readFile(
        path.join(h.offsite, (await bundles(h.offsite))[0] ?? '', 'kopia-repository.json'),
        'utf8',
      );
      assert.ok(!json.includes(srv.secretAccessKey) && !json.includes(srv.accessKeyId));
      assert.match(json, /"prefix": "hosts\/drhost\/"/);
    },
  );
});

describe('bundles: rotation, and a Kopia config connected elsewhere', { timeout: 600_000 }, () => {
  it('rotation keeps exactly recovery_bundle_retention bundles (every file of the older ones goes)', async (t) => {
    const h = await newHost(t, 'rot');
    await writeHostConfig(h, [`repository_path = ${path.join(path.dirname(h.root), 'repo')}`]);
    h.env.KOPI_DOCKA_CONFIG = h.configPath;
    await cliOk(h, ['init']);
    const seen: string[] = [];
    for (let i = 0; i < 4; i++) {
      await cliOk(h, ['disaster-recovery']);
      seen.push(...(await bundles(h.offsite)).filter((s) => !seen.includes(s)));
      await sleep(1100);
    }
    assert.equal(seen.length, 4);
    const files = (await readdir(h.offsite)).sort();
    const kept = seen.slice(-2);
    assert.deepEqual(
      files,
      kept.flatMap((s) => [`${s}.HMAC`, `${s}.PASSWORD`, `${s}.README`, `${s}.tar.enc`]).sort(),
    );
  });

  it('check refuses and init reconnects when the Kopia config is connected to another repository', async (t) => {
    const h = await newHost(t, 'drift');
    const base = path.dirname(h.root);
    await writeHostConfig(h, [`repository_path = ${path.join(base, 'repo-a')}`]);
    h.env.KOPI_DOCKA_CONFIG = h.configPath;
    await cliOk(h, ['init']);
    const st = JSON.parse((await cliOk(h, ['init', '--json'])).stdout) as { kopiaConfigFile: string };
    // Someone points kopi-docka's Kopia config at another repository behind its back.
    const other = path.join(base, 'repo-b');
    await mkdir(other);
    const kopiaEnv = { KOPIA_PASSWORD: PASSWORD, KOPIA_CHECK_FOR_UPDATES: 'false' };
    const common = [`--config-file=${st.kopiaConfigFile}`, `--log-dir=${path.join(base, 'logs')}`];
    for (const argv of [
      [KOPIA_BIN, 'repository', 'disconnect', ...common],
      [
        KOPIA_BIN,
        'repository',
        'create',
        'filesystem',
        `--path=${other}`,
        `--cache-directory=${path.join(base, 'cache-b')}`,
        ...common,
      ],
    ]) {
      const r = await run(argv, { env: kopiaEnv, timeoutMs: 120_000 });
      assert.equal(r.code, 0, r.stderrTail);
    }
    const check = await cli(h, ['check']);
    assert.equal(check.code, 5, describeRun(check));
    assert.match(
      check.stdout,
      new RegExp(
        `FAIL\\s+repository\\s+the Kopia config is connected to filesystem ${other}, but kopi-docka is configured for filesystem ${path.join(base, 'repo-a')}`,
      ),
    );
    const backup = await cli(h, ['backup']);
    assert.equal(backup.code, 5, 'a backup never writes to the other repository');
    const init = await cliOk(h, ['init']);
    assert.match(
      init.stdout,
      /^reconnected \(the Kopia config pointed at another repository\) to repository /,
    );
    await cliOk(h, ['check']);
  });

  it('init refuses (and keeps the old connection) when the password does not open the configured repository', async (t) => {
    const h = await newHost(t, 'drift-pw');
    const base = path.dirname(h.root);
    const repoA = path.join(base, 'repo-a');
    const repoB = path.join(base, 'repo-b');
    await mkdir(repoA);
    await mkdir(repoB);
    await writeHostConfig(h, [`repository_path = ${repoA}`]);
    h.env.KOPI_DOCKA_CONFIG = h.configPath;
    const cfgFile = (
      JSON.parse((await cliOk(h, ['config', 'show', '--json'])).stdout) as { kopiaConfigFile: string }
    ).kopiaConfigFile;
    const logs = `--log-dir=${path.join(base, 'logs')}`;
    // repo-a exists with another password; kopi-docka's Kopia config is connected to repo-b (its password).
    const creates: [string, string[]][] = [
      [
        'another-password-9',
        [
          KOPIA_BIN,
          'repository',
          'create',
          'filesystem',
          `--path=${repoA}`,
          `--config-file=${path.join(base, 'a.config')}`,
          `--cache-directory=${path.join(base, 'cache-a')}`,
          logs,
        ],
      ],
      [
        PASSWORD,
        [
          KOPIA_BIN,
          'repository',
          'create',
          'filesystem',
          `--path=${repoB}`,
          `--config-file=${cfgFile}`,
          `--cache-directory=${path.join(base, 'cache-b')}`,
          logs,
        ],
      ],
    ];
    for (const [pw, argv] of creates) {
      const r = await run(argv, {
        env: { KOPIA_PASSWORD: pw, KOPIA_CHECK_FOR_UPDATES: 'false' },
        timeoutMs: 120_000,
      });
      assert.equal(r.code, 0, r.stderrTail);
    }
    const init = await cli(h, ['init']);
    assert.equal(init.code, 5, describeRun(init));
    assert.ok(
      init.stderr.includes(`wrong password for the existing repository at ${repoA}`),
      describeRun(init),
    );
    const st = await run([KOPIA_BIN, 'repository', 'status', '--json', `--config-file=${cfgFile}`, logs], {
      env: { KOPIA_PASSWORD: PASSWORD, KOPIA_CHECK_FOR_UPDATES: 'false' },
      timeoutMs: 60_000,
    });
    assert.equal(st.code, 0, st.stderrTail);
    const connected = (JSON.parse(st.stdout) as { storage: { config: { path: string } } }).storage.config
      .path;
    assert.equal(connected, repoB, 'the old connection is untouched');
  });
});
