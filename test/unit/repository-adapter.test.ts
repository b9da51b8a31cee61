/**
 * What the Kopia adapter really spawns for a cloud backend that cannot be reached from here (b2, azure,
 * gcs): a fake runner records every call of `ensureRepository` — `repository status`, the probe
 * `repository connect <backend>` against a throw-away config, then `repository create <backend>` —
 * and the exact argv and environment of each. Credentials go only into the environment of the
 * connect/create children, never into any argv, and not into the environment of other calls.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { Kopia } from '../../src/adapters/kopia.js';
import type { RunOptions, RunResult } from '../../src/adapters/process.js';
import type { KopiaSettings } from '../../src/config/types.js';
import type { BackendSecrets, RepositoryBackend } from '../../src/core/repository-backend.js';

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

function result(code: number, stderr = '', stdout = ''): RunResult {
  return { code, signal: null, stdout, stderrTail: stderr, timedOut: false, aborted: false };
}

interface Call {
  argv: string[];
  env: Record<string, string | undefined>;
}

async function ensureWith(
  backend: RepositoryBackend,
  secrets: BackendSecrets,
): Promise<{ calls: Call[]; kopia: Kopia }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kd-repo-adapter-'));
  dirs.push(dir);
  const calls: Call[] = [];
  const settings: KopiaSettings = {
    repositoryPath: '',
    backend,
    backendSecrets: secrets,
    password: 'repo-password-xyz',
    passwordFile: undefined,
    compression: 'zstd',
    encryption: 'AES256-GCM-HMAC-SHA256',
    cacheDirectory: path.join(dir, 'cache'),
    kopiaConfigFile: path.join(dir, 'state', 'kopia', 'x.config'),
    hostname: 'web1',
    username: 'kopi-docka',
    binary: 'kopia',
  };
  const kopia = new Kopia(settings, {
    logDir: false,
    runner: (argv: readonly string[], opts: RunOptions) => {
      calls.push({ argv: [...argv], env: { ...opts.env } });
      const sub = argv.slice(1, 3).join(' ');
      if (sub === 'repository status')
        return Promise.resolve(result(1, 'ERROR repository is not connected.'));
      if (sub === 'repository connect')
        return Promise.resolve(result(1, 'ERROR repository not initialized in the provided storage'));
      if (sub === 'repository create') return Promise.resolve(result(0));
      // Maintenance and policy after the create are not this test's subject.
      return Promise.resolve(result(1, 'ERROR stop here'));
    },
  });
  await assert.rejects(kopia.ensureRepository(), /stop here/);
  return { calls, kopia };
}

function common(k: Kopia): string[] {
  return [
    `--config-file=${k.configFile}`,
    '--disable-file-logging',
    '--no-progress',
    '--no-auto-maintenance',
  ];
}

function connectFlags(k: Kopia): string[] {
  return [
    '--override-hostname=web1',
    '--override-username=kopi-docka',
    `--cache-directory=${k.kopiaCacheDirectory}`,
    '--no-check-for-updates',
    '--no-persist-credentials',
  ];
}

function checkSecrets(calls: Call[], secrets: Record<string, string>): void {
  const values = Object.values(secrets);
  for (const c of calls) {
    for (const v of values) assert.ok(!c.argv.some((a) => a.includes(v)), `a secret in ${c.argv.join(' ')}`);
    const sub = c.argv.slice(1, 3).join(' ');
    const creds = Object.keys(secrets).filter((k) => c.env[k] !== undefined);
    if (sub === 'repository connect' || sub === 'repository create') {
      assert.deepEqual(
        Object.fromEntries(creds.map((k) => [k, c.env[k]])),
        secrets,
        `${sub}: the credentials in its environment`,
      );
    } else {
      assert.deepEqual(creds, [], `${sub}: no credentials in its environment`);
    }
    assert.equal(c.env.KOPIA_PASSWORD, 'repo-password-xyz');
  }
}

describe('ensureRepository on backends this host cannot reach: the exact argv and environment', () => {
  it('b2', async () => {
    const secrets = { B2_KEY_ID: '0012abcdef', B2_KEY: 'K001-very-secret' };
    const { calls, kopia } = await ensureWith(
      { kind: 'b2', bucket: 'kd-b2', prefix: 'web1/' },
      { b2KeyId: secrets.B2_KEY_ID, b2Key: secrets.B2_KEY },
    );
    assert.deepEqual(
      calls.slice(0, 3).map((c) => c.argv.slice(1, 3).join(' ')),
      ['repository status', 'repository connect', 'repository create'],
    );
    const probe = calls[1]?.argv ?? [];
    assert.deepEqual(probe.slice(0, 6), [
      'kopia',
      'repository',
      'connect',
      'b2',
      '--bucket=kd-b2',
      '--prefix=web1/',
    ]);
    assert.ok(!probe.includes(`--config-file=${kopia.configFile}`), 'the probe never uses the real config');
    assert.deepEqual(calls[2]?.argv, [
      'kopia',
      'repository',
      'create',
      'b2',
      '--bucket=kd-b2',
      '--prefix=web1/',
      ...connectFlags(kopia),
      '--encryption=AES256-GCM-HMAC-SHA256',
      ...common(kopia),
    ]);
    checkSecrets(calls, secrets);
  });

  it('azure (storage key)', async () => {
    const secrets = { AZURE_STORAGE_KEY: 'azure-key-zzz==' };
    const { calls, kopia } = await ensureWith(
      { kind: 'azure', container: 'backups', storageAccount: 'kdacct', prefix: 'web1/' },
      { azureStorageKey: secrets.AZURE_STORAGE_KEY },
    );
    assert.deepEqual(calls[2]?.argv, [
      'kopia',
      'repository',
      'create',
      'azure',
      '--container=backups',
      '--storage-account=kdacct',
      '--prefix=web1/',
      ...connectFlags(kopia),
      '--encryption=AES256-GCM-HMAC-SHA256',
      ...common(kopia),
    ]);
    checkSecrets(calls, secrets);
  });

  it('gcs (service-account file: a path, no secret in the environment)', async () => {
    const { calls, kopia } = await ensureWith(
      { kind: 'gcs', bucket: 'kd-gcs', credentialsFile: '/etc/kopi-docka/gcs.json' },
      {},
    );
    assert.deepEqual(calls[2]?.argv, [
      'kopia',
      'repository',
      'create',
      'gcs',
      '--bucket=kd-gcs',
      '--credentials-file=/etc/kopi-docka/gcs.json',
      ...connectFlags(kopia),
      '--encryption=AES256-GCM-HMAC-SHA256',
      ...common(kopia),
    ]);
    checkSecrets(calls, {});
  });

  it('missing credentials: a config error naming the variables before anything runs but status', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'kd-repo-adapter-'));
    dirs.push(dir);
    const calls: string[] = [];
    const kopia = new Kopia(
      {
        repositoryPath: '',
        backend: { kind: 'b2', bucket: 'kd-b2' },
        backendSecrets: {},
        password: 'pw-12345',
        passwordFile: undefined,
        compression: 'zstd',
        encryption: 'AES256-GCM-HMAC-SHA256',
        cacheDirectory: path.join(dir, 'cache'),
        kopiaConfigFile: path.join(dir, 'x.config'),
        hostname: 'web1',
        username: 'kopi-docka',
        binary: 'kopia',
      },
      {
        logDir: false,
        runner: (argv) => {
          calls.push(argv.slice(1, 3).join(' '));
          return Promise.resolve(result(1, 'ERROR repository is not connected.'));
        },
      },
    );
    await assert.rejects(
      kopia.ensureRepository(),
      (e: unknown) =>
        e instanceof Error &&
        /B2_KEY_ID, B2_KEY/.test(e.message) &&
        (e as { exitCode?: number }).exitCode === 3,
    );
    assert.deepEqual(calls, ['repository status']);
  });
});
