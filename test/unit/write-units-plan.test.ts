/** planUnits: from the effective config to the unit spec (no unit file is written here). */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { planUnits } from '../../src/cli/commands/write-units.js';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';

const PROGRAM = ['/usr/bin/node', '/usr/lib/node_modules/kopi-docka/dist/main.js'];

describe('planUnits', () => {
  let dir: string;
  let cfg: Config;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'kd-plan-'));
    await mkdir(path.join(dir, 'repo'));
    const file = path.join(dir, 'kd.conf');
    await writeFile(
      file,
      `[kopia]\nrepository_path = ${dir}/repo\npassword_file = ${dir}/pw\ncache_directory = /var/cache/kd-test\n`,
      { mode: 0o600 },
    );
    await writeFile(path.join(dir, 'pw'), 'secret-pw\n', { mode: 0o600 });
    cfg = await loadConfig({ explicitPath: file, env: { KOPI_DOCKA_STATE_DIR: '/srv/kd-state' } });
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const facts = (over: Partial<Parameters<typeof planUnits>[1]> = {}) => ({
    program: PROGRAM,
    dockerHost: undefined,
    which: (cmd: string) => (cmd === 'kopia' ? '/usr/bin/kopia' : undefined),
    ...over,
  });

  it('passes a non-default config file, and none for /etc/kopi-docka.conf', async () => {
    const p = await planUnits(cfg, facts());
    assert.equal(p.spec.configFile, cfg.file);
    const d = await planUnits({ ...cfg, file: '/etc/kopi-docka.conf' }, facts());
    assert.equal(d.spec.configFile, undefined);
  });

  it('writable paths: state, cache, Kopia config dir, staging, repository, Docker socket dir', async () => {
    const p = await planUnits(cfg, facts());
    for (const w of ['/srv/kd-state', '/var/cache/kd-test', path.join(dir, 'repo'), '/run']) {
      assert.ok(p.spec.writablePaths.includes(w), `${w} in ${p.spec.writablePaths.join(' ')}`);
    }
    assert.ok(p.spec.writablePaths.includes(path.dirname(cfg.kopia.kopiaConfigFile)));
    assert.ok(p.spec.writablePaths.includes(cfg.backup.backupBasePath));
    assert.deepEqual(p.createDirs.slice(0, 2), ['/srv/kd-state', '/var/cache/kd-test']);
    assert.ok(!p.createDirs.includes(path.join(dir, 'repo')), 'the repository is never created here');
  });

  it('environment: state dir always, Kopia only outside systemd PATH, DOCKER_HOST when set; never the password', async () => {
    const p = await planUnits(cfg, facts());
    assert.deepEqual(p.spec.environment, { KOPI_DOCKA_STATE_DIR: '/srv/kd-state' });
    const nvm = await planUnits(cfg, facts({ which: () => '/root/.local/bin/kopia' }));
    assert.equal(nvm.spec.environment?.KOPI_DOCKA_KOPIA_BIN, '/root/.local/bin/kopia');
    const tcp = await planUnits(cfg, facts({ dockerHost: 'tcp://10.0.0.5:2375' }));
    assert.equal(tcp.spec.environment?.DOCKER_HOST, 'tcp://10.0.0.5:2375');
    assert.ok(!tcp.spec.writablePaths.includes('/run'), 'no socket dir for tcp://');
    for (const q of [p, nvm, tcp]) assert.ok(!JSON.stringify(q.spec).includes('secret-pw'));
  });

  it('warns about an env password, a missing kopia, hooks, /tmp paths and a TypeScript entry point', async () => {
    const envPw = await planUnits(
      {
        ...cfg,
        origins: { ...cfg.origins, 'kopia.password': 'env' },
        backup: { ...cfg.backup, preBackupHook: ['/usr/local/bin/dump-db'] },
      },
      facts({ which: () => undefined, program: ['/usr/bin/node', '/src/kopi-docka/src/main.ts'] }),
    );
    const all = envPw.warnings.join('\n');
    assert.match(all, /KOPI_DOCKA_PASSWORD, which the service will not have/);
    assert.match(all, /"kopia" is not on PATH/);
    assert.match(all, /hooks run inside the sandbox/);
    assert.match(all, /TypeScript source/);
    assert.match(all, /PrivateTmp=yes .* \/tmp\/kd-plan-/, 'the repository under /tmp is named');
  });
});
