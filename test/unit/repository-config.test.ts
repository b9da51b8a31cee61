/**
 * `[kopia] backend = …` and its keys, from the INI text to the exact Kopia argv/env: one config per
 * backend (b2, azure and gcs cannot be reached from here, so this is their proof), credentials from
 * the environment or a 0600 credentials file (looser modes refused), precise errors (file, line, key,
 * what is expected, what to do), and `config show` never printing a credential.
 */
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { configView } from '../../src/cli/commands/config.js';
import { backendOf } from '../../src/config/keys-repository.js';
import { kopiaConfigFileFor, loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { repositoryArgs } from '../../src/core/repository-backend.js';
import { ConfigError } from '../../src/errors.js';

const SYSTEM = { cores: 2, availableMemoryBytes: 4 * 1024 ** 3, hostname: 'host1' };
const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function write(text: string): Promise<{ file: string; dir: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kd-repo-config-'));
  dirs.push(dir);
  const file = path.join(dir, 'kopi-docka.conf');
  await writeFile(file, text, { mode: 0o600 });
  return { file, dir };
}

async function load(
  text: string,
  env: Record<string, string> = {},
  files: Record<string, [string, number]> = {},
): Promise<{ cfg: Config; file: string; dir: string }> {
  const { file, dir } = await write(text);
  for (const [name, [content, mode]] of Object.entries(files)) {
    await writeFile(path.join(dir, name), content, { mode });
    await chmod(path.join(dir, name), mode);
  }
  const cfg = await loadConfig({
    explicitPath: file,
    searchPaths: [],
    system: SYSTEM,
    env: { KOPI_DOCKA_STATE_DIR: path.join(dir, 'state'), ...env },
  });
  return { cfg, file, dir };
}

async function refused(text: string, files: Record<string, [string, number]> = {}): Promise<ConfigError> {
  try {
    await load(text, {}, files);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  return assert.fail('expected the config to be refused');
}

const argsOf = (cfg: Config) => repositoryArgs(backendOf(cfg.kopia), cfg.kopia.backendSecrets ?? {});

describe('[kopia] backend = … → the exact Kopia argv and environment', () => {
  it('filesystem is the default, as before (repository_path; same Kopia config file name)', async () => {
    const { cfg, dir } = await load('[kopia]\nrepository_path = /srv/repo/\npassword = x\n');
    assert.deepEqual(cfg.kopia.backend, { kind: 'filesystem', path: '/srv/repo' });
    assert.equal(cfg.kopia.repositoryPath, '/srv/repo');
    assert.deepEqual(argsOf(cfg), { argv: ['filesystem', '--path=/srv/repo'], env: {} });
    assert.equal(cfg.kopia.kopiaConfigFile, kopiaConfigFileFor(path.join(dir, 'state'), '/srv/repo'));
    assert.equal(cfg.origins['kopia.backend'], 'default');
  });

  it('s3: every parameter in argv, the keys from the environment only', async () => {
    const { cfg } = await load(
      [
        '[kopia]',
        'backend = s3',
        'bucket = kd-bucket',
        'endpoint = minio.lan:9000',
        'region = eu-central-1',
        'prefix = hosts/web1/',
        'disable_tls = true',
        'password = x',
      ].join('\n'),
      { AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE', AWS_SECRET_ACCESS_KEY: 'very-secret' },
    );
    assert.equal(cfg.kopia.repositoryPath, '');
    assert.deepEqual(argsOf(cfg), {
      argv: [
        's3',
        '--bucket=kd-bucket',
        '--endpoint=minio.lan:9000',
        '--region=eu-central-1',
        '--prefix=hosts/web1/',
        '--disable-tls',
      ],
      env: { AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE', AWS_SECRET_ACCESS_KEY: 'very-secret' },
    });
    // Another location, another Kopia config file: never the old connection.
    assert.match(cfg.kopia.kopiaConfigFile, /\/state\/kopia\/[0-9a-f]{12}\.config$/);
    const view = JSON.stringify(configView(cfg));
    assert.ok(
      !view.includes('very-secret') && !view.includes('AKIDEXAMPLE'),
      'config show holds no credential',
    );
    assert.deepEqual(configView(cfg).sections.kopia?.backend, { value: 's3', origin: 'file' });
  });

  it('b2: bucket and prefix in argv, B2_KEY_ID/B2_KEY from a 0600 credentials file', async () => {
    const { cfg } = await load(
      '[kopia]\nbackend = b2\nbucket = my-b2\nprefix = kd/\ncredentials_file = creds.env\npassword = x\n',
      {},
      { 'creds.env': ['# B2 application key\nB2_KEY_ID=0012ab\nB2_KEY="K001secret"\n', 0o600] },
    );
    assert.deepEqual(argsOf(cfg), {
      argv: ['b2', '--bucket=my-b2', '--prefix=kd/'],
      env: { B2_KEY_ID: '0012ab', B2_KEY: 'K001secret' },
    });
    assert.match(String(configView(cfg).sections.kopia?.credentials_file?.value), /creds\.env$/);
  });

  it('the environment wins over the credentials file, variable by variable', async () => {
    const { cfg } = await load(
      '[kopia]\nbackend = b2\nbucket = my-b2\ncredentials_file = creds.env\npassword = x\n',
      { B2_KEY: 'from-env' },
      { 'creds.env': ['B2_KEY_ID=file-id\nB2_KEY=from-file\n', 0o600] },
    );
    assert.deepEqual(argsOf(cfg).env, { B2_KEY_ID: 'file-id', B2_KEY: 'from-env' });
  });

  it('azure: container, account, domain and prefix in argv; the storage key in AZURE_STORAGE_KEY', async () => {
    const { cfg } = await load(
      [
        '[kopia]',
        'backend = azure',
        'azure_container = backups',
        'azure_storage_account = kdacct',
        'azure_storage_domain = blob.core.chinacloudapi.cn',
        'prefix = web1/',
        'password = x',
      ].join('\n'),
      { AZURE_STORAGE_KEY: 'azkey==' },
    );
    assert.deepEqual(argsOf(cfg), {
      argv: [
        'azure',
        '--container=backups',
        '--storage-account=kdacct',
        '--prefix=web1/',
        '--storage-domain=blob.core.chinacloudapi.cn',
      ],
      env: { AZURE_STORAGE_KEY: 'azkey==' },
    });
  });

  it('gcs: bucket, prefix and the credentials file path in argv, nothing in env', async () => {
    const { cfg } = await load(
      '[kopia]\nbackend = gcs\nbucket = kd-gcs\nprefix = p/\ngcs_credentials_file = /etc/kopi-docka/gcs.json\npassword = x\n',
    );
    assert.deepEqual(argsOf(cfg), {
      argv: ['gcs', '--bucket=kd-gcs', '--prefix=p/', '--credentials-file=/etc/kopi-docka/gcs.json'],
      env: {},
    });
  });

  it('sftp: host, port, user, path, key and known_hosts; port defaults to 22', async () => {
    const text = [
      '[kopia]',
      'backend = sftp',
      'sftp_host = backup.lan',
      'sftp_user = kd',
      'sftp_path = /srv/kopia',
      'sftp_key_file = /root/.ssh/kd_ed25519',
      'sftp_known_hosts_file = /root/.ssh/kd_known_hosts',
      'password = x',
    ].join('\n');
    const { cfg } = await load(text);
    assert.deepEqual(argsOf(cfg).argv, [
      'sftp',
      '--host=backup.lan',
      '--port=22',
      '--username=kd',
      '--path=/srv/kopia',
      '--keyfile=/root/.ssh/kd_ed25519',
      '--known-hosts=/root/.ssh/kd_known_hosts',
    ]);
    const { cfg: c2 } = await load(`${text}\nsftp_port = 2222\n`);
    assert.ok(argsOf(c2).argv.includes('--port=2222'));
  });

  it('webdav, rclone and server', async () => {
    const w = await load('[kopia]\nbackend = webdav\nwebdav_url = https://dav.lan/kopia/\npassword = x\n', {
      KOPIA_WEBDAV_USERNAME: 'u',
      KOPIA_WEBDAV_PASSWORD: 'p',
    });
    assert.deepEqual(argsOf(w.cfg), {
      argv: ['webdav', '--url=https://dav.lan/kopia/'],
      env: { KOPIA_WEBDAV_USERNAME: 'u', KOPIA_WEBDAV_PASSWORD: 'p' },
    });
    const r = await load(
      "[kopia]\nbackend = rclone\nrclone_remote_path = gdrive:kopia\nrclone_args = --config='/root/rc.conf' --fast-list\nrclone_startup_timeout = 60\npassword = x\n",
    );
    assert.deepEqual(argsOf(r.cfg).argv, [
      'rclone',
      '--remote-path=gdrive:kopia',
      '--rclone-args=--config=/root/rc.conf',
      '--rclone-args=--fast-list',
      '--rclone-startup-timeout=60s',
    ]);
    const s = await load(
      `[kopia]\nbackend = server\nserver_url = https://kopia.lan:51515\nserver_cert_fingerprint = ${'AB:'.repeat(32).slice(0, -1)}\npassword = x\n`,
    );
    assert.deepEqual(argsOf(s.cfg).argv, [
      'server',
      '--url=https://kopia.lan:51515',
      `--server-cert-fingerprint=${'ab'.repeat(32)}`,
    ]);
  });
});

describe('[kopia] backend errors say file, line, key, what is expected and what to do', () => {
  it('an unknown backend', async () => {
    const err = await refused('[kopia]\nbackend = dropbox\npassword = x\n');
    assert.match(err.message, /:2: \[kopia\] backend: expected one of filesystem, s3, b2, azure, gcs, sftp/);
  });

  it('a key of another backend', async () => {
    const err = await refused('[kopia]\nbackend = s3\nbucket = b12\nsftp_host = x\npassword = x\n');
    assert.match(
      err.message,
      /:4: \[kopia\] sftp_host is not used by backend = s3 \(line 2\); it belongs to sftp/,
    );
    assert.match(err.hint ?? '', /remove the line, or set "backend = sftp"/);
    const fs = await refused('[kopia]\nrepository_path = /srv/r\nbucket = b12\npassword = x\n');
    assert.match(fs.message, /:3: \[kopia\] bucket is not used by backend = filesystem \(the default\)/);
    const stray = await refused('[kopia]\nbucket = b12\npassword = x\n');
    assert.match(
      stray.message,
      /:2: \[kopia\] bucket is not used by backend = filesystem \(the default\); it belongs to s3, b2, gcs/,
    );
    assert.match(stray.hint ?? '', /set "backend = s3"/);
    const rp = await refused('[kopia]\nbackend = s3\nbucket = b12\nrepository_path = /srv/r\npassword = x\n');
    assert.match(rp.message, /:4: \[kopia\] repository_path is not used by backend = s3/);
  });

  it('a missing required key', async () => {
    const err = await refused('[kopia]\nbackend = sftp\nsftp_host = h\npassword = x\n');
    assert.match(
      err.message,
      /\[kopia\] sftp_user is missing \(backend = sftp \(line 2\) requires sftp_host, sftp_user/,
    );
    assert.match(err.hint ?? '', /add "sftp_user = …" under \[kopia\]/);
  });

  it('a malformed value, located at its own line', async () => {
    const ep = await refused(
      '[kopia]\nbackend = s3\nbucket = b12\nendpoint = https://minio.lan\npassword = x\n',
    );
    assert.match(ep.message, /:4: \[kopia\] endpoint: endpoint is host\[:port\] without a scheme/);
    const port = await refused(
      '[kopia]\nbackend = sftp\nsftp_host = h\nsftp_port = 70000\nsftp_user = u\nsftp_path = p\nsftp_key_file = /k\nsftp_known_hosts_file = /kh\npassword = x\n',
    );
    assert.match(port.message, /:4: \[kopia\] sftp_port: expected an integer from 1 to 65535, found "70000"/);
    const url = await refused(
      '[kopia]\nbackend = webdav\nwebdav_url = https://me:pw@dav.lan/\npassword = x\n',
    );
    assert.match(url.message, /:3: \[kopia\] webdav_url: url must not carry credentials/);
    assert.ok(!url.message.includes('pw@'), 'the password in the URL is not echoed');
    const key = await refused(
      '[kopia]\nbackend = sftp\nsftp_host = h\nsftp_user = u\nsftp_path = p\nsftp_key_file = id_ed25519\nsftp_known_hosts_file = /kh\npassword = x\n',
    );
    assert.match(key.message, /:6: \[kopia\] sftp_key_file: expected an absolute path/);
  });

  it('a credentials file readable by others is refused; an unknown variable too', async () => {
    const loose = await refused(
      '[kopia]\nbackend = b2\nbucket = bb1\ncredentials_file = creds.env\npassword = x\n',
      { 'creds.env': ['B2_KEY_ID=a\nB2_KEY=b\n', 0o644] },
    );
    assert.match(
      loose.message,
      /:4: \[kopia\] credentials_file: credentials file .*creds\.env is accessible to group\/others \(mode 0644\)/,
    );
    assert.match(loose.hint ?? '', /chmod 600/);
    const unknown = await refused(
      '[kopia]\nbackend = b2\nbucket = bb1\ncredentials_file = creds.env\npassword = x\n',
      { 'creds.env': ['B2_KEY_ID=a\nAWS_SECRET=zzz\n', 0o600] },
    );
    assert.match(unknown.message, /creds\.env:2: unknown credential variable AWS_SECRET/);
    assert.ok(!unknown.message.includes('zzz'));
  });
});
