import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Command } from '@commander-js/extra-typings';
import { configView, PASSWORD_MASK, register } from '../../src/cli/commands/config.js';
import { exitState } from '../../src/cli/context.js';
import { parseIni } from '../../src/config/ini.js';
import {
  defaultSearchPaths,
  kopiaConfigFileFor,
  loadConfig,
  type LoadOptions,
} from '../../src/config/load.js';
import { autoWorkers, parseList, SCHEMA, splitShellWords } from '../../src/config/schema.js';
import type { Config } from '../../src/config/types.js';
import { ConfigError, ExitCode } from '../../src/errors.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const GiB = 1024 ** 3;
const SYSTEM = { cores: 4, availableMemoryBytes: 16 * GiB, hostname: 'Backup-Host.example.com' };

const roots: string[] = [];
after(async () => {
  for (const r of roots) await rm(r, { recursive: true, force: true });
});

interface Sandbox {
  dir: string;
  stateDir: string;
  home: string;
  /** Writes `name` (relative to dir) with mode 0600 unless told otherwise; returns its absolute path. */
  write(name: string, text: string, mode?: number): Promise<string>;
  /** loadConfig with an isolated env, no search paths and a fixed machine unless overridden. */
  load(opts?: LoadOptions & { extraEnv?: Record<string, string> }): Promise<Config>;
}

async function sandbox(): Promise<Sandbox> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kopi-docka-config-'));
  roots.push(dir);
  const stateDir = path.join(dir, 'state');
  const home = path.join(dir, 'home');
  return {
    dir,
    stateDir,
    home,
    async write(name, text, mode = 0o600) {
      const file = path.join(dir, name);
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, text);
      await chmod(file, mode);
      return file;
    },
    load(opts = {}) {
      const { extraEnv, ...rest } = opts;
      return loadConfig({
        searchPaths: [],
        system: SYSTEM,
        ...rest,
        env: { HOME: home, KOPI_DOCKA_STATE_DIR: stateDir, ...extraEnv, ...rest.env },
      });
    },
  };
}

const MINIMAL = '[kopia]\nrepository_path = /srv/kopia\npassword = hunter2\n';

/** A config with MINIMAL's [kopia] plus `extra` (which may add sections). */
async function loadWith(extra: string, opts: LoadOptions & { extraEnv?: Record<string, string> } = {}) {
  const sb = await sandbox();
  const file = await sb.write('kopi-docka.conf', MINIMAL + extra);
  return { cfg: await sb.load({ explicitPath: file, ...opts }), file, sb };
}

async function loadError(text: string, opts: LoadOptions & { extraEnv?: Record<string, string> } = {}) {
  const sb = await sandbox();
  const file = await sb.write('kopi-docka.conf', text);
  try {
    await sb.load({ explicitPath: file, ...opts });
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    assert.equal(err.exitCode, ExitCode.CONFIG);
    return { err, file };
  }
  assert.fail('expected loadConfig to fail');
}

void describe('ini reader', () => {
  void it('keeps # and ; inside values, accepts ":" and lower-cases keys', () => {
    const doc = parseIni(
      [
        '# full-line comment',
        '; another one',
        '[kopia]',
        'Password = s3cr3t#with;specials ',
        '  # indented comment',
        'Compression: zstd',
        'url = http://x/y?a=b:c',
      ].join('\n'),
      '/cfg',
    );
    const kopia = doc.sections.get('kopia');
    assert.ok(kopia);
    assert.equal(kopia.line, 3);
    assert.deepEqual(kopia.entries.get('password'), {
      key: 'password',
      value: 's3cr3t#with;specials',
      line: 4,
    });
    assert.deepEqual(kopia.entries.get('compression'), { key: 'compression', value: 'zstd', line: 6 });
    // Split at the first delimiter only.
    assert.equal(kopia.entries.get('url')?.value, 'http://x/y?a=b:c');
  });

  void it('joins continuation lines with newlines, keeps inner blank lines, trims trailing ones', () => {
    const doc = parseIni(
      '[backup]\nexclude_patterns =\n    *.log\n\n    cache/*\n  # comment inside\n    tmp/*\n\nstop_timeout = 5\n',
      '/cfg',
    );
    const backup = doc.sections.get('backup');
    assert.equal(backup?.entries.get('exclude_patterns')?.value, '*.log\n\ncache/*\ntmp/*');
    assert.equal(backup?.entries.get('stop_timeout')?.value, '5');
    assert.equal(backup?.entries.get('stop_timeout')?.line, 9);
  });

  void it('reads CRLF files and a UTF-8 BOM', () => {
    const doc = parseIni('\uFEFF[kopia]\r\npassword = x\r\n', '/cfg');
    assert.equal(doc.sections.get('kopia')?.entries.get('password')?.value, 'x');
  });

  void it('rejects a duplicate key with file and both lines', () => {
    assert.throws(
      () => parseIni('[kopia]\npassword = a\nPASSWORD = b\n', '/etc/x.conf'),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.message.includes('/etc/x.conf:3') &&
        err.message.includes('duplicate key "password"') &&
        err.message.includes('line 2'),
    );
  });

  void it('rejects a duplicate section', () => {
    assert.throws(
      () => parseIni('[kopia]\na = 1\n[backup]\n[kopia]\n', '/etc/x.conf'),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.message.includes('/etc/x.conf:4') &&
        err.message.includes('duplicate section [kopia]'),
    );
  });

  void it('rejects a garbage line with file, line and text', () => {
    assert.throws(
      () => parseIni('[kopia]\npassword = a\nthis is not ini\n', '/etc/x.conf'),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.message.includes('/etc/x.conf:3') &&
        err.message.includes('"this is not ini"'),
    );
    assert.throws(() => parseIni('[kopia\n', '/f'), /\/f:1: cannot parse line/);
    assert.throws(() => parseIni('= value\n', '/f'), /\/f:1: cannot parse line/);
  });

  void it('rejects a key before any section', () => {
    assert.throws(
      () => parseIni('password = x\n[kopia]\n', '/f'),
      /\/f:1: "password" appears before any \[section\]/,
    );
  });
});

void describe('value parsers', () => {
  void it('exclude_patterns: comma-separated, per line, bracketed (JSON and single-quoted), empties dropped', () => {
    assert.deepEqual(parseList('*.log, cache/*'), ['*.log', 'cache/*']);
    assert.deepEqual(parseList('*.log,, cache/* ,'), ['*.log', 'cache/*']);
    assert.deepEqual(parseList('*.log\ncache/*\n\n'), ['*.log', 'cache/*']);
    assert.deepEqual(parseList('["*.log", "cache/*", ""]'), ['*.log', 'cache/*']);
    assert.deepEqual(parseList("['*.log', 'a,b/*']"), ['*.log', 'a,b/*']);
    assert.deepEqual(parseList('[*.log, cache/*]'), ['*.log', 'cache/*']);
    assert.deepEqual(parseList('[]'), []);
    assert.deepEqual(parseList(''), []);
    assert.throws(() => parseList('["*.log"'), /must end with "\]"/);
  });

  void it('hooks are split into argv by shell-word rules, never through a shell', () => {
    assert.deepEqual(splitShellWords(`/usr/bin/notify "two words" 'single $quoted' a\\ b x"y"z`), [
      '/usr/bin/notify',
      'two words',
      'single $quoted',
      'a b',
      'xyz',
    ]);
    assert.deepEqual(splitShellWords(`say "a \\"quote\\" and \\\\"`), ['say', 'a "quote" and \\']);
    assert.deepEqual(splitShellWords('  '), []);
    assert.throws(() => splitShellWords('echo "open'), /unterminated " quote/);
    assert.throws(() => splitShellWords('a | b'), /unquoted "\|"/);
    assert.throws(() => splitShellWords('a && b'), /unquoted "&"/);
    assert.throws(() => splitShellWords('echo $HOME'), /unquoted "\$"/);
    assert.deepEqual(splitShellWords(`echo '|' "&&"`), ['echo', '|', '&&']);
  });

  void it('auto workers: one per core, at most one per GiB of free memory, at most 8, at least 1', () => {
    assert.equal(autoWorkers(2, 64 * GiB), 2);
    assert.equal(autoWorkers(16, 3.5 * GiB), 3);
    assert.equal(autoWorkers(64, 256 * GiB), 8);
    assert.equal(autoWorkers(4, 0), 1);
  });
});

void describe('loadConfig: a config file', () => {
  void it('reads the file and fills in defaults, recording origins', async () => {
    const { cfg, file, sb } = await loadWith('[retention]\ndaily = 14\n');
    assert.equal(cfg.file, file);
    assert.equal(cfg.embeddedDefault, false);
    assert.equal(cfg.stateDir, sb.stateDir);
    assert.equal(cfg.kopia.repositoryPath, '/srv/kopia');
    assert.equal(cfg.kopia.password, 'hunter2');
    assert.equal(cfg.kopia.passwordFile, undefined);
    assert.equal(cfg.kopia.compression, 'zstd');
    assert.equal(cfg.kopia.encryption, 'AES256-GCM-HMAC-SHA256');
    assert.equal(cfg.kopia.cacheDirectory, '/var/cache/kopi-docka');
    assert.equal(cfg.kopia.hostname, 'backup-host');
    assert.equal(cfg.kopia.username, 'kopi-docka');
    assert.equal(cfg.kopia.binary, 'kopia');
    assert.deepEqual(cfg.backup, {
      // History and bundles follow the state dir unless configured.
      backupBasePath: `${sb.stateDir}/backups`,
      parallelWorkers: 4,
      parallelWorkersAuto: true,
      stopTimeout: 30,
      startTimeout: 120,
      // No wall-clock limit by default (as the original); a hung call is caught by stall_timeout.
      taskTimeout: 0,
      stallTimeout: 300,
      excludePatterns: [],
      volumeMode: 'direct',
      tarDeterministicMtime: false,
      warmPass: 'auto',
      updateRecoveryBundle: false,
      recoveryBundlePath: `${sb.stateDir}/recovery`,
      recoveryBundleRetention: 3,
      preBackupHook: undefined,
      postBackupHook: undefined,
    });
    assert.deepEqual(cfg.retention, { latest: 10, hourly: 0, daily: 14, weekly: 4, monthly: 12, yearly: 3 });
    assert.equal(cfg.logging.level, 'info');
    assert.deepEqual(cfg.warnings, []);
    assert.equal(cfg.origins['kopia.repository_path'], 'file');
    assert.equal(cfg.origins['kopia.password'], 'file');
    assert.equal(cfg.origins['retention.daily'], 'file');
    assert.equal(cfg.origins['retention.weekly'], 'default');
    assert.equal(cfg.origins['kopia.hostname'], 'default');
    // Every schema key has an origin.
    for (const [section, keys] of Object.entries(SCHEMA)) {
      for (const key of keys) assert.ok(cfg.origins[`${section}.${key}`], `${section}.${key} has no origin`);
    }
  });

  void it('binds the Kopia config file to the (normalised) repository path', async () => {
    const { cfg, sb } = await loadWith('');
    assert.match(cfg.kopia.kopiaConfigFile, new RegExp(`^${sb.stateDir}/kopia/[0-9a-f]{12}\\.config$`));
    assert.equal(cfg.kopia.kopiaConfigFile, kopiaConfigFileFor(sb.stateDir, '/srv/kopia'));
    assert.notEqual(kopiaConfigFileFor(sb.stateDir, '/srv/other'), cfg.kopia.kopiaConfigFile);
    const other = await sb.write('b.conf', '[kopia]\nrepository_path = /srv/kopia/\npassword = x\n');
    assert.equal((await sb.load({ explicitPath: other })).kopia.kopiaConfigFile, cfg.kopia.kopiaConfigFile);
  });

  void it('parses every [backup] key', async () => {
    const { cfg } = await loadWith(
      [
        '[backup]',
        'backup_base_path = /data/history',
        'parallel_workers = 3',
        'stop_timeout = 60',
        'start_timeout = 600',
        'exclude_patterns = ["*.log", "cache/*"]',
        'volume_mode = TAR',
        'tar_deterministic_mtime = yes',
        'update_recovery_bundle = On',
        'recovery_bundle_path = /data/recovery',
        'recovery_bundle_retention = 100',
        'pre_backup_hook = /usr/local/bin/pre-backup --flag "a b"',
        'post_backup_hook =',
        '[logging]',
        'level = WARN',
      ].join('\n'),
    );
    assert.equal(cfg.backup.backupBasePath, '/data/history');
    assert.equal(cfg.backup.parallelWorkers, 3);
    assert.equal(cfg.backup.parallelWorkersAuto, false);
    assert.equal(cfg.backup.stopTimeout, 60);
    assert.equal(cfg.backup.startTimeout, 600);
    assert.deepEqual(cfg.backup.excludePatterns, ['*.log', 'cache/*']);
    assert.equal(cfg.backup.volumeMode, 'tar');
    assert.equal(cfg.backup.tarDeterministicMtime, true);
    assert.equal(cfg.backup.updateRecoveryBundle, true);
    assert.equal(cfg.backup.recoveryBundlePath, '/data/recovery');
    assert.equal(cfg.backup.recoveryBundleRetention, 100);
    assert.deepEqual(cfg.backup.preBackupHook, ['/usr/local/bin/pre-backup', '--flag', 'a b']);
    assert.equal(cfg.backup.postBackupHook, undefined);
    assert.equal(cfg.logging.level, 'warning');
  });

  void it('accepts every boolean spelling and rejects others', async () => {
    for (const [word, value] of [
      ['true', true],
      ['YES', true],
      ['on', true],
      ['1', true],
      ['False', false],
      ['no', false],
      ['OFF', false],
      ['0', false],
    ] as const) {
      const { cfg } = await loadWith(`[backup]\ntar_deterministic_mtime = ${word}\n`);
      assert.equal(cfg.backup.tarDeterministicMtime, value, word);
    }
    const { err } = await loadError(`${MINIMAL}[backup]\nupdate_recovery_bundle = maybe\n`);
    assert.match(err.message, /:5: \[backup\] update_recovery_bundle: expected a boolean .* found "maybe"/);
  });

  void it('exclude_patterns in all three syntaxes through the loader', async () => {
    const comma = await loadWith('[backup]\nexclude_patterns = *.log, cache/*\n');
    assert.deepEqual(comma.cfg.backup.excludePatterns, ['*.log', 'cache/*']);
    const lines = await loadWith('[backup]\nexclude_patterns =\n    *.log\n    cache/*\n');
    assert.deepEqual(lines.cfg.backup.excludePatterns, ['*.log', 'cache/*']);
    const list = await loadWith('[backup]\nexclude_patterns = ["*.log", "cache/*"]\n');
    assert.deepEqual(list.cfg.backup.excludePatterns, ['*.log', 'cache/*']);
  });

  void it('parallel_workers = auto is resolved by the heuristic and capped at the number of cores', async () => {
    const capped = await loadWith('[backup]\nparallel_workers = auto\n', {
      system: { cores: 2, availableMemoryBytes: 128 * GiB, hostname: 'h' },
    });
    assert.equal(capped.cfg.backup.parallelWorkers, 2);
    assert.equal(capped.cfg.backup.parallelWorkersAuto, true);
    assert.equal(capped.cfg.origins['backup.parallel_workers'], 'file');
    const byMemory = await loadWith('[backup]\nparallel_workers = AUTO\n', {
      system: { cores: 32, availableMemoryBytes: 5 * GiB, hostname: 'h' },
    });
    assert.equal(byMemory.cfg.backup.parallelWorkers, 5);
    const explicit = await loadWith('[backup]\nparallel_workers = 16\n', {
      system: { cores: 2, availableMemoryBytes: GiB, hostname: 'h' },
    });
    assert.equal(explicit.cfg.backup.parallelWorkers, 16, 'an explicit number is not capped');
  });

  void it('task_timeout is accepted with a deprecation warning; 0 means no limit', async () => {
    const { cfg, file } = await loadWith('[backup]\ntask_timeout = 0\n');
    assert.equal(cfg.backup.taskTimeout, 0);
    assert.equal(cfg.warnings.length, 1);
    assert.match(cfg.warnings[0] ?? '', new RegExp(`^${file}:5: \\[backup\\] task_timeout is deprecated`));
    const other = await loadWith('[backup]\ntask_timeout = 900\n');
    assert.equal(other.cfg.backup.taskTimeout, 900);
    await loadError(`${MINIMAL}[backup]\ntask_timeout = -1\n`);
  });

  void it('hostname and username are validated and lower-cased', async () => {
    const { cfg } = await loadWith('');
    assert.equal(cfg.kopia.hostname, 'backup-host');
    const set = await loadWith('hostname = NAS-01\nusername = Backup\n');
    assert.equal(set.cfg.kopia.hostname, 'nas-01');
    assert.equal(set.cfg.kopia.username, 'backup');
    const { err } = await loadError(`${MINIMAL}hostname = bad host\n`);
    assert.match(err.message, /\[kopia\] hostname: expected .* found "bad host"/);
  });

  void it('accepts every Kopia compression but rejects lz4 with a hint', async () => {
    const { cfg } = await loadWith('compression = S2-Parallel-8\n');
    assert.equal(cfg.kopia.compression, 's2-parallel-8');
    const { err, file } = await loadError(`${MINIMAL}compression = lz4\n`);
    assert.ok(err.message.startsWith(`${file}:4: [kopia] compression:`), err.message);
    assert.match(err.hint ?? '', /Kopia 0\.23/);
    const bad = await loadError(`${MINIMAL}compression = brotli\n`);
    assert.match(bad.err.message, /expected one of none, zstd, .*found "brotli"/);
  });

  void it('encryption is matched case-insensitively and stored canonically', async () => {
    const { cfg } = await loadWith('encryption = chacha20-poly1305-hmac-sha256\n');
    assert.equal(cfg.kopia.encryption, 'CHACHA20-POLY1305-HMAC-SHA256');
    await loadError(`${MINIMAL}encryption = AES128\n`);
  });
});

void describe('loadConfig: errors', () => {
  void it('unknown section with a suggestion', async () => {
    const { err, file } = await loadError(`${MINIMAL}[retenion]\ndaily = 1\n`);
    assert.equal(err.message, `${file}:4: unknown section [retenion]; did you mean [retention]?`);
  });

  void it('unknown key names file, line, key and the nearest valid key', async () => {
    const { err, file } = await loadError(`${MINIMAL}[backup]\nstop_timout = 30\n`);
    assert.equal(
      err.message,
      `${file}:5: unknown key "stop_timout" in [backup]; did you mean "stop_timeout"?`,
    );
  });

  void it('a key in the wrong section says where it belongs; legacy keys say what to write', async () => {
    const wrong = await loadError(`${MINIMAL}[backup]\ncompression = zstd\n`);
    assert.match(wrong.err.message, /unknown key "compression" in \[backup\]/);
    assert.match(wrong.err.hint ?? '', /belongs in the \[kopia\] section/);
    const legacy = await loadError(`${MINIMAL}[retention]\nannual = 3\n`);
    assert.match(legacy.err.hint ?? '', /"yearly"/);
  });

  void it('wrong type names file, line, key, what was expected and what was found', async () => {
    const { err, file } = await loadError(`${MINIMAL}[backup]\nstop_timeout = 30s\n`);
    assert.equal(
      err.message,
      `${file}:5: [backup] stop_timeout: expected an integer from 1 to 3600, found "30s"`,
    );
    assert.match(err.hint ?? '', /default \(30\)/);
  });

  void it('out-of-range values are rejected', async () => {
    for (const line of [
      '[backup]\nstop_timeout = 0',
      '[backup]\nstart_timeout = 3601',
      '[backup]\nparallel_workers = 65',
      '[backup]\nparallel_workers = 0',
      '[backup]\nrecovery_bundle_retention = 0',
      '[backup]\nrecovery_bundle_retention = 101',
      '[retention]\ndaily = -1',
      '[backup]\nvolume_mode = rsync',
      '[logging]\nlevel = verbose',
    ]) {
      const { err } = await loadError(`${MINIMAL}${line}\n`);
      assert.match(err.message, /:5: \[\w+\] \w+: expected .*, found "/, line);
    }
  });

  void it('missing password names the file and what to add', async () => {
    const { err, file } = await loadError('[kopia]\nrepository_path = /srv/kopia\n');
    assert.match(err.message, new RegExp(`^${file}: no repository password`));
    assert.match(err.hint ?? '', /password_file = /);
    assert.ok(err.hint?.includes(file));
  });

  void it('an empty password is an error, not an empty password', async () => {
    const { err } = await loadError('[kopia]\nrepository_path = /srv/kopia\npassword =\n');
    assert.match(err.message, /:3: \[kopia\] password is empty/);
  });

  void it('repository_path must be absolute and present', async () => {
    const rel = await loadError('[kopia]\nrepository_path = srv/kopia\npassword = x\n');
    assert.match(rel.err.message, /:2: \[kopia\] repository_path: expected an absolute path/);
    const missing = await loadError('[kopia]\npassword = x\n');
    assert.match(missing.err.message, /\[kopia\] repository_path is missing/);
    const noSection = await loadError('[backup]\nstop_timeout = 5\n');
    assert.match(noSection.err.message, /\[kopia\] repository_path is missing/);
  });

  void it('an explicitly named config that does not exist is an error (flag and env)', async () => {
    const sb = await sandbox();
    const fallback = await sb.write('fallback.conf', MINIMAL);
    const missing = path.join(sb.dir, 'nope.conf');
    await assert.rejects(
      sb.load({ explicitPath: missing, searchPaths: [fallback] }),
      (err: unknown) =>
        err instanceof ConfigError && err.message.includes(missing) && err.message.includes('--config'),
    );
    await assert.rejects(
      sb.load({ searchPaths: [fallback], extraEnv: { KOPI_DOCKA_CONFIG: missing } }),
      (err: unknown) => err instanceof ConfigError && err.message.includes('KOPI_DOCKA_CONFIG'),
    );
  });

  void it('--config wins over KOPI_DOCKA_CONFIG, which wins over the search path', async () => {
    const sb = await sandbox();
    const a = await sb.write('a.conf', '[kopia]\nrepository_path = /a\npassword = x\n');
    const b = await sb.write('b.conf', '[kopia]\nrepository_path = /b\npassword = x\n');
    const c = await sb.write('c.conf', '[kopia]\nrepository_path = /c\npassword = x\n');
    const env = { KOPI_DOCKA_CONFIG: b };
    assert.equal((await sb.load({ explicitPath: a, searchPaths: [c], extraEnv: env })).file, a);
    assert.equal((await sb.load({ searchPaths: [c], extraEnv: env })).file, b);
    assert.equal((await sb.load({ searchPaths: [c] })).file, c);
  });

  void it('an existing config that cannot be read is a hard error, never a fallback', async () => {
    const sb = await sandbox();
    const dirAsConfig = path.join(sb.dir, 'first.conf');
    await mkdir(dirAsConfig);
    const good = await sb.write('second.conf', MINIMAL);
    await assert.rejects(
      sb.load({ searchPaths: [dirAsConfig, good] }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.message === `cannot read config file ${dirAsConfig}: it is a directory`,
    );
    // Nor is the embedded default used instead.
    await assert.rejects(sb.load({ searchPaths: [dirAsConfig] }), ConfigError);
    await assert.rejects(stat(path.join(sb.stateDir, 'repository.password')), { code: 'ENOENT' });
  });

  void it('EACCES on an existing config, or on its directory, is a hard error (checked as an unprivileged user)', async (t) => {
    const sb = await sandbox();
    const locked = await sb.write('locked.conf', MINIMAL, 0o000);
    // A config whose directory cannot be searched: whether it exists is unknown, so no guessing "no".
    const hidden = await sb.write('private/kopi-docka.conf', MINIMAL, 0o600);
    await chmod(path.dirname(hidden), 0o700);
    const good = await sb.write('good.conf', MINIMAL, 0o644);
    const runs = [
      { searchPaths: [locked, good], expect: `ERROR cannot read config file ${locked}: permission denied` },
      { searchPaths: [hidden, good], expect: `ERROR cannot check config file ${hidden}: permission denied` },
    ];
    if (process.getuid?.() !== 0) {
      await chmod(path.dirname(hidden), 0o000);
      for (const run of runs) {
        await assert.rejects(sb.load({ searchPaths: run.searchPaths }), { message: run.expect.slice(6) });
      }
      await chmod(path.dirname(hidden), 0o700);
      return;
    }
    // Root reads anything, so run the loader as nobody.
    await chmod(sb.dir, 0o755);
    // tsx caches compiled files under TMPDIR; give nobody one it may write.
    const tmp = path.join(sb.dir, 'tmp');
    await mkdir(tmp);
    await chmod(tmp, 0o777);
    const loader = path.join(repoRoot, 'src/config/load.ts');
    for (const run of runs) {
      const script = `
        const { loadConfig } = await import(${JSON.stringify(loader)});
        try {
          const cfg = await loadConfig({ searchPaths: ${JSON.stringify(run.searchPaths)}, env: { KOPI_DOCKA_STATE_DIR: ${JSON.stringify(sb.stateDir)} } });
          console.log('LOADED ' + cfg.file);
        } catch (err) { console.log('ERROR ' + err.message); }`;
      const res = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        cwd: repoRoot,
        uid: 65534,
        gid: 65534,
        encoding: 'utf8',
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/nonexistent', TMPDIR: tmp },
      });
      if (res.error || !/^(LOADED|ERROR) /m.test(res.stdout)) {
        t.skip(`cannot run as nobody here: ${res.error?.message ?? res.stderr}`);
        return;
      }
      assert.equal(res.stdout.trim(), run.expect);
    }
  });

  void it('KOPI_DOCKA_STATE_DIR must be absolute and an invalid KOPI_DOCKA_LOG_LEVEL is an error', async () => {
    await loadError(MINIMAL, { extraEnv: { KOPI_DOCKA_STATE_DIR: 'relative/state' } });
    const { err } = await loadError(MINIMAL, { extraEnv: { KOPI_DOCKA_LOG_LEVEL: 'loud' } });
    assert.match(err.message, /KOPI_DOCKA_LOG_LEVEL="loud"/);
  });
});

void describe('loadConfig: passwords and permissions', () => {
  void it('password_file is read (trailing newline trimmed), relative to the config file', async () => {
    const sb = await sandbox();
    await sb.write('secrets/pw', 'correct horse#;\n');
    const file = await sb.write(
      'kopi-docka.conf',
      '[kopia]\nrepository_path = /srv/kopia\npassword_file = secrets/pw\n',
    );
    const cfg = await sb.load({ explicitPath: file });
    assert.equal(cfg.kopia.password, 'correct horse#;');
    assert.equal(cfg.kopia.passwordFile, path.join(sb.dir, 'secrets/pw'));
    assert.equal(cfg.origins['kopia.password_file'], 'file');
    assert.deepEqual(cfg.warnings, []);
  });

  void it('an unreadable password_file names the path and the reason', async () => {
    const { err } = await loadError(
      '[kopia]\nrepository_path = /srv/kopia\npassword_file = /nonexistent/pw\n',
    );
    assert.match(
      err.message,
      /:3: \[kopia\] password_file: cannot read password file \/nonexistent\/pw: it does not exist/,
    );
    const sb = await sandbox();
    await sb.write('empty', '\n');
    const file = await sb.write('c.conf', '[kopia]\nrepository_path = /srv/kopia\npassword_file = empty\n');
    await assert.rejects(sb.load({ explicitPath: file }), /password file .*empty is empty/);
  });

  void it('both password and password_file: password_file wins, with a warning', async () => {
    const sb = await sandbox();
    const pw = await sb.write('pw', 'from-file\n');
    const file = await sb.write(
      'c.conf',
      `[kopia]\nrepository_path = /srv/kopia\npassword = inline\npassword_file = ${pw}\n`,
    );
    const cfg = await sb.load({ explicitPath: file });
    assert.equal(cfg.kopia.password, 'from-file');
    assert.equal(cfg.warnings.length, 1);
    assert.match(
      cfg.warnings[0] ?? '',
      /both password \(line 3\) and password_file \(line 4\).*password_file wins/,
    );
  });

  void it('warns when a config or password file holding a password is readable by group/others', async () => {
    const sb = await sandbox();
    const loose = await sb.write('loose.conf', MINIMAL, 0o644);
    const cfg = await sb.load({ explicitPath: loose });
    assert.deepEqual(cfg.warnings, [
      `${loose} holds the repository password but is accessible to group/others (mode 0644); run: chmod 600 ${loose}`,
    ]);
    const tight = await sb.write('tight.conf', MINIMAL, 0o600);
    assert.deepEqual((await sb.load({ explicitPath: tight })).warnings, []);

    // Without a password in it the config may be world-readable; the password file may not.
    const pw = await sb.write('pw', 'x\n', 0o640);
    const viaFile = await sb.write(
      'via-file.conf',
      `[kopia]\nrepository_path = /r\npassword_file = ${pw}\n`,
      0o644,
    );
    const warnings = (await sb.load({ explicitPath: viaFile })).warnings;
    assert.equal(warnings.length, 1);
    assert.match(
      warnings[0] ?? '',
      new RegExp(`^${pw} holds the repository password .*mode 0640.*chmod 600 ${pw}$`),
    );
  });

  void it('KOPI_DOCKA_PASSWORD overrides the password; KOPI_DOCKA_LOG_LEVEL the level; KOPI_DOCKA_KOPIA_BIN the binary', async () => {
    const sb = await sandbox();
    const file = await sb.write(
      'c.conf',
      '[kopia]\nrepository_path = /srv/kopia\npassword_file = /nonexistent\n[logging]\nlevel = error\n',
    );
    const cfg = await sb.load({
      explicitPath: file,
      extraEnv: {
        KOPI_DOCKA_PASSWORD: 'from-env',
        KOPI_DOCKA_LOG_LEVEL: 'debug',
        KOPI_DOCKA_KOPIA_BIN: '/opt/kopia',
      },
    });
    assert.equal(cfg.kopia.password, 'from-env');
    assert.equal(cfg.kopia.passwordFile, undefined);
    assert.equal(cfg.origins['kopia.password'], 'env');
    assert.equal(cfg.logging.level, 'debug');
    assert.equal(cfg.origins['logging.level'], 'env');
    assert.equal(cfg.kopia.binary, '/opt/kopia');
  });
});

void describe('loadConfig: search order and the embedded default', () => {
  void it('the default search order, including the kopi-docker spelling', () => {
    assert.deepEqual(defaultSearchPaths('/home/u'), [
      '/etc/kopi-docka.conf',
      '/home/u/.config/kopi-docka/config.conf',
      '/home/u/.config/kopi-docker/config.conf',
    ]);
    assert.deepEqual(defaultSearchPaths(undefined), ['/etc/kopi-docka.conf']);
  });

  void it('the first existing file wins', async () => {
    const sb = await sandbox();
    const [etc, dotConfig, docker] = ['etc/kopi-docka.conf', ...defaultSearchPaths(sb.home).slice(1)].map(
      (p) => path.resolve(sb.dir, p),
    ) as [string, string, string];
    await sb.write(path.relative(sb.dir, docker), '[kopia]\nrepository_path = /docker\npassword = x\n');
    const search = [etc, dotConfig, docker];
    let cfg = await sb.load({ searchPaths: search });
    assert.equal(cfg.file, docker, 'the kopi-docker spelling is accepted');
    assert.equal(cfg.kopia.repositoryPath, '/docker');
    await sb.write(path.relative(sb.dir, dotConfig), '[kopia]\nrepository_path = /dot\npassword = x\n');
    cfg = await sb.load({ searchPaths: search });
    assert.equal(cfg.file, dotConfig);
    await sb.write(path.relative(sb.dir, etc), '[kopia]\nrepository_path = /etc\npassword = x\n');
    cfg = await sb.load({ searchPaths: search });
    assert.equal(cfg.file, etc);
  });

  void it('with no file anywhere: embedded default, a 0600 password file created once and reused', async () => {
    const sb = await sandbox();
    const first = await sb.load({ searchPaths: [path.join(sb.dir, 'none.conf')] });
    const pwFile = path.join(sb.stateDir, 'repository.password');
    assert.equal(first.embeddedDefault, true);
    assert.equal(first.file, undefined);
    assert.equal(first.kopia.repositoryPath, path.join(sb.stateDir, 'repository'));
    assert.equal(first.kopia.passwordFile, pwFile);
    assert.equal(first.kopia.compression, 'zstd');
    assert.match(first.kopia.password, /^[A-Za-z0-9_-]{43}$/, '32 random bytes, base64url');
    assert.equal((await stat(pwFile)).mode & 0o777, 0o600);
    assert.equal(await readFile(pwFile, 'utf8'), `${first.kopia.password}\n`);
    assert.deepEqual(first.warnings, [
      `no config file found; using the embedded default: filesystem repository ${sb.stateDir}/repository (password in ${pwFile})`,
    ]);
    assert.equal(first.origins['kopia.repository_path'], 'embedded-default');
    assert.equal(first.origins['kopia.password'], 'embedded-default');
    assert.equal(first.origins['backup.stop_timeout'], 'default');

    const second = await sb.load();
    assert.equal(second.kopia.password, first.kopia.password, 'the password is reused, not regenerated');
    assert.equal(second.kopia.kopiaConfigFile, first.kopia.kopiaConfigFile);
  });

  void it('concurrent first runs agree on one embedded-default password', async () => {
    const sb = await sandbox();
    const results = await Promise.all(Array.from({ length: 8 }, () => sb.load()));
    const passwords = new Set(results.map((c) => c.kopia.password));
    assert.equal(passwords.size, 1);
    assert.equal(
      await readFile(path.join(sb.stateDir, 'repository.password'), 'utf8'),
      `${[...passwords][0]}\n`,
    );
  });

  void it('embedded default with KOPI_DOCKA_PASSWORD creates no password file', async () => {
    const sb = await sandbox();
    const cfg = await sb.load({ extraEnv: { KOPI_DOCKA_PASSWORD: 'env-pw' } });
    assert.equal(cfg.kopia.password, 'env-pw');
    assert.equal(cfg.kopia.passwordFile, undefined);
    assert.equal(cfg.origins['kopia.password'], 'env');
    await assert.rejects(stat(path.join(sb.stateDir, 'repository.password')), { code: 'ENOENT' });
  });
});

void describe('examples/kopi-docka.conf', () => {
  void it('loads cleanly', async () => {
    const example = path.join(repoRoot, 'examples/kopi-docka.conf');
    const sb = await sandbox();
    // The example points at /etc/kopi-docka.password; the env override keeps the test off the real /etc.
    const cfg = await sb.load({ explicitPath: example, extraEnv: { KOPI_DOCKA_PASSWORD: 'x' } });
    assert.equal(cfg.file, example);
    assert.deepEqual(cfg.warnings, []);
    assert.equal(cfg.kopia.repositoryPath, '/srv/kopia-repository');
    assert.ok(Object.values(cfg.origins).includes('file'));
  });
});

void describe('config show', () => {
  void it('masks the password, shows the password file and every key with its origin', async () => {
    const sb = await sandbox();
    const pw = await sb.write('pw', 'very-secret-value\n');
    const file = await sb.write('c.conf', `[kopia]\nrepository_path = /srv/kopia\npassword_file = ${pw}\n`);
    const view = configView(await sb.load({ explicitPath: file }));
    assert.ok(!JSON.stringify(view).includes('very-secret'));
    assert.deepEqual(view.sections.kopia?.password, { value: PASSWORD_MASK, origin: 'file' });
    assert.deepEqual(view.sections.kopia?.password_file, { value: pw, origin: 'file' });
    assert.equal(view.file, file);
    for (const [section, keys] of Object.entries(SCHEMA)) {
      assert.deepEqual(Object.keys(view.sections[section] ?? {}), [...keys]);
    }
    assert.deepEqual(view.sections.backup?.parallel_workers, { value: 4, origin: 'default', auto: true });
  });

  void it('`config show --json` prints one JSON document without the password', async () => {
    const sb = await sandbox();
    const file = await sb.write(
      'c.conf',
      '[kopia]\nrepository_path = /srv/kopia\npassword = top-secret-pw\n',
    );
    const program = new Command().option('-c, --config <path>').option('--log-level <level>').exitOverride();
    register(program);
    const chunks: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    const saved = process.env.KOPI_DOCKA_STATE_DIR;
    process.env.KOPI_DOCKA_STATE_DIR = sb.stateDir;
    process.stdout.write = (chunk: string | Uint8Array) => {
      chunks.push(String(chunk));
      return true;
    };
    try {
      exitState.code = 99;
      await program.parseAsync(['node', 'kopi-docka', '--config', file, 'config', 'show', '--json']);
    } finally {
      process.stdout.write = write;
      if (saved === undefined) delete process.env.KOPI_DOCKA_STATE_DIR;
      else process.env.KOPI_DOCKA_STATE_DIR = saved;
    }
    const output = chunks.join('');
    assert.equal(exitState.code, 0);
    assert.ok(!output.includes('top-secret-pw'));
    const doc = JSON.parse(output) as {
      file: string;
      sections: Record<string, Record<string, { value: unknown }>>;
    };
    assert.equal(doc.file, file);
    assert.equal(doc.sections.kopia?.password?.value, PASSWORD_MASK);
    assert.equal(doc.sections.kopia?.repository_path?.value, '/srv/kopia');
  });
});
