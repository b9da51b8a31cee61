/**
 * The disaster-recovery bundle on disk, with the real tar, openssl and kopia: decrypt with the openssl
 * command line alone (the README's exact command) and compare every file; a wrong passphrase and a
 * flipped byte give clear errors and leave nothing extracted; rotation keeps exactly N; recover.sh
 * really reconnects a wiped host's Kopia config to a filesystem repository and to an SFTP one (a
 * private sshd on 127.0.0.1: the bundle's known_hosts is put back), is idempotent, and without a
 * terminal refuses to overwrite a config that differs.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, readdir, rm, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { run, runChecked } from '../../src/adapters/process.js';
import { opensslDecryptArgv, bundleStem, KDF_ITERATIONS } from '../../src/core/recovery-bundle.js';
import {
  repositoryArgs,
  type BackendSecrets,
  type RepositoryBackend,
} from '../../src/core/repository-backend.js';
import {
  RecoveryBundleError,
  extractRecoveryBundle,
  listRecoveryBundles,
  writeRecoveryBundle,
  type WriteRecoveryBundleOptions,
} from '../../src/pipeline/recovery-bundle.js';
import { findCommand, makeTempDir } from '../servers/common.js';
import { s3Unavailable, startS3Server } from '../servers/s3.js';
import { sftpUnavailable, startSftpServer } from '../servers/sftp.js';

const KOPIA = process.env.KOPI_DOCKA_KOPIA_BIN || findCommand('kopia') || 'kopia';
const NOW = new Date('2026-01-31T23:59:59.123Z');
const CONFIG_TEXT = '[kopia]\nrepository_path = /backup/repo\npassword_file = /etc/kopi-docka.password\n';
const STATUS = { units: [{ unit: 'app', newest: '2026-01-31T23-00-00Z', bytes: 1234 }] };

async function tempDir(t: TestContext, prefix: string): Promise<string> {
  const d = await makeTempDir(prefix);
  t.after(() => rm(d, { recursive: true, force: true }));
  return d;
}

function options(dir: string, over: Partial<WriteRecoveryBundleOptions> = {}): WriteRecoveryBundleOptions {
  return {
    outputDir: path.join(dir, 'bundles'),
    configText: CONFIG_TEXT,
    configPath: path.join(dir, 'etc', 'kopi-docka.conf'),
    backend: { kind: 'filesystem', path: path.join(dir, 'repo') },
    passwordOfRepository: 'repo password 1',
    passwordFile: path.join(dir, 'etc', 'kopi-docka.password'),
    kopia: {
      configFile: path.join(dir, 'kopia', 'repository.config'),
      cacheDirectory: path.join(dir, 'kopia-cache'),
      hostname: 'kd-host',
      username: 'kd',
    },
    status: STATUS,
    retention: 3,
    now: NOW,
    ...over,
  };
}

/** Decrypt + untar with the openssl and tar command lines only (the README's commands). */
async function decryptWithOpenssl(outputDir: string, stem: string): Promise<string> {
  await runChecked(opensslDecryptArgv(stem), { cwd: outputDir });
  await runChecked(['tar', '-xf', `${stem}.tar`], { cwd: outputDir });
  await unlink(path.join(outputDir, `${stem}.tar`));
  return path.join(outputDir, stem);
}

describe('recovery bundle: write, decrypt with openssl alone, verify, rotate', () => {
  it('writes the four files; PASSWORD is 0600 with ≥128 random bits; openssl alone decrypts it', async (t) => {
    const dir = await tempDir(t, 'bundle');
    const res = await writeRecoveryBundle(options(dir));
    const stem = bundleStem(NOW);
    assert.equal(path.basename(res.bundlePath), `${stem}.tar.enc`);
    assert.equal(stem, 'kopi-docka-recovery-2026-01-31T23-59-59Z');
    assert.deepEqual((await readdir(path.join(dir, 'bundles'))).sort(), [
      `${stem}.HMAC`,
      `${stem}.PASSWORD`,
      `${stem}.README`,
      `${stem}.tar.enc`,
    ]);
    assert.equal((await stat(res.passwordPath)).mode & 0o777, 0o600);
    assert.equal((await stat(res.bundlePath)).mode & 0o777, 0o600);
    const passphrase = (await readFile(res.passwordPath, 'utf8')).trim();
    assert.ok(Buffer.from(passphrase, 'base64url').length >= 16, 'at least 128 bits');
    const readme = await readFile(res.readmePath, 'utf8');
    assert.ok(readme.includes(opensslDecryptArgv(stem).join(' ')), 'README has the exact command');
    assert.ok(readme.includes(String(KDF_ITERATIONS)));
    assert.match(readme, /MOVE THE PASSWORD FILE OFF THIS HOST/);
    assert.ok(!readme.includes(passphrase) && !readme.includes('repo password 1'));
    // The encrypted file is openssl's salted format, not a tar.
    assert.equal((await readFile(res.bundlePath)).subarray(0, 8).toString('latin1'), 'Salted__');

    const out = await decryptWithOpenssl(path.join(dir, 'bundles'), stem);
    assert.deepEqual((await readdir(out)).sort(), [
      'SHA256SUMS',
      'backup-status.json',
      'kopi-docka.conf',
      'kopia-password.txt',
      'kopia-repository.json',
      'recover.sh',
    ]);
    assert.equal(await readFile(path.join(out, 'kopi-docka.conf'), 'utf8'), CONFIG_TEXT);
    assert.equal(await readFile(path.join(out, 'kopia-password.txt'), 'utf8'), 'repo password 1\n');
    assert.deepEqual(JSON.parse(await readFile(path.join(out, 'backup-status.json'), 'utf8')), STATUS);
    const info = JSON.parse(await readFile(path.join(out, 'kopia-repository.json'), 'utf8')) as {
      backend: RepositoryBackend;
      connectArgv: string[];
    };
    assert.deepEqual(info.backend, { kind: 'filesystem', path: path.join(dir, 'repo') });
    assert.deepEqual(info.connectArgv, ['filesystem', `--path=${path.join(dir, 'repo')}`]);
    await runChecked(['sha256sum', '--quiet', '-c', 'SHA256SUMS'], { cwd: out });
    await runChecked(['bash', '-n', path.join(out, 'recover.sh')]);
    assert.equal((await stat(path.join(out, 'kopia-password.txt'))).mode & 0o077, 0);

    // The helper gives the same files.
    const files = await extractRecoveryBundle({
      bundlePath: res.bundlePath,
      passwordFile: res.passwordPath,
      destDir: path.join(dir, 'via-helper'),
    });
    assert.equal(files.get('kopi-docka.conf')?.toString('utf8'), CONFIG_TEXT);
    assert.ok(existsSync(path.join(dir, 'via-helper', 'recover.sh')));
  });

  it('a wrong passphrase: a clear error, nothing extracted', async (t) => {
    const dir = await tempDir(t, 'bundle');
    const res = await writeRecoveryBundle(options(dir));
    const stem = bundleStem(NOW);
    const dest = path.join(dir, 'out');
    await assert.rejects(
      extractRecoveryBundle({ bundlePath: res.bundlePath, passphrase: 'not-the-passphrase', destDir: dest }),
      (e: unknown) => e instanceof RecoveryBundleError && /wrong passphrase/.test(e.message),
    );
    assert.ok(!existsSync(dest));
    assert.deepEqual(
      (await readdir(dir)).filter((n) => n.includes('partial')),
      [],
    );
    // Without the .HMAC file the helper still refuses (openssl's padding check, or tar/SHA256SUMS).
    await unlink(res.hmacPath);
    await assert.rejects(
      extractRecoveryBundle({
        bundlePath: res.bundlePath,
        passphrase: 'not-the-passphrase',
        destDir: dest,
        allowMissingHmac: true,
      }),
      (e: unknown) => e instanceof RecoveryBundleError,
    );
    assert.ok(!existsSync(dest));
    // openssl itself says "bad decrypt" and exits non-zero — for about 255 of 256 wrong keys (its only
    // check is the padding), hence several tries here.
    let refused = 0;
    for (const wrong of ['wrong-1', 'wrong-2', 'wrong-3', 'wrong-4']) {
      const r = await run(
        [
          ...opensslDecryptArgv(stem).slice(0, 10),
          '-in',
          res.bundlePath,
          '-out',
          path.join(dir, 'x.tar'),
          '-pass',
          'stdin',
        ],
        { input: `${wrong}\n` },
      );
      if (r.code !== 0 && /bad decrypt/.test(r.stderrTail)) refused++;
    }
    assert.ok(refused >= 3, `openssl refused ${refused} of 4 wrong passphrases`);
  });

  it('a flipped byte is detected before anything is extracted', async (t) => {
    const dir = await tempDir(t, 'bundle');
    const res = await writeRecoveryBundle(options(dir));
    const buf = await readFile(res.bundlePath);
    // A byte in the middle: AES-CBC still decrypts (the padding is intact) — only the HMAC knows.
    const mid = Math.floor(buf.length / 2);
    buf[mid] = (buf[mid] ?? 0) ^ 0x01;
    await writeFile(res.bundlePath, buf);
    const dest = path.join(dir, 'out');
    await assert.rejects(
      extractRecoveryBundle({ bundlePath: res.bundlePath, passwordFile: res.passwordPath, destDir: dest }),
      (e: unknown) => e instanceof RecoveryBundleError && /modified or corrupted/.test(e.message),
    );
    assert.ok(!existsSync(dest));
    // Without the .HMAC file the SHA256SUMS inside still catch it (or the tar/padding checks do).
    await unlink(res.hmacPath);
    await assert.rejects(
      extractRecoveryBundle({ bundlePath: res.bundlePath, passwordFile: res.passwordPath, destDir: dest }),
      /HMAC is missing|\.HMAC is missing/,
    );
    await assert.rejects(
      extractRecoveryBundle({
        bundlePath: res.bundlePath,
        passwordFile: res.passwordPath,
        destDir: dest,
        allowMissingHmac: true,
      }),
      (e: unknown) => e instanceof RecoveryBundleError,
    );
    assert.ok(!existsSync(dest));
  });

  it('rotation keeps exactly the newest N bundles with their companions, nothing else touched', async (t) => {
    const dir = await tempDir(t, 'bundle');
    const out = path.join(dir, 'bundles');
    await mkdir(out);
    await writeFile(path.join(out, 'notes.txt'), 'mine');
    for (let i = 0; i < 5; i++) {
      await writeRecoveryBundle(options(dir, { now: new Date(NOW.getTime() + i * 1000), retention: 2 }));
    }
    const names = (await readdir(out)).sort();
    assert.deepEqual(await listRecoveryBundles(out), [
      'kopi-docka-recovery-2026-02-01T00-00-02Z.tar.enc',
      'kopi-docka-recovery-2026-02-01T00-00-03Z.tar.enc',
    ]);
    assert.equal(names.length, 2 * 4 + 1);
    assert.ok(names.includes('notes.txt'));
    // A second bundle in the same second is refused, not overwritten.
    await assert.rejects(
      writeRecoveryBundle(options(dir, { now: new Date(NOW.getTime() + 4000), retention: 2 })),
      /already exists/,
    );
  });
});

/** A stand-in for the kopi-docka CLI on PATH: records its argv. */
async function stubKopiDocka(dir: string): Promise<{ binDir: string; log: string }> {
  const binDir = path.join(dir, 'bin');
  await mkdir(binDir, { recursive: true });
  const log = path.join(dir, 'kopi-docka-stub.log');
  await writeFile(
    path.join(binDir, 'kopi-docka'),
    `#!/bin/sh\nprintf '%s\\n' "$*" >> '${log}'\necho "stub: restore points listed"\n`,
  );
  await chmod(path.join(binDir, 'kopi-docka'), 0o755);
  await writeFile(path.join(binDir, 'kopia'), `#!/bin/sh\nexec '${KOPIA}' "$@"\n`);
  await chmod(path.join(binDir, 'kopia'), 0o755);
  return { binDir, log };
}

async function kopiaWith(
  configFile: string,
  password: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<string> {
  const r = await runChecked([KOPIA, ...args, `--config-file=${configFile}`], {
    env: { KOPIA_PASSWORD: password, KOPIA_CHECK_FOR_UPDATES: 'false', ...env },
    timeoutMs: 120_000,
  });
  return r.stdout;
}

/** Back up a file into a fresh repository on `backend`, make a bundle, wipe the local Kopia state. */
async function hostWithBundle(
  t: TestContext,
  dir: string,
  backend: RepositoryBackend,
  secrets: BackendSecrets = {},
): Promise<{ opts: WriteRecoveryBundleOptions; extracted: string; src: string }> {
  const opts = options(dir, {
    backend,
    backendSecrets: secrets,
    passwordOfRepository: randomBytes(12).toString('hex'),
  });
  const { argv, env } = repositoryArgs(backend, secrets);
  const cfg = opts.kopia.configFile;
  const identity = [
    `--override-hostname=${opts.kopia.hostname}`,
    `--override-username=${opts.kopia.username}`,
    `--cache-directory=${opts.kopia.cacheDirectory ?? ''}`,
    '--no-persist-credentials',
  ];
  await kopiaWith(cfg, opts.passwordOfRepository, ['repository', 'create', ...argv, ...identity], env);
  const src = path.join(dir, 'data');
  await mkdir(src);
  await writeFile(path.join(src, 'f.txt'), 'precious');
  await kopiaWith(cfg, opts.passwordOfRepository, ['snapshot', 'create', src, '--no-progress'], env);
  const status: unknown = JSON.parse(
    await kopiaWith(cfg, opts.passwordOfRepository, ['repository', 'status', '--json'], env),
  );
  const res = await writeRecoveryBundle({ ...opts, repositoryStatus: status });
  // kopia-repository.json names the exact repository (its unique id from `repository status`).
  assert.match(res.info.repository?.uniqueIDHex ?? '', /^[0-9a-f]+$/);

  // The host is gone: Kopia config and cache, kopi-docka config and password file.
  await rm(path.dirname(cfg), { recursive: true, force: true });
  await rm(opts.kopia.cacheDirectory ?? '', { recursive: true, force: true });
  await rm(path.join(dir, 'etc'), { recursive: true, force: true });
  const extracted = await decryptWithOpenssl(opts.outputDir, bundleStem(NOW));
  t.diagnostic(`bundle extracted to ${extracted}`);
  return { opts, extracted, src };
}

async function recover(
  extracted: string,
  binDir: string,
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<{ code: number | null; out: string }> {
  const r = await run(['bash', path.join(extracted, 'recover.sh'), ...args], {
    env: { PATH: `${binDir}:${process.env.PATH ?? ''}`, KOPIA_PASSWORD: '', ...env },
    timeoutMs: 120_000,
    maxStdoutBytes: 1 << 20,
  });
  return { code: r.code, out: r.stdout + r.stderrTail };
}

describe('recover.sh on a wiped host', () => {
  it('filesystem: puts config + password file back, connects, lists; idempotent; asks before overwriting', async (t) => {
    const dir = await tempDir(t, 'recover');
    const { opts, extracted, src } = await hostWithBundle(t, dir, {
      kind: 'filesystem',
      path: path.join(dir, 'repo'),
    });
    const stub = await stubKopiDocka(dir);

    const first = await recover(extracted, stub.binDir);
    assert.equal(first.code, 0, first.out);
    assert.equal(await readFile(opts.configPath, 'utf8'), CONFIG_TEXT);
    assert.equal((await stat(opts.configPath)).mode & 0o777, 0o600);
    assert.equal(await readFile(opts.passwordFile ?? '', 'utf8'), `${opts.passwordOfRepository}\n`);
    assert.equal((await stat(opts.passwordFile ?? '')).mode & 0o777, 0o600);
    assert.ok(!first.out.includes(opts.passwordOfRepository), 'the password is never printed');
    assert.equal((await readFile(stub.log, 'utf8')).trim(), `--config ${opts.configPath} restore --list`);
    // Kopia is connected with the same identity and sees the old snapshot.
    const list = JSON.parse(
      await kopiaWith(opts.kopia.configFile, opts.passwordOfRepository, [
        'snapshot',
        'list',
        '--json',
        '--all',
      ]),
    ) as { source: { host: string; userName: string; path: string } }[];
    assert.deepEqual(list[0]?.source, { host: 'kd-host', userName: 'kd', path: src });

    const second = await recover(extracted, stub.binDir);
    assert.equal(second.code, 0, second.out);
    assert.match(second.out, /already in place/);

    // A config that differs is not overwritten without a yes (no terminal here).
    await writeFile(opts.configPath, '# edited by hand\n');
    const third = await recover(extracted, stub.binDir);
    assert.equal(third.code, 1, third.out);
    assert.match(third.out, /left .* as it is/);
    assert.equal(await readFile(opts.configPath, 'utf8'), '# edited by hand\n');
    const fourth = await recover(extracted, stub.binDir, ['--yes']);
    assert.equal(fourth.code, 0, fourth.out);
    assert.equal(await readFile(opts.configPath, 'utf8'), CONFIG_TEXT);
    assert.ok((await readdir(path.dirname(opts.configPath))).some((n) => n.includes('.before-recover-')));
  });

  it(
    'sftp: the bundled known_hosts is put back and Kopia reconnects with key + host key checking',
    {
      skip: sftpUnavailable() ?? false,
    },
    async (t) => {
      const srv = await startSftpServer();
      t.after(srv.stop);
      const dir = await tempDir(t, 'recover-sftp');
      const knownHostsFile = path.join(dir, 'ssh', 'known_hosts');
      await mkdir(path.dirname(knownHostsFile));
      await writeFile(knownHostsFile, `${srv.knownHostsLine}\n`);
      const backend: RepositoryBackend = {
        kind: 'sftp',
        host: srv.host,
        port: srv.port,
        username: srv.username,
        path: path.join(srv.dataDir, 'repo'),
        keyFile: srv.keyFile,
        knownHostsFile,
      };
      const { opts, extracted } = await hostWithBundle(t, dir, backend);
      assert.equal(await readFile(path.join(extracted, 'known_hosts'), 'utf8'), `${srv.knownHostsLine}\n`);
      await rm(path.dirname(knownHostsFile), { recursive: true }); // lost with the host
      const stub = await stubKopiDocka(dir);
      const r = await recover(extracted, stub.binDir);
      assert.equal(r.code, 0, r.out);
      assert.equal(await readFile(knownHostsFile, 'utf8'), `${srv.knownHostsLine}\n`);
      const list = JSON.parse(
        await kopiaWith(opts.kopia.configFile, opts.passwordOfRepository, [
          'snapshot',
          'list',
          '--json',
          '--all',
        ]),
      ) as unknown[];
      assert.equal(list.length, 1);
    },
  );

  it(
    's3 (versitygw): recover.sh reconnects with endpoint, region and prefix, keys from the environment',
    { skip: s3Unavailable() ?? false },
    async (t) => {
      const srv = await startS3Server({ buckets: ['kd-dr'] });
      t.after(srv.stop);
      const dir = await tempDir(t, 'recover-s3real');
      const secrets: BackendSecrets = {
        s3AccessKeyId: srv.accessKeyId,
        s3SecretAccessKey: srv.secretAccessKey,
      };
      const backend: RepositoryBackend = {
        kind: 's3',
        bucket: 'kd-dr',
        endpoint: srv.endpoint,
        region: srv.region,
        prefix: 'host-a/',
        disableTls: true,
      };
      const { opts, extracted } = await hostWithBundle(t, dir, backend, secrets);
      const info = await readFile(path.join(extracted, 'kopia-repository.json'), 'utf8');
      assert.ok(!info.includes(srv.secretAccessKey) && !info.includes(srv.accessKeyId));
      assert.ok(!(await readFile(path.join(extracted, 'recover.sh'), 'utf8')).includes(srv.secretAccessKey));
      const stub = await stubKopiDocka(dir);
      const env = { AWS_ACCESS_KEY_ID: srv.accessKeyId, AWS_SECRET_ACCESS_KEY: srv.secretAccessKey };
      const r = await recover(extracted, stub.binDir, [], env);
      assert.equal(r.code, 0, r.out);
      assert.ok(!r.out.includes(srv.secretAccessKey));
      const list = JSON.parse(
        await kopiaWith(
          opts.kopia.configFile,
          opts.passwordOfRepository,
          ['snapshot', 'list', '--json', '--all'],
          env,
        ),
      ) as unknown[];
      assert.equal(list.length, 1);
    },
  );

  it('s3-style credentials: recover.sh stops with the variable to export when it is missing', async (t) => {
    const dir = await tempDir(t, 'recover-s3');
    const opts = options(dir, {
      backend: {
        kind: 's3',
        bucket: 'bkt',
        endpoint: '127.0.0.1:9',
        prefix: 'p/',
        region: 'r',
        disableTls: true,
      },
    });
    const res = await writeRecoveryBundle(opts);
    const extracted = await decryptWithOpenssl(opts.outputDir, path.basename(res.bundlePath, '.tar.enc'));
    const stub = await stubKopiDocka(dir);
    const r = await recover(extracted, stub.binDir, [], { AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '' });
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /export AWS_ACCESS_KEY_ID/);
    const script = await readFile(path.join(extracted, 'recover.sh'), 'utf8');
    for (const flag of [
      "'--bucket=bkt'",
      "'--endpoint=127.0.0.1:9'",
      "'--prefix=p/'",
      "'--region=r'",
      "'--disable-tls'",
    ]) {
      assert.ok(script.includes(flag), `recover.sh passes ${flag}`);
    }
  });
});
