/**
 * The exact argv the Kopia adapter builds and how it judges kopia's output. A fake runner stands in
 * for kopia here; test/integration/kopia.test.ts runs the same code against the real binary.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { KopiaSettings } from '../../src/config/types.js';
import type { RunOptions, RunResult } from '../../src/adapters/process.js';
import {
  GLOBAL_POLICY,
  Kopia,
  KopiaError,
  compareVersions,
  normalizeSource,
  parseKopiaVersion,
  parseSnapshotCreateOutput,
  policyDiffFlags,
  policyTargetOf,
  tagFlags,
  tagsOf,
} from '../../src/adapters/kopia.js';
import { DependencyError, ExitCode, RepositoryError } from '../../src/errors.js';

const PASSWORD = 'correct horse battery staple';

function settings(over: Partial<KopiaSettings> = {}): KopiaSettings {
  return {
    repositoryPath: '/backup/repo',
    password: PASSWORD,
    passwordFile: undefined,
    compression: 'zstd',
    encryption: 'AES256-GCM-HMAC-SHA256',
    cacheDirectory: '/var/cache/kopi-docka',
    kopiaConfigFile: '/etc/kopi-docka/kopia.config',
    hostname: 'dockerhost',
    username: 'backup',
    binary: 'kopia',
    ...over,
  };
}

function result(over: Partial<RunResult> = {}): RunResult {
  return { code: 0, signal: null, stdout: '', stderrTail: '', timedOut: false, aborted: false, ...over };
}

interface Call {
  argv: readonly string[];
  opts: RunOptions;
}

/** A Kopia whose runner records calls and answers from a queue. */
function fake(answers: (Partial<RunResult> | Error)[], over: Partial<KopiaSettings> = {}) {
  const calls: Call[] = [];
  const kopia = new Kopia(settings(over), {
    runner: (argv, opts) => {
      calls.push({ argv, opts });
      const a = answers.shift() ?? {};
      return a instanceof Error ? Promise.reject(a) : Promise.resolve(result(a));
    },
  });
  return { kopia, calls };
}

const COMMON = [
  '--config-file=/etc/kopi-docka/kopia.config',
  '--log-dir=/var/cache/kopi-docka/logs',
  '--no-progress',
  '--no-auto-maintenance',
];

function manifest(over: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: 'aa97c0d861b34917584d2e44ecd38899',
    source: { host: 'dockerhost', userName: 'backup', path: '/volumes/app/data' },
    description: '',
    startTime: '2026-01-01T00:00:00.123456789Z',
    endTime: '2026-01-01T00:00:01Z',
    rootEntry: {
      name: 'data',
      type: 'd',
      mode: '0755',
      mtime: '2026-01-01T00:00:00Z',
      obj: 'k01d7a08e6740be0b7a02cd4ab1104fc8',
      summ: { size: 13, files: 3, symlinks: 0, dirs: 2, numFailed: 0 },
    },
    tags: { 'tag:unit': 'app', 'tag:backup_id': '2026-01-01T00-00-00Z' },
    ...over,
  };
}

function assertNoPassword(calls: Call[]): void {
  for (const c of calls) {
    assert.ok(!c.argv.some((a) => a.includes(PASSWORD)), `password in argv: ${c.argv.join(' ')}`);
    assert.equal(c.opts.env?.KOPIA_PASSWORD, PASSWORD);
    assert.equal(c.opts.env?.KOPIA_CHECK_FOR_UPDATES, 'false');
    assert.equal(c.opts.input, undefined, 'stdin must stay /dev/null');
  }
}

describe('sources and tags', () => {
  it('normalizes the override source path', () => {
    assert.equal(normalizeSource('u@h:/volumes/app/db/'), 'u@h:/volumes/app/db');
    assert.equal(normalizeSource('u@h:/volumes//app/./db'), 'u@h:/volumes/app/db');
    assert.equal(normalizeSource('u@h:/'), 'u@h:/');
    assert.throws(() => normalizeSource('/volumes/x'), /user@host/);
    assert.throws(() => normalizeSource('u@h:relative'), /user@host/);
    assert.throws(() => normalizeSource('@h:/x'), /user@host/);
  });

  it('repeats --tags=k:v, sorted, and rejects a ":" in a key', () => {
    assert.deepEqual(tagFlags({ unit: 'app', backup_id: '2026-01-01T00-00-00Z', kind: 'a:b' }), [
      '--tags=backup_id:2026-01-01T00-00-00Z',
      '--tags=kind:a:b',
      '--tags=unit:app',
    ]);
    assert.throws(() => tagFlags({ 'a:b': 'c' }), /tag key/);
    assert.throws(() => tagFlags({ '': 'c' }), /tag key/);
  });

  it('strips the tag: prefix and drops other labels', () => {
    assert.deepEqual(tagsOf({ tags: { 'tag:unit': 'app', 'tag:x': 'a:b', type: 'snapshot' } }), {
      unit: 'app',
      x: 'a:b',
    });
    assert.deepEqual(tagsOf({}), {});
  });

  it('maps policy targets to policy list triples', () => {
    assert.deepEqual(policyTargetOf(GLOBAL_POLICY), { host: '', userName: '', path: '' });
    assert.deepEqual(policyTargetOf('@h'), { host: 'h', userName: '', path: '' });
    assert.deepEqual(policyTargetOf('u@h'), { host: 'h', userName: 'u', path: '' });
    assert.deepEqual(policyTargetOf('u@h:/volumes/app/'), { host: 'h', userName: 'u', path: '/volumes/app' });
  });
});

describe('argv', () => {
  it('snapshot create: override source, repeated tags, json, no progress, absolute config, no password', async () => {
    const { kopia, calls } = fake([{ stdout: JSON.stringify(manifest()) + '\n' }]);
    const m = await kopia.snapshotCreate('/var/lib/docker/volumes/app_data/_data', {
      source: 'backup@dockerhost:/volumes/app/data/',
      tags: { unit: 'app', backup_id: '2026-01-01T00-00-00Z' },
      description: 'nightly',
      timeoutMs: 1000,
    });
    assert.equal(m.id, 'aa97c0d861b34917584d2e44ecd38899');
    assert.deepEqual(calls[0]?.argv, [
      'kopia',
      'snapshot',
      'create',
      '--json',
      '--override-source=backup@dockerhost:/volumes/app/data',
      '--tags=backup_id:2026-01-01T00-00-00Z',
      '--tags=unit:app',
      '--description=nightly',
      ...COMMON,
      '--',
      '/var/lib/docker/volumes/app_data/_data',
    ]);
    assert.equal(calls[0]?.opts.timeoutMs, 1000);
    assertNoPassword(calls);
  });

  it('resolves a relative config file to an absolute path; logDir=false disables file logs', async () => {
    const calls: Call[] = [];
    const kopia = new Kopia(settings({ kopiaConfigFile: 'rel/kopia.config' }), {
      logDir: false,
      runner: (argv, opts) => {
        calls.push({ argv, opts });
        return Promise.resolve(result({ stdout: '[\n]' }));
      },
    });
    await kopia.snapshotList();
    const argv = calls[0]?.argv ?? [];
    assert.ok(argv.includes(`--config-file=${process.cwd()}/rel/kopia.config`), argv.join(' '));
    assert.ok(argv.includes('--disable-file-logging'));
    assert.ok(!argv.some((a) => a.startsWith('--log-dir')));
  });

  it('progress is switched on only when a progress callback is given', async () => {
    const lines: string[] = [];
    const { kopia, calls } = fake([{ stdout: JSON.stringify(manifest()) }]);
    await kopia.snapshotCreate('/d', {
      source: 'backup@dockerhost:/v',
      tags: {},
      onProgress: (l) => lines.push(l),
    });
    const argv = calls[0]?.argv ?? [];
    assert.ok(argv.includes('--progress') && !argv.includes('--no-progress'));
    calls[0]?.opts.onStderrLine?.(' | 1 hashing, 0 hashed (65.5 KB) ');
    assert.deepEqual(lines, ['| 1 hashing, 0 hashed (65.5 KB)']);
  });

  it('stdin snapshot argv for the tar pipeline; the password only in the environment', () => {
    const { kopia } = fake([]);
    const argv = kopia.stdinSnapshotArgv('pgdata.tar', {
      source: 'backup@dockerhost:/volumes/db/pgdata/',
      tags: { volume: 'pgdata' },
    });
    assert.deepEqual(argv, [
      'kopia',
      'snapshot',
      'create',
      '--json',
      '--override-source=backup@dockerhost:/volumes/db/pgdata',
      '--tags=volume:pgdata',
      '--stdin-file=pgdata.tar',
      ...COMMON,
      '--',
      '/volumes/db/pgdata',
    ]);
    assert.ok(!argv.some((a) => a.includes(PASSWORD)));
    // The password goes only into the environment of the child the adapter spawns itself.
    assert.equal(kopia.scriptEnvironment(true).KOPIA_PASSWORD, PASSWORD);
    assert.equal(kopia.scriptEnvironment(false).KOPIA_PASSWORD, undefined);
    assert.equal(kopia.scriptEnvironment(false).KOPIA_CHECK_FOR_UPDATES, 'false');
    assert.throws(() => kopia.stdinSnapshotArgv('a/b', { source: 'u@h:/x', tags: {} }), /stdin file name/);
  });

  it('snapshot list passes tags and the source, and keeps only the exact source', async () => {
    const ancestor = manifest({
      id: 'b'.repeat(32),
      source: { host: 'dockerhost', userName: 'backup', path: '/volumes' },
    });
    const other = manifest({
      id: 'c'.repeat(32),
      source: { host: 'other', userName: 'backup', path: '/volumes/app/data' },
    });
    const { kopia, calls } = fake([
      { stdout: `[\n${JSON.stringify(manifest())},\n${JSON.stringify(ancestor)}\n]` },
    ]);
    const list = await kopia.snapshotList({
      source: 'backup@dockerhost:/volumes/app/data/',
      tags: { unit: 'app' },
    });
    assert.deepEqual(
      list.map((m) => m.id),
      ['aa97c0d861b34917584d2e44ecd38899'],
    );
    assert.deepEqual(calls[0]?.argv, [
      'kopia',
      'snapshot',
      'list',
      '--json',
      '--tags=unit:app',
      ...COMMON,
      '--',
      'backup@dockerhost:/volumes/app/data',
    ]);
    // Without a source: this identity only, unless all.
    const both = `[\n${JSON.stringify(manifest())},\n${JSON.stringify(other)}\n]`;
    const f2 = fake([{ stdout: both }, { stdout: both }]);
    assert.equal((await f2.kopia.snapshotList()).length, 1);
    assert.equal((await f2.kopia.snapshotList({ all: true })).length, 2);
  });

  it('snapshot delete: only manifest IDs, --delete, verified afterwards', async () => {
    const id = 'aa97c0d861b34917584d2e44ecd38899';
    const listed = `[\n{"id":"${id}","labels":{"type":"snapshot"}}\n]`;
    const { kopia, calls } = fake([{ stdout: listed }, {}, { stdout: '[\n]' }]);
    await kopia.snapshotDelete([id]);
    assert.deepEqual(calls[1]?.argv, ['kopia', 'snapshot', 'delete', '--delete', ...COMMON, '--', id]);
    await assert.rejects(
      kopia.snapshotDelete(['k01d7a08e6740be0b7a02cd4ab1104fc8']),
      /not a snapshot manifest ID/,
    );
    // kopia "succeeds" but the manifest is still there → error.
    const f2 = fake([{ stdout: listed }, {}, { stdout: listed }]);
    await assert.rejects(f2.kopia.snapshotDelete([id]), /did not delete/);
  });

  it('restore, show, expire, policy set', async () => {
    const { kopia, calls } = fake([{}, {}, {}, {}]);
    await kopia.restore('aa97c0d861b34917584d2e44ecd38899/sub', '/tmp/out', { skipOwners: true });
    await kopia.expire('backup@dockerhost:/volumes/app/data/');
    await kopia.policySet(GLOBAL_POLICY, ['--compression=zstd']);
    await kopia.policySet('backup@dockerhost:/volumes/app', ['--keep-latest=3']);
    assert.deepEqual(
      calls.map((c) => c.argv),
      [
        [
          'kopia',
          'snapshot',
          'restore',
          '--write-sparse-files',
          '--skip-owners',
          ...COMMON,
          '--',
          'aa97c0d861b34917584d2e44ecd38899/sub',
          '/tmp/out',
        ],
        ['kopia', 'snapshot', 'expire', '--delete', ...COMMON, '--', 'backup@dockerhost:/volumes/app/data'],
        ['kopia', 'policy', 'set', '--compression=zstd', '--global', ...COMMON],
        ['kopia', 'policy', 'set', '--keep-latest=3', ...COMMON, '--', 'backup@dockerhost:/volumes/app'],
      ],
    );
    assertNoPassword(calls);
    await assert.rejects(kopia.policySet('u@h:/x', []), /no flags/);
  });
});

describe('snapshot create output', () => {
  const judge = (r: Partial<RunResult>) => parseSnapshotCreateOutput(result(r));

  it('returns the manifest of a complete snapshot', () => {
    const m = judge({ stdout: JSON.stringify(manifest()) + '\n' });
    assert.equal(m.rootEntry.obj, 'k01d7a08e6740be0b7a02cd4ab1104fc8');
    assert.deepEqual(tagsOf(m), { unit: 'app', backup_id: '2026-01-01T00-00-00Z' });
  });

  it('rejects an incomplete snapshot, even with exit 0, and carries the manifest', () => {
    assert.throws(
      () => judge({ stdout: JSON.stringify(manifest({ incomplete: 'canceled' })), aborted: true }),
      (e: unknown) =>
        e instanceof KopiaError &&
        /incomplete: canceled/.test(e.message) &&
        e.reason === 'aborted' &&
        e.manifest?.id === 'aa97c0d861b34917584d2e44ecd38899',
    );
  });

  it('exit 1 with JSON (fatal file errors) lists the failed paths', () => {
    const m = manifest();
    (m.rootEntry as Record<string, unknown>).summ = {
      size: 3,
      files: 1,
      symlinks: 0,
      dirs: 1,
      numFailed: 3,
      errors: [
        { path: 'nodir', error: 'permission denied' },
        { path: 'noread', error: 'permission denied' },
      ],
    };
    assert.throws(
      () =>
        judge({
          code: 1,
          stdout: JSON.stringify(m),
          stderrTail: 'Found 3 fatal error(s) while snapshotting backup@dockerhost:/volumes/app/data.\n',
        }),
      (e: unknown) =>
        e instanceof KopiaError &&
        e.reason === 'snapshot-failed' &&
        e.exitCode === ExitCode.REPOSITORY &&
        /nodir: permission denied; noread: permission denied \(and 1 more\)/.test(e.message) &&
        e.code === 1 &&
        e.manifest !== undefined,
    );
  });

  it('exit 0 with no output means kopia saved nothing', () => {
    assert.throws(() => judge({ stdout: '' }), /kopia saved no snapshot/);
  });

  it('exit 1 without JSON is classified from stderr, with the stderr tail kept', () => {
    assert.throws(
      () =>
        judge({
          code: 1,
          stderrTail: 'open repository: repository is not connected. See https://kopia.io\n',
        }),
      (e: unknown) =>
        e instanceof KopiaError &&
        e instanceof RepositoryError &&
        e.reason === 'not-connected' &&
        /kopi-docka init/.test(e.hint ?? '') &&
        e.stderrTail.includes('not connected'),
    );
  });

  it('complete JSON but a non-zero exit is still an error', () => {
    assert.throws(
      () =>
        judge({ code: 1, stdout: JSON.stringify(manifest()), stderrTail: 'running auto-maintenance: boom' }),
      (e: unknown) =>
        e instanceof KopiaError && e.manifest !== undefined && /auto-maintenance/.test(e.message),
    );
  });

  it('garbage or malformed JSON is a clear error, not a crash later', () => {
    assert.throws(() => judge({ stdout: 'Snapshotting…' }), /unexpected output.*not JSON/);
    assert.throws(() => judge({ stdout: '{"id":"x"}' }), /not a snapshot manifest/);
    assert.throws(() => judge({ stdout: '{"id":', code: null, signal: 'SIGKILL' }), /unexpected output/);
  });

  it('a timeout without JSON says so', () => {
    assert.throws(
      () => judge({ code: null, signal: 'SIGTERM', timedOut: true }),
      (e: unknown) =>
        e instanceof KopiaError && e.timedOut && e.reason === 'timeout' && /timed out/.test(e.message),
    );
  });

  it('the password never leaks through a stderr tail', async () => {
    const { kopia } = fake([{ code: 1, stderrTail: `something echoed ${PASSWORD} back\n` }]);
    await assert.rejects(
      kopia.snapshotCreate('/d', { source: 'u@h:/x', tags: {} }),
      (e: unknown) =>
        e instanceof KopiaError && !e.message.includes(PASSWORD) && !e.stderrTail.includes(PASSWORD),
    );
  });
});

describe('policies', () => {
  it('writes only what differs, ignore rules as a set difference', () => {
    const current = {
      retention: { keepLatest: 10, keepDaily: 7 },
      compression: { compressorName: 'zstd' },
      files: { ignore: ['*.log', 'tmp/'] },
    };
    assert.deepEqual(
      policyDiffFlags(current, {
        keepLatest: 10,
        keepDaily: 14,
        compression: 'zstd',
        ignore: ['tmp/', '*.bak'],
      }),
      ['--keep-daily=14', '--remove-ignore=*.log', '--add-ignore=*.bak'],
    );
    assert.deepEqual(policyDiffFlags(current, { keepLatest: 10, ignore: ['tmp/', '*.log'] }), []);
    assert.deepEqual(policyDiffFlags(undefined, { keepLatest: 3, compression: 'zstd' }), [
      '--keep-latest=3',
      '--compression=zstd',
    ]);
    assert.deepEqual(policyDiffFlags(current, { ignore: [] }), [
      '--remove-ignore=*.log',
      '--remove-ignore=tmp/',
    ]);
    assert.throws(() => policyDiffFlags(undefined, { compression: 'lz4' }), /lz4/);
    assert.throws(() => policyDiffFlags(undefined, { keepLatest: -1 }), /invalid/);
  });

  it('ensurePolicy compares against the DEFINED policy of the exact target', async () => {
    const list = JSON.stringify([
      { id: '1', target: { host: '', userName: '', path: '' }, retention: { keepLatest: 3 } },
      {
        id: '2',
        target: { host: 'dockerhost', userName: 'backup', path: '/volumes/app/data' },
        retention: { keepLatest: 3 },
      },
    ]);
    const after = JSON.stringify([
      {
        id: '3',
        target: { host: 'dockerhost', userName: 'backup', path: '/volumes/app' },
        retention: { keepLatest: 3 },
      },
    ]);
    // The global and a child define keepLatest=3, but /volumes/app itself does not: it must be written.
    const { kopia, calls } = fake([{ stdout: list }, {}, { stdout: after }]);
    assert.equal(await kopia.ensurePolicy('backup@dockerhost:/volumes/app', { keepLatest: 3 }), true);
    assert.deepEqual(calls[1]?.argv, [
      'kopia',
      'policy',
      'set',
      '--keep-latest=3',
      ...COMMON,
      '--',
      'backup@dockerhost:/volumes/app',
    ]);
    const f2 = fake([{ stdout: after }]);
    assert.equal(await f2.kopia.ensurePolicy('backup@dockerhost:/volumes/app/', { keepLatest: 3 }), false);
    assert.equal(f2.calls.length, 1);
  });

  it('ensurePolicies reads once and writes targets needing the same change in one call', async () => {
    const t = (path: string) => ({ host: 'dockerhost', userName: 'backup', path });
    const before = JSON.stringify([{ id: '1', target: t('/binds/u'), retention: { keepLatest: 3 } }]);
    const after = JSON.stringify(
      ['/recipes/u', '/volumes/u', '/binds/u'].map((p, i) => ({
        id: String(i),
        target: t(p),
        retention: { keepLatest: 3 },
      })),
    );
    const { kopia, calls } = fake([{ stdout: before }, {}, { stdout: after }]);
    const targets = ['/recipes/u', '/volumes/u', '/binds/u'].map((p) => `backup@dockerhost:${p}`);
    const n = await kopia.ensurePolicies(targets.map((target) => ({ target, desired: { keepLatest: 3 } })));
    assert.equal(n, 2);
    // list, one set for the two that differ, list to verify.
    assert.equal(calls.length, 3);
    assert.deepEqual(calls[1]?.argv, [
      'kopia',
      'policy',
      'set',
      '--keep-latest=3',
      ...COMMON,
      '--',
      'backup@dockerhost:/recipes/u',
      'backup@dockerhost:/volumes/u',
    ]);
  });
});

describe('version and errors', () => {
  it('parses and compares versions', () => {
    assert.equal(parseKopiaVersion('v0.23.1 build: -(unknown_revision) from: '), '0.23.1');
    assert.equal(parseKopiaVersion('0.22.3 build: 0123abc from: kopia/kopia'), '0.22.3');
    assert.equal(parseKopiaVersion('nonsense'), undefined);
    assert.ok(compareVersions('0.23.1', '0.23.0') > 0);
    assert.ok(compareVersions('0.22.9', '0.23.0') < 0);
    assert.equal(compareVersions('0.23.0', '0.23.0'), 0);
    assert.ok(compareVersions('1.0.0', '0.23.0') > 0);
  });

  it('refuses an old kopia with both versions named', async () => {
    const { kopia, calls } = fake([{ stdout: 'v0.22.3 build: x from: kopia/kopia\n' }]);
    await assert.rejects(
      kopia.assertSupported(),
      (e: unknown) =>
        e instanceof DependencyError &&
        /0\.22\.3/.test(e.message) &&
        /0\.23\.0/.test(e.message) &&
        e.exitCode === 4,
    );
    assert.deepEqual(calls[0]?.argv, ['kopia', '--version']);
  });

  it('a missing kopia is a DependencyError with an install hint', async () => {
    const enoent = Object.assign(new Error('spawn kopia ENOENT'), { code: 'ENOENT' });
    const { kopia } = fake([enoent, enoent]);
    await assert.rejects(
      kopia.version(),
      (e: unknown) => e instanceof DependencyError && /install/i.test(e.hint ?? ''),
    );
    await assert.rejects(kopia.status(), DependencyError);
  });

  it('status: undefined when not connected, error on a wrong password', async () => {
    const { kopia } = fake([
      {
        code: 1,
        stderrTail: 'open repository: repository is not connected. See https://kopia.io/docs/repositories/\n',
      },
      {
        code: 1,
        stderrTail:
          'open repository: unable to open repository: unable to create format manager: invalid repository password\n',
      },
    ]);
    assert.equal(await kopia.status(), undefined);
    await assert.rejects(
      kopia.status(),
      (e: unknown) => e instanceof KopiaError && e.reason === 'wrong-password',
    );
  });
});
