/**
 * The Kopia adapter against the REAL kopia binary (never a mock here): filesystem repositories in a
 * temp directory. kopia is KOPI_DOCKA_KOPIA_BIN, else `kopia` on PATH, else the provisioning cache.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KopiaSettings } from '../../src/config/types.js';
import { GLOBAL_POLICY, Kopia, KopiaError, tagsOf } from '../../src/adapters/kopia.js';
import { run, which } from '../../src/adapters/process.js';
import { DependencyError, ExitCode, RepositoryError } from '../../src/errors.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CACHED_KOPIA = '/root/.cache/kopi-docka/kopia-0.23.1/kopia';

function kopiaBinary(): string {
  const fromEnv = process.env.KOPI_DOCKA_KOPIA_BIN;
  if (fromEnv) return fromEnv;
  const onPath = which('kopia');
  if (onPath) return onPath;
  if (existsSync(CACHED_KOPIA)) return CACHED_KOPIA;
  throw new Error('kopia not found: set KOPI_DOCKA_KOPIA_BIN or run scripts/test.sh (it provisions kopia)');
}

let base = '';
let binary = '';
const PASSWORD = 'it-secret-password-1';

function settings(over: Partial<KopiaSettings> = {}): KopiaSettings {
  return {
    repositoryPath: path.join(base, 'repo'),
    password: PASSWORD,
    passwordFile: undefined,
    compression: 'zstd',
    encryption: 'AES256-GCM-HMAC-SHA256',
    cacheDirectory: path.join(base, 'cache'),
    kopiaConfigFile: path.join(base, 'state', 'a.config'),
    hostname: 'ithost',
    username: 'ituser',
    binary,
    ...over,
  };
}

/** path → size and mtime of everything under dir (a fingerprint to prove nothing changed). */
async function listing(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      const s = await stat(p);
      out[path.relative(dir, p)] = `${s.size}:${s.mtimeMs}`;
      if (e.isDirectory()) await walk(p);
    }
  };
  await walk(dir);
  return out;
}

async function sha256(file: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(file))
    .digest('hex');
}

before(async () => {
  binary = kopiaBinary();
  base = await mkdtemp(path.join(os.tmpdir(), 'kopi-docka-kopia-it-'));
});

after(async () => {
  if (base) await rm(base, { recursive: true, force: true });
});

describe('kopia adapter (real kopia)', () => {
  let kopia: Kopia;
  let data = '';
  let firstId = '';

  before(() => {
    kopia = new Kopia(settings());
  });

  it('reports and accepts the installed version; a missing binary is a DependencyError', async () => {
    const v = await kopia.assertSupported();
    assert.match(v, /^\d+\.\d+\.\d+$/);
    assert.equal(await kopia.version(), v);
    const missing = new Kopia(settings({ binary: path.join(base, 'no-such-kopia') }));
    await assert.rejects(missing.version(), (e: unknown) => e instanceof DependencyError && e.exitCode === 4);
    await assert.rejects(missing.status(), DependencyError);
  });

  it('status is undefined before anything is connected', async () => {
    assert.equal(await kopia.status(), undefined);
  });

  it('ensureRepository creates, then finds it already connected', async () => {
    assert.equal(await kopia.ensureRepository(), 'created');
    assert.equal(await kopia.ensureRepository(), 'already-connected');
    const st = await kopia.status();
    assert.ok(st);
    assert.equal(st.storage?.config.path, path.join(base, 'repo'));
    assert.equal(st.clientOptions.hostname, 'ithost');
    assert.equal(st.clientOptions.username, 'ituser');
    assert.equal(st.contentFormat?.encryption, 'AES256-GCM-HMAC-SHA256');
    assert.equal((await kopia.maintenanceInfo()).owner, 'ituser@ithost');
    assert.equal((await kopia.policyShow(GLOBAL_POLICY)).compression?.compressorName, 'zstd');
    // The password is never persisted next to kopia's config (we pass it in the env each time).
    assert.ok(!existsSync(`${kopia.configFile}.kopia-password`));
    assert.ok(existsSync(kopia.kopiaCacheDirectory));
  });

  it('a second config file with the right password connects', async () => {
    const b = new Kopia(
      settings({
        kopiaConfigFile: path.join(base, 'state', 'b.config'),
        cacheDirectory: path.join(base, 'cache-b'),
      }),
    );
    assert.equal(await b.ensureRepository(), 'connected');
    assert.equal(await b.ensureRepository(), 'already-connected');
  });

  it('a wrong password fails clearly and changes nothing', async () => {
    const repoBefore = await listing(path.join(base, 'repo'));
    const stateBefore = await listing(path.join(base, 'state'));
    const cacheBefore = await listing(kopia.kopiaCacheDirectory);
    const configBefore = await readFile(kopia.configFile, 'utf8');

    // A fresh config file…
    const c = new Kopia(
      settings({
        password: 'not-the-password',
        kopiaConfigFile: path.join(base, 'state', 'c.config'),
        cacheDirectory: path.join(base, 'cache-c'),
      }),
    );
    await assert.rejects(
      c.ensureRepository(),
      (e: unknown) =>
        e instanceof RepositoryError &&
        e instanceof KopiaError &&
        e.reason === 'wrong-password' &&
        e.exitCode === ExitCode.REPOSITORY &&
        e.message === `wrong password for the existing repository at ${path.join(base, 'repo')}` &&
        /password/.test(e.hint ?? ''),
    );
    assert.ok(!existsSync(path.join(base, 'state', 'c.config')));
    // …and the FIRST config file itself: kopia's own connect would delete it and its cache here.
    const a2 = new Kopia(settings({ password: 'not-the-password' }));
    await assert.rejects(
      a2.ensureRepository(),
      (e: unknown) => e instanceof KopiaError && e.reason === 'wrong-password',
    );

    assert.deepEqual(await listing(path.join(base, 'repo')), repoBefore);
    assert.deepEqual(await listing(path.join(base, 'state')), stateBefore);
    assert.deepEqual(
      Object.keys(await listing(kopia.kopiaCacheDirectory)).sort(),
      Object.keys(cacheBefore).sort(),
    );
    assert.equal(await readFile(kopia.configFile, 'utf8'), configBefore);
    assert.equal(await kopia.ensureRepository(), 'already-connected');
  });

  it('snapshotCreate records tags under the override source; snapshotList filters by exact source', async () => {
    data = path.join(base, 'data');
    await mkdir(path.join(data, 'sub'), { recursive: true });
    await writeFile(path.join(data, 'a.txt'), 'hello\n');
    await writeFile(path.join(data, 'skip.log'), 'noise\n');
    await writeFile(path.join(data, 'sub', 'b.bin'), randomBytes(4096));
    const parent = await kopia.snapshotCreate(data, {
      source: 'ituser@ithost:/it/unit',
      tags: { unit: 'parent' },
    });
    const m = await kopia.snapshotCreate(data, {
      source: 'ituser@ithost:/it/unit/data/',
      tags: { unit: 'app', backup_id: '2026-01-01T00-00-00Z', note: 'a:b' },
      description: 'integration',
    });
    firstId = m.id;
    assert.match(m.id, /^[0-9a-f]{32}$/);
    assert.deepEqual(m.source, { host: 'ithost', userName: 'ituser', path: '/it/unit/data' });
    assert.equal(m.incomplete, undefined);
    assert.equal(m.rootEntry.summ?.files, 3);
    assert.deepEqual(tagsOf(m), { unit: 'app', backup_id: '2026-01-01T00-00-00Z', note: 'a:b' });

    // kopia itself also returns the ancestor /it/unit for this source; the adapter must not.
    const list = await kopia.snapshotList({ source: 'ituser@ithost:/it/unit/data' });
    assert.deepEqual(
      list.map((x) => x.id),
      [m.id],
    );
    assert.deepEqual(tagsOf(list[0] ?? {}), tagsOf(m));
    assert.ok((list[0]?.retentionReason ?? []).length > 0);
    const byTag = await kopia.snapshotList({ tags: { unit: 'parent' } });
    assert.deepEqual(
      byTag.map((x) => x.id),
      [parent.id],
    );
    assert.equal((await kopia.snapshotList({ source: 'ituser@ithost:/it/nothing' })).length, 0);
  });

  it('a stdin snapshot from a producer process reads back byte-identical with showToStream', async () => {
    const input = path.join(base, 'stream.bin');
    await writeFile(input, randomBytes(3 * 1024 * 1024 + 17));
    const res = await kopia.snapshotCreateFromStream(['cat', input], 'vol.tar', {
      source: 'ituser@ithost:/it/unit/tarvol',
      tags: { unit: 'app', mode: 'tar' },
    });
    assert.equal(res.producer.code, 0);
    assert.equal(res.kopiaFailedFirst, false);
    const m = kopia.parseSnapshotCreateOutput(res.kopia);
    assert.equal(m.rootEntry.type, 'd');
    assert.equal(m.rootEntry.summ?.size, 3 * 1024 * 1024 + 17);
    const out = path.join(base, 'stream.out');
    await kopia.showToStream(`${m.rootEntry.obj}/vol.tar`, createWriteStream(out));
    assert.equal(await sha256(out), await sha256(input));
    await assert.rejects(
      kopia.showToStream(`${m.rootEntry.obj}/missing.tar`, createWriteStream(path.join(base, 'x.out'))),
      KopiaError,
    );
  });

  it('ensurePolicy writes once, then finds nothing to do; the policy is inherited', async () => {
    const target = 'ituser@ithost:/it/unit';
    const desired = { keepLatest: 3, keepDaily: 5, compression: 'zstd', ignore: ['*.log', 'tmp/'] };
    assert.equal(await kopia.ensurePolicy(target, desired), true);
    assert.equal(await kopia.ensurePolicy(target, desired), false);
    const defined = await kopia.policyDefined(target);
    assert.equal(defined?.retention?.keepLatest, 3);
    assert.deepEqual(defined?.files?.ignore, ['*.log', 'tmp/']);
    // Changing the ignore set is one call with remove/add (kopia drops adds combined with --clear-ignore).
    assert.equal(await kopia.ensurePolicy(target, { ignore: ['*.log', '*.bak'] }), true);
    assert.deepEqual((await kopia.policyDefined(target))?.files?.ignore, ['*.bak', '*.log']);
    const effective = await kopia.policyShow('ituser@ithost:/it/unit/data');
    assert.equal(effective.retention?.keepLatest, 3);
    // Defined on the global policy too (that value is inherited here but not defined for the child).
    assert.equal(await kopia.ensurePolicy('ituser@ithost:/it/unit/data', { keepLatest: 3 }), true);
  });

  it('ignore rules from ensurePolicy exclude files from the next snapshot', async () => {
    const lines: string[] = [];
    const m = await kopia.snapshotCreate(data, {
      source: 'ituser@ithost:/it/unit/data',
      tags: { unit: 'app' },
      onProgress: (l) => lines.push(l),
    });
    assert.ok(
      lines.some((l) => l.startsWith('Snapshotting ituser@ithost:/it/unit/data')),
      lines.join('\n'),
    );
    const target = path.join(base, 'restored');
    await kopia.restore(m.id, target, { skipOwners: true });
    assert.equal(await readFile(path.join(target, 'a.txt'), 'utf8'), 'hello\n');
    assert.ok(existsSync(path.join(target, 'sub', 'b.bin')));
    assert.ok(!existsSync(path.join(target, 'skip.log')), 'skip.log should have been ignored');
    // Restore of a sub path by manifest ID.
    const one = path.join(base, 'restored-one');
    await kopia.restore(`${m.id}/sub`, one);
    assert.ok(existsSync(path.join(one, 'b.bin')));
  });

  it('fatal read errors: kopia exits 1 with JSON; the error names the paths and carries the manifest', async (t) => {
    const setpriv = which('setpriv');
    if (process.getuid?.() !== 0 || !setpriv) {
      t.skip('needs root and setpriv to make a file unreadable to kopia');
      return;
    }
    const bad = path.join(base, 'bad');
    await mkdir(bad);
    await writeFile(path.join(bad, 'ok'), 'ok');
    await writeFile(path.join(bad, 'noread'), 'secret');
    await chmod(path.join(bad, 'noread'), 0o000);
    // Root without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH cannot read a mode-000 file.
    const wrapper = path.join(base, 'kopia-nodac');
    await writeFile(
      wrapper,
      `#!/bin/sh\nexec ${setpriv} --bounding-set=-dac_override,-dac_read_search ${binary} "$@"\n`,
      { mode: 0o755 },
    );
    const limited = new Kopia(settings({ binary: wrapper }));
    await assert.rejects(
      limited.snapshotCreate(bad, { source: 'ituser@ithost:/it/bad', tags: {} }),
      (e: unknown) =>
        e instanceof KopiaError &&
        e.reason === 'snapshot-failed' &&
        e.code === 1 &&
        /noread/.test(e.message) &&
        e.manifest?.rootEntry.summ?.numFailed === 1,
    );
  });

  it('a timeout kills kopia and says so', async () => {
    await assert.rejects(
      kopia.snapshotCreate(data, { source: 'ituser@ithost:/it/timeout', tags: {}, timeoutMs: 1 }),
      (e: unknown) => e instanceof KopiaError && e.timedOut && e.reason === 'timeout',
    );
  });

  it('snapshotDelete removes snapshots and verifies; expire runs retention', async () => {
    await kopia.snapshotDelete([firstId]);
    const left = await kopia.snapshotList({ source: 'ituser@ithost:/it/unit/data' });
    assert.ok(!left.some((m) => m.id === firstId));
    await kopia.snapshotDelete([firstId]); // already gone: fine
    await kopia.expire('ituser@ithost:/it/unit/data');
    assert.ok((await kopia.snapshotList({ source: 'ituser@ithost:/it/unit/data' })).length >= 1);
  });
});

describe('kopi-docka init / check (built CLI, real kopia)', () => {
  let cliBase = '';
  const main = path.join(ROOT, 'dist', 'main.js');

  before(async () => {
    cliBase = path.join(base, 'cli');
    await mkdir(cliBase, { recursive: true });
    // Build as the brief says; other modules' type errors must not hide this test, so only require
    // that dist/main.js was emitted.
    spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'ignore' });
    assert.ok(existsSync(main), 'dist/main.js was not built');
  });

  async function writeConfig(name: string, password: string): Promise<string> {
    const file = path.join(cliBase, `${name}.conf`);
    await writeFile(
      file,
      `[kopia]\nrepository_path = ${path.join(cliBase, 'repo')}\npassword = ${password}\ncache_directory = ${path.join(cliBase, `cache-${name}`)}\n`,
      { mode: 0o600 },
    );
    return file;
  }

  async function cli(args: string[], config: string, state: string) {
    const env: Record<string, string | undefined> = {
      KOPI_DOCKA_CONFIG: config,
      KOPI_DOCKA_STATE_DIR: path.join(cliBase, state),
      KOPI_DOCKA_KOPIA_BIN: binary,
      KOPI_DOCKA_PASSWORD: undefined,
      NO_COLOR: '1',
    };
    return run(['node', main, ...args], { env, timeoutMs: 120_000 });
  }

  it('init creates, then is already connected; a wrong password exits 5 with a clear message', async () => {
    const good = await writeConfig('good', 'cli-password-1');
    const r1 = await cli(['init'], good, 'state');
    assert.equal(r1.code, 0, r1.stderrTail);
    assert.match(r1.stdout, /^created repository .*\/cli\/repo as kopi-docka@\S+\n$/);
    const r2 = await cli(['init'], good, 'state');
    assert.equal(r2.code, 0, r2.stderrTail);
    assert.match(r2.stdout, /^already connected to repository .*\/cli\/repo as kopi-docka@/);
    // Another state dir (another kopia config) with the right password: connected.
    const r3 = await cli(['init', '--json'], good, 'state2');
    assert.equal(r3.code, 0, r3.stderrTail);
    assert.equal((JSON.parse(r3.stdout) as { result: string }).result, 'connected');

    const bad = await writeConfig('bad', 'wrong-password');
    const r4 = await cli(['init'], bad, 'state3');
    assert.equal(r4.code, ExitCode.REPOSITORY);
    assert.match(r4.stderrTail, /error: wrong password for the existing repository at .*\/cli\/repo/);
    assert.match(r4.stderrTail, /hint: .*password/);
    assert.ok(!r4.stderrTail.includes('wrong-password'), 'the password must not be printed');
  });

  it('check reports kopia, tar and the repository OK (docker as the daemon allows)', async () => {
    const good = path.join(cliBase, 'good.conf');
    const r = await cli(['check', '--json'], good, 'state');
    const body = JSON.parse(r.stdout) as {
      ok: boolean;
      checks: { name: string; ok: boolean; detail: string }[];
    };
    const by = Object.fromEntries(body.checks.map((c) => [c.name, c]));
    assert.equal(by.kopia?.ok, true, by.kopia?.detail);
    assert.equal(by.tar?.ok, true, by.tar?.detail);
    assert.equal(by.repository?.ok, true, by.repository?.detail);
    assert.equal(r.code, by.docker?.ok ? 0 : ExitCode.DOCKER);
    // Not initialised for this state dir → repository FAIL, exit 5 (when docker is fine).
    const r2 = await cli(['check'], good, 'fresh-state');
    assert.match(r2.stdout, /FAIL\s+repository\s+not connected/);
    if (by.docker?.ok) assert.equal(r2.code, ExitCode.REPOSITORY);
  });
});
