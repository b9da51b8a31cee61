/**
 * Issue #11 §1: a config written for the original kopi-docka (Python, configparser) loads with the
 * same meaning, or is accepted with a warning where the original ignored a key too, or is refused
 * with a message that says what to write — never silently something else.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { configView } from '../../src/cli/commands/config.js';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { ConfigError } from '../../src/errors.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SYSTEM = { cores: 2, availableMemoryBytes: 8 * 1024 ** 3, hostname: 'host' };
const MINIMAL = '[kopia]\nrepository_path = /srv/kopia\npassword = hunter2\n';

const roots: string[] = [];
after(async () => {
  for (const r of roots) await rm(r, { recursive: true, force: true });
});

async function write(text: string): Promise<{ file: string; dir: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kopi-docka-original-'));
  roots.push(dir);
  const file = path.join(dir, 'kopi-docka.conf');
  await writeFile(file, text, { mode: 0o600 });
  return { file, dir };
}

async function load(text: string): Promise<{ cfg: Config; file: string }> {
  const { file, dir } = await write(text);
  const env = { KOPI_DOCKA_STATE_DIR: path.join(dir, 'state') };
  return { cfg: await loadConfig({ explicitPath: file, searchPaths: [], system: SYSTEM, env }), file };
}

async function refused(text: string): Promise<{ err: ConfigError; file: string }> {
  const { file, dir } = await write(text);
  const env = { KOPI_DOCKA_STATE_DIR: path.join(dir, 'state') };
  try {
    await loadConfig({ explicitPath: file, searchPaths: [], system: SYSTEM, env });
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return { err, file };
  }
  return assert.fail('expected the config to be refused');
}

void describe("the original README's example kopi-docka.conf", () => {
  void it('loads verbatim, with the meaning the README gives each line', async () => {
    const text = await readFile(path.join(repoRoot, 'test/fixtures/original-readme.conf'), 'utf8');
    assert.match(text.split('\n')[4] ?? '', /^encryption = aes256$/, 'the fixture is the README example');
    const { cfg, file } = await load(text);
    assert.equal(cfg.kopia.repositoryPath, '/backup/kopia-repo');
    assert.equal(cfg.kopia.password, 'CHANGE_ME_TO_A_SECURE_PASSWORD');
    assert.equal(cfg.kopia.compression, 'zstd-fastest');
    assert.equal(cfg.kopia.encryption, 'AES256-GCM-HMAC-SHA256');
    assert.equal(cfg.kopia.cacheDirectory, '/var/cache/kopia');
    assert.equal(cfg.backup.backupBasePath, '/backup/kopi-docka');
    assert.equal(cfg.backup.parallelWorkersAuto, true);
    assert.equal(cfg.backup.stopTimeout, 30);
    assert.equal(cfg.backup.startTimeout, 60);
    assert.deepEqual(cfg.backup.excludePatterns, ['*.tmp', '*.cache', 'lost+found']);
    assert.equal(cfg.backup.updateRecoveryBundle, false);
    assert.equal(cfg.backup.recoveryBundlePath, '/backup/recovery');
    assert.equal(cfg.backup.recoveryBundleRetention, 3);
    // "No task_timeout anymore": no wall-clock limit; hung calls are caught by the stall watchdog.
    assert.equal(cfg.backup.taskTimeout, 0);
    assert.equal(cfg.backup.stallTimeout, 300);
    assert.deepEqual(cfg.retention, { latest: 10, hourly: 0, daily: 7, weekly: 4, monthly: 12, yearly: 2 });
    assert.equal(cfg.logging.level, 'info');
    // The one warning: the README's placeholder password is public.
    assert.equal(cfg.warnings.length, 1);
    assert.match(
      cfg.warnings[0] ?? '',
      new RegExp(`^${file}:3: \\[kopia\\] password is still the placeholder`),
    );
  });
});

void describe("the original's later INI README (profile, base_path, task_timeout, [docker], log file)", () => {
  const LATER = [
    '[kopia]',
    'repository_path = /backup/kopia-repository',
    'password = your-secure-password-here',
    'profile = kopi-docka',
    'compression = zstd',
    'encryption = AES256-GCM-HMAC-SHA256',
    'cache_directory = /var/cache/kopia',
    '',
    '[backup]',
    'base_path = /backup/kopi-docka',
    'parallel_workers = 4',
    'stop_timeout = 30',
    'start_timeout = 60',
    'task_timeout = 0',
    'update_recovery_bundle = false',
    'recovery_bundle_path = /backup/recovery',
    'recovery_bundle_retention = 3',
    'exclude_patterns = ',
    'pre_backup_hook = ',
    'post_backup_hook = ',
    '',
    '[retention]',
    'daily = 7',
    'weekly = 4',
    'monthly = 12',
    'yearly = 5',
    '',
    '[docker]',
    'socket = /var/run/docker.sock',
    'compose_timeout = 300',
    'prune_stopped_containers = false',
    '',
    '[logging]',
    'level = INFO',
    'file = /var/log/kopi-docka.log',
    'max_size_mb = 100',
    'backup_count = 5',
    '',
  ].join('\n');

  void it('loads: base_path is backup_base_path, keys the original ignored too are named in warnings', async () => {
    const { cfg, file } = await load(LATER);
    assert.equal(cfg.backup.backupBasePath, '/backup/kopi-docka');
    assert.equal(cfg.origins['backup.backup_base_path'], 'file');
    assert.equal(cfg.backup.parallelWorkers, 4);
    assert.equal(cfg.backup.taskTimeout, 0);
    assert.equal(cfg.retention.yearly, 5);
    const ignored = ['4: [kopia] profile', '29: [docker] socket', '30: [docker] compose_timeout'];
    ignored.push('31: [docker] prune_stopped_containers', '35: [logging] file', '36: [logging] max_size_mb');
    ignored.push('37: [logging] backup_count');
    for (const where of ignored) {
      assert.ok(
        cfg.warnings.some((w) => w.startsWith(`${file}:${where} has no effect: `)),
        `no warning for ${where}: ${cfg.warnings.join('\n')}`,
      );
    }
    assert.ok(cfg.warnings.some((w) => w.startsWith(`${file}:14: [backup] task_timeout is deprecated`)));
    assert.equal(cfg.warnings.length, ignored.length + 1);
  });

  void it('an ignored key with an empty value asks for nothing and warns about nothing', async () => {
    const { cfg } = await load(`${MINIMAL}[logging]\nfile =\n`);
    assert.deepEqual(cfg.warnings, []);
  });

  void it('base_path and backup_base_path together are one key written twice', async () => {
    const { err, file } = await refused(`${MINIMAL}[backup]\nbase_path = /a\nbackup_base_path = /b\n`);
    assert.equal(
      err.message,
      `${file}:6: [backup] "backup_base_path" and "base_path" (line 5) are the same key`,
    );
  });

  void it('keys the original used but kopi-docka cannot honour are still refused with what to write', async () => {
    const { err } = await refused(`${MINIMAL}kopia_params = filesystem --path /x\n`);
    assert.match(err.hint ?? '', /repository_path = \/absolute\/path/);
  });
});

void describe("the original's later, JSON-era configuration", () => {
  void it('its sections without a counterpart are refused with what to do instead', async () => {
    const { err, file } = await refused(`${MINIMAL}[credentials]\nenabled = true\n`);
    assert.equal(
      err.message,
      `${file}:4: [credentials] (a section of the original kopi-docka) is not supported`,
    );
    assert.match(err.hint ?? '', /backend|credentials_file/);
  });

  void it('a config.json is refused as JSON, pointing at the migration notes', async () => {
    const { err, file } = await refused('\n{\n  "kopia": { "kopia_params": "filesystem --path /x" }\n}\n');
    assert.match(err.message, new RegExp(`^${file}:2: this is a JSON file`));
    assert.match(err.hint ?? '', /Coming from the original kopi-docka/);
  });
});

void describe("the original's spellings of values", () => {
  void it("encryption: aes256 and chacha20 (any case) are aliases of Kopia's names", async () => {
    for (const [written, meant] of [
      ['aes256', 'AES256-GCM-HMAC-SHA256'],
      ['AES256', 'AES256-GCM-HMAC-SHA256'],
      ['AES256-GCM', 'AES256-GCM-HMAC-SHA256'],
      ['chacha20', 'CHACHA20-POLY1305-HMAC-SHA256'],
      ['CHACHA20-POLY1305', 'CHACHA20-POLY1305-HMAC-SHA256'],
    ]) {
      const { cfg } = await load(`${MINIMAL}encryption = ${written}\n`);
      assert.equal(cfg.kopia.encryption, meant, written);
      assert.deepEqual(cfg.warnings, [], written);
    }
  });

  void it('encryption the original offered but Kopia cannot do is refused, saying what to write', async () => {
    for (const written of ['AES256-CBC-HMAC-SHA256', 'none']) {
      const { err, file } = await refused(`${MINIMAL}encryption = ${written}\n`);
      assert.ok(err.message.startsWith(`${file}:4: [kopia] encryption: expected one of`), err.message);
      assert.match(err.hint ?? '', /encryption = AES256-GCM-HMAC-SHA256/);
    }
  });

  void it('compression = s2 means s2-default, with a warning; level = CRITICAL means error, with a warning', async () => {
    const { cfg, file } = await load(`${MINIMAL}compression = s2\n[logging]\nlevel = CRITICAL\n`);
    assert.equal(cfg.kopia.compression, 's2-default');
    assert.equal(cfg.logging.level, 'error');
    assert.equal(cfg.warnings.length, 2);
    assert.match(
      cfg.warnings[0] ?? '',
      new RegExp(`^${file}:4: \\[kopia\\] compression: "s2" is not a Kopia compressor; using s2-default`),
    );
    assert.match(
      cfg.warnings[1] ?? '',
      new RegExp(`^${file}:6: \\[logging\\] level: "CRITICAL" is read as "error"`),
    );
  });

  void it('a repository URL (the original took s3://, b2://, …) is refused with how to use the storage', async () => {
    const { err, file } = await refused(
      '[kopia]\nrepository_path = b2://my-backup-bucket/kopia\npassword = x\n',
    );
    assert.equal(
      err.message,
      `${file}:2: [kopia] repository_path: expected an absolute path (starting with /), found "b2://my-backup-bucket/kopia"`,
    );
    assert.match(err.hint ?? '', /backend = s3.*docs\/configuration.md/);
    const tilde = await refused('[kopia]\nrepository_path = ~/kopia\npassword = x\n');
    assert.match(tilde.err.hint ?? '', /"~" is not expanded/);
  });

  void it("an inline comment (as in the original's template) is refused with why, not silently defaulted", async () => {
    const { err, file } = await refused(`${MINIMAL}[retention]\ndaily = 7      # Keep 7 daily snapshots\n`);
    assert.equal(
      err.message,
      `${file}:5: [retention] daily: expected an integer ≥ 0, found "7      # Keep 7 daily snapshots"`,
    );
    assert.match(err.hint ?? '', /comment only at the beginning of a line.*own line/);
  });

  void it('an inline comment after a path, a list or a hook is refused, not taken into the value', async () => {
    for (const text of [
      `${MINIMAL}cache_directory = /var/cache/kopia   # fast disk\n`,
      `${MINIMAL}[backup]\nexclude_patterns = *.log, cache/*  # junk\n`,
      `${MINIMAL}[backup]\npre_backup_hook = /usr/local/bin/pre.sh # dump the db\n`,
    ]) {
      const { err } = await refused(text);
      assert.match(err.message, /expected .*inline comment/, text);
      assert.match(err.hint ?? '', /own line/, text);
    }
    // Quoted, the same characters are data.
    const { cfg } = await load(
      `${MINIMAL}[backup]\nexclude_patterns = "a #b"\npre_backup_hook = /bin/echo '#1'\n`,
    );
    assert.deepEqual(cfg.backup.excludePatterns, ['a #b']);
    assert.deepEqual(cfg.backup.preBackupHook, ['/bin/echo', '#1']);
  });
});

void describe('quotes and percent signs, as the original read them', () => {
  void it('password = "abc" is refused — the original kept the quotes — with what to write, never echoing it', async () => {
    const { err, file } = await refused('[kopia]\nrepository_path = /srv/kopia\npassword = "abc-secret"\n');
    assert.equal(err.message, `${file}:3: [kopia] password: the value is in quotes`);
    assert.match(err.hint ?? '', /write it without them: "password = <that text>"/);
    assert.match(err.hint ?? '', /quotes included.*password_file = /);
    assert.ok(!`${err.message} ${err.hint ?? ''}`.includes('abc-secret'));
    const single = await refused("[kopia]\nrepository_path = /srv/kopia\npassword = 'abc'\n");
    assert.match(single.err.message, /password: the value is in quotes/);
  });

  void it('a quoted path is refused with the line to write instead', async () => {
    const { err } = await refused('[kopia]\nrepository_path = "/srv/kopia"\npassword = x\n');
    assert.match(err.message, /:2: \[kopia\] repository_path: the value is in quotes/);
    assert.match(err.hint ?? '', /write it without quotes: repository_path = \/srv\/kopia$/);
  });

  void it('quotes inside a value, in lists and in hooks keep their meaning', async () => {
    const { cfg } = await load(
      '[kopia]\nrepository_path = /srv/kopia\npassword = a"b\'c"\n[backup]\nexclude_patterns = "*.log", \'tmp\'\npre_backup_hook = /bin/echo "a b"\n',
    );
    assert.equal(cfg.kopia.password, 'a"b\'c"');
    assert.deepEqual(cfg.backup.excludePatterns, ['*.log', 'tmp']);
    assert.deepEqual(cfg.backup.preBackupHook, ['/bin/echo', 'a b']);
  });

  void it('% is literal: no interpolation, as the original (configparser with interpolation=None)', async () => {
    const { cfg } = await load('[kopia]\nrepository_path = /srv/kopia\npassword = 50%%off%(user)s%\n');
    assert.equal(cfg.kopia.password, '50%%off%(user)s%');
    assert.deepEqual(cfg.warnings, []);
  });
});

void describe('stall_timeout and task_timeout', () => {
  void it('stall_timeout: seconds, default 300, 0 = off, shown by config show', async () => {
    const set = await load(`${MINIMAL}[backup]\nstall_timeout = 120\n`);
    assert.equal(set.cfg.backup.stallTimeout, 120);
    assert.deepEqual(configView(set.cfg).sections.backup?.stall_timeout, { value: 120, origin: 'file' });
    assert.deepEqual(set.cfg.warnings, []);
    assert.equal((await load(`${MINIMAL}[backup]\nstall_timeout = 0\n`)).cfg.backup.stallTimeout, 0);
    assert.equal((await load(MINIMAL)).cfg.backup.stallTimeout, 300);
    const bad = await refused(`${MINIMAL}[backup]\nstall_timeout = 5m\n`);
    assert.equal(
      bad.err.message,
      `${bad.file}:5: [backup] stall_timeout: expected an integer ≥ 0, found "5m"`,
    );
    assert.match(bad.err.hint ?? '', /default \(300\)/);
  });

  void it('task_timeout: no wall-clock limit by default', async () => {
    const { cfg } = await load(MINIMAL);
    assert.equal(cfg.backup.taskTimeout, 0);
    assert.deepEqual(configView(cfg).sections.backup?.task_timeout, { value: 0, origin: 'default' });
  });
});
