/**
 * The exact Kopia argv and environment for every backend (the ones that cannot be reached from here —
 * b2, azure, gcs, rclone, server — are proven only by these), validation messages, identity
 * comparison and `backendFromStatus` on the JSON shapes of Kopia 0.23.1.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  BackendConfigError,
  checkConnection,
  backendFromStatus,
  backendIdentity,
  credentialEnvNames,
  creatable,
  describeBackend,
  normalizeFingerprint,
  parseBackend,
  repositoryArgs,
  sameBackend,
  type RepositoryBackend,
} from '../../src/core/repository-backend.js';

const FP = 'AB:CD:'.repeat(16).slice(0, -1);
const FP_HEX = 'abcd'.repeat(16);

describe('repositoryArgs', () => {
  it('filesystem', () => {
    assert.deepEqual(repositoryArgs({ kind: 'filesystem', path: '/backup/repo' }), {
      argv: ['filesystem', '--path=/backup/repo'],
      env: {},
    });
  });

  it('s3: every parameter in argv, the keys only in AWS_* env', () => {
    const r = repositoryArgs(
      {
        kind: 's3',
        bucket: 'bkt',
        endpoint: 'minio.lan:9000',
        region: 'eu-central-1',
        prefix: 'host1/',
        disableTls: true,
        disableTlsVerification: true,
        rootCaPemPath: '/etc/ca.pem',
      },
      { s3AccessKeyId: 'AKIA1', s3SecretAccessKey: 'sekrit', s3SessionToken: 'tok' },
    );
    assert.deepEqual(r.argv, [
      's3',
      '--bucket=bkt',
      '--endpoint=minio.lan:9000',
      '--region=eu-central-1',
      '--prefix=host1/',
      '--disable-tls',
      '--disable-tls-verification',
      '--root-ca-pem-path=/etc/ca.pem',
    ]);
    assert.deepEqual(r.env, {
      AWS_ACCESS_KEY_ID: 'AKIA1',
      AWS_SECRET_ACCESS_KEY: 'sekrit',
      AWS_SESSION_TOKEN: 'tok',
    });
  });

  it('s3: minimal (Kopia default endpoint), missing keys refused without echoing anything', () => {
    assert.deepEqual(
      repositoryArgs({ kind: 's3', bucket: 'bkt' }, { s3AccessKeyId: 'a', s3SecretAccessKey: 's' }).argv,
      ['s3', '--bucket=bkt'],
    );
    assert.throws(
      () => repositoryArgs({ kind: 's3', bucket: 'bkt' }, { s3AccessKeyId: 'a' }),
      (e: unknown) =>
        e instanceof BackendConfigError &&
        /AWS_SECRET_ACCESS_KEY/.test(e.message) &&
        !e.message.includes("'a'"),
    );
  });

  it('s3: an invalid bucket name is refused before Kopia runs', () => {
    const keys = { s3AccessKeyId: 'a', s3SecretAccessKey: 's' };
    assert.throws(() => repositoryArgs({ kind: 's3', bucket: 'ab' }, keys), /not a valid bucket name/);
    assert.throws(() => repositoryArgs({ kind: 's3', bucket: 'a/b/c' }, keys), /not a valid bucket name/);
    assert.equal(repositoryArgs({ kind: 's3', bucket: 'my.bucket-1' }, keys).argv[1], '--bucket=my.bucket-1');
  });

  it('s3: an endpoint with a scheme or a path is refused with a hint', () => {
    const keys = { s3AccessKeyId: 'a', s3SecretAccessKey: 's' };
    assert.throws(
      () => repositoryArgs({ kind: 's3', bucket: 'bkt', endpoint: 'http://minio:9000' }, keys),
      /without a scheme.*disable_tls/,
    );
    assert.throws(
      () => repositoryArgs({ kind: 's3', bucket: 'bkt', endpoint: 'minio:9000/x' }, keys),
      /without a path/,
    );
  });

  it('b2', () => {
    const r = repositoryArgs({ kind: 'b2', bucket: 'bb', prefix: 'p/' }, { b2KeyId: 'kid', b2Key: 'k' });
    assert.deepEqual(r, {
      argv: ['b2', '--bucket=bb', '--prefix=p/'],
      env: { B2_KEY_ID: 'kid', B2_KEY: 'k' },
    });
    assert.throws(() => repositoryArgs({ kind: 'b2', bucket: 'bb' }, {}), /B2_KEY_ID, B2_KEY/);
  });

  it('azure: storage key, SAS token or service principal, all through env', () => {
    const b: RepositoryBackend = {
      kind: 'azure',
      container: 'c',
      storageAccount: 'acct',
      prefix: 'x/',
      storageDomain: 'blob.core.chinacloudapi.cn',
    };
    const argv = [
      'azure',
      '--container=c',
      '--storage-account=acct',
      '--prefix=x/',
      '--storage-domain=blob.core.chinacloudapi.cn',
    ];
    assert.deepEqual(repositoryArgs(b, { azureStorageKey: 'key' }), {
      argv,
      env: { AZURE_STORAGE_KEY: 'key' },
    });
    assert.deepEqual(repositoryArgs(b, { azureSasToken: 'sas' }).env, { AZURE_STORAGE_SAS_TOKEN: 'sas' });
    assert.deepEqual(
      repositoryArgs(b, { azureTenantId: 't', azureClientId: 'c', azureClientSecret: 's' }).env,
      { AZURE_TENANT_ID: 't', AZURE_CLIENT_ID: 'c', AZURE_CLIENT_SECRET: 's' },
    );
    assert.throws(() => repositoryArgs(b, { azureTenantId: 't' }), /AZURE_STORAGE_KEY/);
  });

  it('gcs: credentials file is a path flag; nothing secret in env', () => {
    assert.deepEqual(
      repositoryArgs({
        kind: 'gcs',
        bucket: 'g',
        prefix: 'p/',
        credentialsFile: '/etc/gcs.json',
        readOnly: true,
      }),
      {
        argv: ['gcs', '--bucket=g', '--prefix=p/', '--credentials-file=/etc/gcs.json', '--read-only'],
        env: {},
      },
    );
    assert.deepEqual(repositoryArgs({ kind: 'gcs', bucket: 'g' }).argv, ['gcs', '--bucket=g']);
    assert.throws(
      () => repositoryArgs({ kind: 'gcs', bucket: 'g', credentialsFile: 'rel.json' }),
      /absolute/,
    );
  });

  it('sftp: key file + known_hosts, never external ssh or StrictHostKeyChecking', () => {
    const r = repositoryArgs({
      kind: 'sftp',
      host: 'nas.lan',
      port: 2222,
      username: 'backup',
      path: '/srv/kopia',
      keyFile: '/root/.ssh/id_ed25519',
      knownHostsFile: '/root/.ssh/known_hosts',
    });
    assert.deepEqual(r, {
      argv: [
        'sftp',
        '--host=nas.lan',
        '--port=2222',
        '--username=backup',
        '--path=/srv/kopia',
        '--keyfile=/root/.ssh/id_ed25519',
        '--known-hosts=/root/.ssh/known_hosts',
      ],
      env: {},
    });
    assert.ok(!r.argv.some((a) => /external|ssh-args|StrictHostKeyChecking|sftp-password/.test(a)));
  });

  it('sftp: port, key file and known_hosts are checked', () => {
    const base = {
      kind: 'sftp' as const,
      host: 'h',
      port: 22,
      username: 'u',
      path: 'repo',
      keyFile: '/k',
      knownHostsFile: '/kh',
    };
    assert.throws(() => repositoryArgs({ ...base, port: 0 }), /port must be an integer 1\.\.65535/);
    assert.throws(() => repositoryArgs({ ...base, port: 70000 }), /port/);
    assert.throws(() => repositoryArgs({ ...base, knownHostsFile: '' }), /known_hosts_file is required/);
    assert.throws(() => repositoryArgs({ ...base, keyFile: 'id_rsa' }), /key_file must be an absolute path/);
  });

  it('webdav: credentials through KOPIA_WEBDAV_*; a URL with user:pass is refused', () => {
    assert.deepEqual(
      repositoryArgs(
        { kind: 'webdav', url: 'https://dav.example/kopia/' },
        { webdavUsername: 'u', webdavPassword: 'p' },
      ),
      {
        argv: ['webdav', '--url=https://dav.example/kopia/'],
        env: { KOPIA_WEBDAV_USERNAME: 'u', KOPIA_WEBDAV_PASSWORD: 'p' },
      },
    );
    assert.deepEqual(repositoryArgs({ kind: 'webdav', url: 'http://127.0.0.1:8080/' }).env, {});
    assert.throws(
      () => repositoryArgs({ kind: 'webdav', url: 'https://u:secretpw@dav.example/' }),
      (e: unknown) => e instanceof BackendConfigError && !e.message.includes('secretpw'),
    );
    assert.throws(() => repositoryArgs({ kind: 'webdav', url: 'ftp://x/' }), /http:\/\/ or https:\/\//);
    for (const url of ['ftp://u:pw-secret@x/', 'http://u:pw-secret@[bad']) {
      assert.throws(
        () => repositoryArgs({ kind: 'webdav', url }),
        (e: unknown) => e instanceof BackendConfigError && !e.message.includes('pw-secret'),
      );
    }
  });

  it('rclone', () => {
    assert.deepEqual(
      repositoryArgs({
        kind: 'rclone',
        remotePath: 'gdrive:backups/kopia',
        rcloneExe: '/usr/bin/rclone',
        rcloneArgs: ['--config=/root/.config/rclone/rclone.conf', '--fast-list'],
        startupTimeoutSeconds: 120,
      }),
      {
        argv: [
          'rclone',
          '--remote-path=gdrive:backups/kopia',
          '--rclone-exe=/usr/bin/rclone',
          '--rclone-args=--config=/root/.config/rclone/rclone.conf',
          '--rclone-args=--fast-list',
          '--rclone-startup-timeout=120s',
        ],
        env: {},
      },
    );
    assert.throws(() => repositoryArgs({ kind: 'rclone', remotePath: 'nocolon' }), /remote:path/);
  });

  it('server: https only, fingerprint normalised; connect-only', () => {
    const b: RepositoryBackend = {
      kind: 'server',
      url: 'https://kopia.lan:51515',
      serverCertFingerprint: FP,
    };
    assert.deepEqual(repositoryArgs(b), {
      argv: ['server', '--url=https://kopia.lan:51515', `--server-cert-fingerprint=${FP_HEX}`],
      env: {},
    });
    assert.equal(creatable(b), false);
    assert.equal(creatable({ kind: 'filesystem', path: '/r' }), true);
    assert.throws(() => repositoryArgs({ ...b, url: 'http://kopia.lan:51515' }), /https:\/\//);
    assert.throws(() => repositoryArgs({ ...b, serverCertFingerprint: 'abc' }), /64 hex digits/);
    assert.equal(normalizeFingerprint(FP_HEX.toUpperCase()), FP_HEX);
  });

  it('values are one argv element each (--flag=value): a leading dash cannot become a flag', () => {
    const r = repositoryArgs(
      { kind: 'b2', bucket: '--dangerous', prefix: '-x' },
      { b2KeyId: 'i', b2Key: 'k' },
    );
    assert.deepEqual(r.argv, ['b2', '--bucket=--dangerous', '--prefix=-x']);
    assert.throws(() => repositoryArgs({ kind: 'filesystem', path: '/a\nb' }), /control characters/);
    assert.throws(() => repositoryArgs({ kind: 'filesystem', path: 'relative' }), /absolute/);
  });

  it('credentialEnvNames lists names only', () => {
    assert.deepEqual(
      credentialEnvNames({ kind: 's3', bucket: 'bkt' }, { s3AccessKeyId: 'a', s3SecretAccessKey: 's' }),
      ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'],
    );
  });
});

describe('describeBackend', () => {
  it('one line per backend, no secrets', () => {
    const lines = [
      describeBackend({ kind: 'filesystem', path: '/backup/repo' }),
      describeBackend({
        kind: 's3',
        bucket: 'bkt',
        prefix: 'p/',
        endpoint: 'm:9000',
        region: 'r1',
        disableTls: true,
      }),
      describeBackend({ kind: 's3', bucket: 'bkt' }),
      describeBackend({ kind: 'b2', bucket: 'bb' }),
      describeBackend({ kind: 'azure', container: 'c', storageAccount: 'a' }),
      describeBackend({ kind: 'gcs', bucket: 'g', prefix: 'x/' }),
      describeBackend({
        kind: 'sftp',
        host: 'nas',
        port: 22,
        username: 'u',
        path: '/srv/k',
        keyFile: '/k',
        knownHostsFile: '/kh',
      }),
      describeBackend({ kind: 'webdav', url: 'https://dav/x/' }),
      describeBackend({ kind: 'rclone', remotePath: 'r:p' }),
      describeBackend({ kind: 'server', url: 'https://k:51515', serverCertFingerprint: FP_HEX }),
    ];
    assert.deepEqual(lines, [
      'filesystem /backup/repo',
      's3 s3://bkt/p/ at m:9000 (region r1, no TLS)',
      's3 s3://bkt at s3.amazonaws.com',
      'b2 b2://bb',
      'azure a/c',
      'gcs gs://g/x/',
      'sftp u@nas:22/srv/k',
      'webdav https://dav/x/',
      'rclone r:p',
      'kopia server https://k:51515/',
    ]);
  });
});

describe('backendFromStatus / sameBackend', () => {
  const status = (type: string, config: Record<string, unknown>): unknown => ({
    configFile: '/x/repository.config',
    clientOptions: { hostname: 'h', username: 'u' },
    storage: { type, config },
  });

  it('maps Kopia storage configs (secrets masked by Kopia) back to typed backends', () => {
    assert.deepEqual(backendFromStatus(status('filesystem', { path: '/r', dirShards: null })), {
      kind: 'filesystem',
      path: '/r',
    });
    assert.deepEqual(
      backendFromStatus(
        status('s3', {
          bucket: 'bkt',
          prefix: 'p/',
          endpoint: '127.0.0.1:9000',
          doNotUseTLS: true,
          accessKeyID: 'AKIA',
          secretAccessKey: '******',
          sessionToken: '',
          region: 'us-east-1',
        }),
      ),
      {
        kind: 's3',
        bucket: 'bkt',
        prefix: 'p/',
        endpoint: '127.0.0.1:9000',
        region: 'us-east-1',
        disableTls: true,
      },
    );
    assert.deepEqual(backendFromStatus(status('b2', { bucket: 'bb', keyID: 'i', key: '***' })), {
      kind: 'b2',
      bucket: 'bb',
    });
    assert.deepEqual(
      backendFromStatus(status('azureBlob', { container: 'c', storageAccount: 'a', prefix: 'x' })),
      {
        kind: 'azure',
        container: 'c',
        storageAccount: 'a',
        prefix: 'x',
      },
    );
    assert.deepEqual(backendFromStatus(status('gcs', { bucket: 'g', credentialsFile: '/c.json' })), {
      kind: 'gcs',
      bucket: 'g',
      credentialsFile: '/c.json',
    });
    assert.deepEqual(
      backendFromStatus(
        status('sftp', {
          path: '/srv/k',
          host: 'nas',
          port: 2222,
          username: 'u',
          password: '',
          keyfile: '/k',
          knownHostsFile: '/kh',
          externalSSH: false,
        }),
      ),
      {
        kind: 'sftp',
        host: 'nas',
        port: 2222,
        username: 'u',
        path: '/srv/k',
        keyFile: '/k',
        knownHostsFile: '/kh',
      },
    );
    assert.deepEqual(backendFromStatus(status('webdav', { url: 'http://d/x/', atomicWrites: false })), {
      kind: 'webdav',
      url: 'http://d/x/',
    });
    assert.deepEqual(backendFromStatus(status('rclone', { remotePath: 'r:p' })), {
      kind: 'rclone',
      remotePath: 'r:p',
    });
    assert.equal(backendFromStatus(status('gdrive', { folderID: 'x' })), undefined);
    assert.equal(backendFromStatus(status('', {})), undefined);
    assert.equal(backendFromStatus('nonsense'), undefined);
  });

  it('reads a server connection from the Kopia config file (apiServer)', () => {
    assert.deepEqual(
      backendFromStatus({ apiServer: { url: 'https://k:51515', serverCertFingerprint: FP_HEX } }),
      {
        kind: 'server',
        url: 'https://k:51515',
        serverCertFingerprint: FP_HEX,
      },
    );
  });

  it('detects a different repository: other bucket, prefix, endpoint, path, host', () => {
    const s3: RepositoryBackend = { kind: 's3', bucket: 'bkt', prefix: 'p/', endpoint: 'm:9000' };
    assert.ok(sameBackend(s3, { ...s3, region: 'x', disableTls: true }));
    assert.ok(!sameBackend(s3, { ...s3, prefix: 'q/' }));
    assert.ok(!sameBackend(s3, { ...s3, bucket: 'c' }));
    assert.ok(!sameBackend(s3, { ...s3, endpoint: 'other:9000' }));
    assert.ok(!sameBackend(s3, { kind: 'b2', bucket: 'bkt', prefix: 'p/' }));
    assert.ok(sameBackend({ kind: 'filesystem', path: '/r/' }, { kind: 'filesystem', path: '/r' }));
    assert.ok(!sameBackend({ kind: 'filesystem', path: '/r' }, { kind: 'filesystem', path: '/s' }));
    const sftp: RepositoryBackend = {
      kind: 'sftp',
      host: 'nas',
      port: 22,
      username: 'u',
      path: '/k',
      keyFile: '/a',
      knownHostsFile: '/b',
    };
    assert.ok(sameBackend(sftp, { ...sftp, keyFile: '/other' }));
    assert.ok(!sameBackend(sftp, { ...sftp, port: 2222 }));
    assert.equal(backendIdentity({ kind: 's3', bucket: 'bkt' }), 's3:s3.amazonaws.com/bkt/');
  });
});

describe('checkConnection', () => {
  const st = (path: string): unknown => ({ storage: { type: 'filesystem', config: { path } } });
  it('same, different (with a message naming both, no secrets), unknown', () => {
    const fs: RepositoryBackend = { kind: 'filesystem', path: '/backup/repo' };
    assert.equal(checkConnection(fs, st('/backup/repo/')).state, 'same');
    const diff = checkConnection(fs, st('/old/repo'));
    assert.equal(diff.state, 'different');
    assert.equal(
      diff.state === 'different' ? diff.message : '',
      'the Kopia config is connected to filesystem /old/repo, but kopi-docka is configured for filesystem /backup/repo',
    );
    const s3 = checkConnection(
      { kind: 's3', bucket: 'new', endpoint: 'm:9000' },
      { storage: { type: 's3', config: { bucket: 'old', endpoint: 'm:9000', secretAccessKey: '****' } } },
    );
    assert.equal(s3.state, 'different');
    assert.match(s3.state === 'different' ? s3.message : '', /s3:\/\/old at m:9000.*s3:\/\/new at m:9000/);
    assert.equal(checkConnection(fs, { storage: { type: 'gdrive', config: {} } }).state, 'unknown');
  });
});

describe('parseBackend', () => {
  it('round-trips every kind through JSON, dropping unknown fields', () => {
    const all: RepositoryBackend[] = [
      { kind: 'filesystem', path: '/r' },
      { kind: 's3', bucket: 'bkt', endpoint: 'e:1', region: 'r', prefix: 'p/', disableTls: true },
      { kind: 'b2', bucket: 'bkt', prefix: 'p' },
      { kind: 'azure', container: 'c', storageAccount: 'a' },
      { kind: 'gcs', bucket: 'g', credentialsFile: '/c.json' },
      { kind: 'sftp', host: 'h', port: 22, username: 'u', path: 'p', keyFile: '/k', knownHostsFile: '/kh' },
      { kind: 'webdav', url: 'https://d/' },
      { kind: 'rclone', remotePath: 'r:p', rcloneArgs: ['--fast-list'] },
      { kind: 'server', url: 'https://k:1', serverCertFingerprint: FP_HEX },
    ];
    for (const b of all) {
      assert.deepEqual(parseBackend(JSON.parse(JSON.stringify({ ...b, secretAccessKey: 'x' }))), b);
    }
    assert.throws(() => parseBackend({ kind: 'ftp' }), /unknown kind "ftp"/);
    assert.throws(() => parseBackend({ kind: 's3' }), /bucket is required/);
    assert.throws(() => parseBackend(null), /expected an object/);
  });
});
