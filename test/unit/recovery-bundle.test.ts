/**
 * The pure parts of the disaster-recovery bundle: names and rotation, kopia-repository.json (every
 * non-secret parameter, no secret), recover.sh (syntax, every backend parameter on the connect line,
 * quoting, credential checks), the README, and the integrity helpers.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import {
  KDF_ITERATIONS,
  bundleFilesToRemove,
  bundleHmac,
  bundleStem,
  opensslDecryptArgv,
  parseBundleFileName,
  parseHmacFile,
  parseSha256Sums,
  passphraseCheck,
  renderHmacFile,
  renderReadme,
  renderRecoverScript,
  renderSha256Sums,
  repositoryRecoveryInfo,
  shellQuote,
  type RepositoryRecoveryInput,
} from '../../src/core/recovery-bundle.js';
import type { RepositoryBackend } from '../../src/core/repository-backend.js';

const NOW = new Date('2026-03-04T05:06:07.890Z');
const KOPIA = {
  configFile: '/var/lib/kopi-docka/kopia/repository.config',
  cacheDirectory: '/var/cache/kopi-docka/kopia',
  hostname: 'dockerhost',
  username: 'kopi-docka',
};

function input(
  backend: RepositoryBackend,
  over: Partial<RepositoryRecoveryInput> = {},
): RepositoryRecoveryInput {
  return { backend, kopia: KOPIA, configPath: '/etc/kopi-docka.conf', now: NOW, ...over };
}

function bashSyntaxOk(script: string): void {
  const r = spawnSync('bash', ['-n'], { input: script, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
}

describe('bundle names and rotation', () => {
  it('stem and parse', () => {
    assert.equal(bundleStem(NOW), 'kopi-docka-recovery-2026-03-04T05-06-07Z');
    assert.deepEqual(parseBundleFileName('kopi-docka-recovery-2026-03-04T05-06-07Z.PASSWORD'), {
      stamp: '2026-03-04T05-06-07Z',
      suffix: '.PASSWORD',
    });
    assert.equal(parseBundleFileName('kopi-docka-recovery-2026-03-04T05-06-07Z.tar'), undefined);
    assert.equal(parseBundleFileName('other.tar.enc'), undefined);
  });

  it('keeps exactly the newest N bundles and their companions; orphans of old bundles go too', () => {
    const b = (s: string, suf: string): string => `kopi-docka-recovery-2026-01-0${s}T00-00-00Z${suf}`;
    const all = (s: string): string[] => ['.tar.enc', '.PASSWORD', '.README', '.HMAC'].map((x) => b(s, x));
    const names = [...all('1'), ...all('2'), ...all('3'), b('4', '.README'), 'notes.txt', ...all('5')];
    assert.deepEqual(bundleFilesToRemove(names, 2), [...all('1'), ...all('2'), b('4', '.README')].sort());
    assert.deepEqual(bundleFilesToRemove(names, 10), [b('4', '.README')]);
    // 0 or less keeps the one just written.
    assert.deepEqual(
      bundleFilesToRemove(names, 0),
      [...all('1'), ...all('2'), ...all('3'), b('4', '.README')].sort(),
    );
  });
});

describe('kopia-repository.json', () => {
  it('has every non-secret parameter and the credential variable names, never a value', () => {
    const info = repositoryRecoveryInfo(
      input(
        { kind: 's3', bucket: 'bkt', endpoint: 'minio:9000', region: 'eu-1', prefix: 'h/', disableTls: true },
        {
          secrets: { s3AccessKeyId: 'AKIAXYZ', s3SecretAccessKey: 'verysecret' },
          repositoryStatus: {
            uniqueIDHex: 'abc123',
            storage: { type: 's3', config: { accessKeyID: 'AKIAXYZ', secretAccessKey: '**********' } },
            contentFormat: { hash: 'BLAKE2B-256-128', encryption: 'AES256-GCM-HMAC-SHA256', masterKey: 'x' },
          },
        },
      ),
    );
    assert.deepEqual(info.connectArgv, [
      's3',
      '--bucket=bkt',
      '--endpoint=minio:9000',
      '--region=eu-1',
      '--prefix=h/',
      '--disable-tls',
    ]);
    assert.deepEqual(info.credentials.usedOnThisHost, ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']);
    assert.deepEqual(info.credentials.required, ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY']);
    assert.deepEqual(info.repository, {
      uniqueIDHex: 'abc123',
      storageType: 's3',
      hash: 'BLAKE2B-256-128',
      encryption: 'AES256-GCM-HMAC-SHA256',
    });
    const json = JSON.stringify(info);
    assert.ok(!json.includes('AKIAXYZ') && !json.includes('verysecret') && !json.includes('masterKey'));
    assert.equal(info.format, 'kopi-docka-repository/1');
    assert.equal(info.createdAt, NOW.toISOString());
    assert.equal(info.description, 's3 s3://bkt/h/ at minio:9000 (region eu-1, no TLS)');
  });

  it('sftp records that known_hosts is bundled and the key is not', () => {
    const info = repositoryRecoveryInfo(
      input({
        kind: 'sftp',
        host: 'nas',
        port: 2222,
        username: 'u',
        path: '/srv/k',
        keyFile: '/root/.ssh/id_ed25519',
        knownHostsFile: '/root/.ssh/known_hosts',
      }),
    );
    assert.deepEqual(info.sftp, { knownHostsInBundle: true, keyFileBundled: false });
  });
});

describe('recover.sh', () => {
  const backends: RepositoryBackend[] = [
    { kind: 'filesystem', path: '/backup/repo' },
    { kind: 's3', bucket: 'bkt', endpoint: 'minio:9000', region: 'eu-1', prefix: "it's/", disableTls: true },
    { kind: 'b2', bucket: 'bb', prefix: 'p/' },
    { kind: 'azure', container: 'c', storageAccount: 'acct', prefix: 'x/' },
    { kind: 'gcs', bucket: 'g', prefix: 'p/', credentialsFile: '/etc/gcs.json' },
    {
      kind: 'sftp',
      host: 'nas',
      port: 2222,
      username: 'u',
      path: '/srv/k',
      keyFile: '/root/.ssh/id_ed25519',
      knownHostsFile: '/root/.ssh/known_hosts',
    },
    { kind: 'webdav', url: 'https://dav/x/' },
    { kind: 'rclone', remotePath: 'r:p', rcloneArgs: ['--config=/root/rclone.conf'] },
    { kind: 'server', url: 'https://k:51515', serverCertFingerprint: 'ab'.repeat(32) },
  ];

  for (const backend of backends) {
    it(`${backend.kind}: valid bash, strict mode, every parameter on the connect line, ends listing`, () => {
      const info = repositoryRecoveryInfo(input(backend, { passwordFile: '/etc/kopi-docka.password' }));
      const script = renderRecoverScript(info);
      bashSyntaxOk(script);
      assert.match(script, /^#!\/usr\/bin\/env bash\n/);
      assert.match(script, /^set -euo pipefail$/m);
      for (const a of info.connectArgv) assert.ok(script.includes(shellQuote(a)), `has ${a}`);
      for (const a of [
        `--config-file=${KOPIA.configFile}`,
        `--override-hostname=${KOPIA.hostname}`,
        `--override-username=${KOPIA.username}`,
        `--cache-directory=${KOPIA.cacheDirectory}`,
      ]) {
        assert.ok(script.includes(shellQuote(a)), `has ${a}`);
      }
      assert.match(script, /--no-persist-credentials/);
      assert.ok(!/StrictHostKeyChecking|--sftp-password|--password=/.test(script));
      assert.match(script, /KOPIA_PASSWORD="\$\(head -n 1 "\$HERE\/kopia-password.txt"\)"/);
      assert.match(script, /install_file "\$HERE\/kopia-password.txt" '\/etc\/kopi-docka.password'/);
      const lines = script.trimEnd().split('\n');
      assert.ok(lines.some((l) => l === 'kopi-docka --config "$CONFIG_PATH" restore --list'));
    });
  }

  it('credential checks per backend (names only)', () => {
    const s3 = renderRecoverScript(repositoryRecoveryInfo(input({ kind: 's3', bucket: 'bkt' })));
    assert.match(s3, /\[ -n "\$\{AWS_SECRET_ACCESS_KEY:-\}" \] \|\| die/);
    const az = renderRecoverScript(
      repositoryRecoveryInfo(input({ kind: 'azure', container: 'c', storageAccount: 'a' })),
    );
    assert.match(az, /AZURE_STORAGE_KEY.*AZURE_STORAGE_SAS_TOKEN.*AZURE_CLIENT_SECRET/s);
    const sftp = renderRecoverScript(
      repositoryRecoveryInfo(
        input({
          kind: 'sftp',
          host: 'h',
          port: 22,
          username: 'u',
          path: 'p',
          keyFile: '/k',
          knownHostsFile: '/kh',
        }),
      ),
    );
    assert.match(sftp, /install_file "\$HERE\/known_hosts" '\/kh'/);
    assert.match(sftp, /\[ -f '\/k' \] \|\| die/);
  });

  it('shellQuote survives quotes, spaces and $', () => {
    for (const s of ["it's", 'a b', '$HOME', '`x`', '"q"', '']) {
      const r = spawnSync('bash', ['-c', `printf %s ${shellQuote(s)}`], { encoding: 'utf8' });
      assert.equal(r.stdout, s);
    }
  });
});

describe('README and integrity helpers', () => {
  it('README has the exact openssl command, the iteration count and the warning', () => {
    const stem = bundleStem(NOW);
    const readme = renderReadme(stem, repositoryRecoveryInfo(input({ kind: 'filesystem', path: '/r' })));
    assert.ok(readme.includes(opensslDecryptArgv(stem).join(' ')));
    assert.deepEqual(opensslDecryptArgv(stem).slice(0, 11), [
      'openssl',
      'enc',
      '-d',
      '-aes-256-cbc',
      '-pbkdf2',
      '-iter',
      String(KDF_ITERATIONS),
      '-md',
      'sha256',
      '-salt',
      '-in',
    ]);
    assert.ok(KDF_ITERATIONS >= 600_000);
    assert.match(readme, /MOVE THE PASSWORD FILE OFF THIS HOST/);
    assert.match(readme, /sha256sum -c SHA256SUMS/);
  });

  it('HMAC depends on every byte and on the passphrase; file round trip', () => {
    const data = Buffer.from('Salted__0123456789abcdef');
    const mac = bundleHmac(data, 'p1');
    assert.match(mac, /^[0-9a-f]{64}$/);
    assert.notEqual(bundleHmac(data, 'p2'), mac);
    const flipped = Buffer.from(data);
    flipped[10] = (flipped[10] ?? 0) ^ 1;
    assert.notEqual(bundleHmac(flipped, 'p1'), mac);
    const check = passphraseCheck('p1');
    assert.notEqual(passphraseCheck('p2'), check);
    assert.deepEqual(parseHmacFile(renderHmacFile(mac, 'x.tar.enc', check)), {
      hmac: mac,
      passphraseCheck: check,
    });
    assert.equal(parseHmacFile('garbage'), undefined);
  });

  it('SHA256SUMS round trip in sha256sum format', () => {
    const text = renderSha256Sums(
      new Map([
        ['b.txt', 'b'],
        ['a.txt', 'a'],
      ]),
    );
    assert.match(text, /^[0-9a-f]{64} {2}a\.txt\n[0-9a-f]{64} {2}b\.txt\n$/);
    assert.deepEqual([...parseSha256Sums(text).keys()], ['a.txt', 'b.txt']);
    assert.throws(() => parseSha256Sums('nope\n'), /malformed/);
  });
});
