/**
 * `kopi-docka write-units` through the built CLI (dist/main.js): the generated files pass Debian's
 * `systemd-analyze verify` (which also checks that the ExecStart binaries exist), carry the config's
 * real paths, and existing files are refused without --force. Needs no Docker and no Kopia repository.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = path.join(ROOT, 'dist', 'main.js');
const UNITS = ['kopi-docka-backup.service', 'kopi-docka.timer', 'kopi-docka.service'];
const hasAnalyze = spawnSync('systemd-analyze', ['--version']).status === 0;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(argv: string[], env: Record<string, string>): Run {
  const r = spawnSync(argv[0] ?? '', argv.slice(1), {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function show(r: Run): string {
  return `exit ${String(r.code)}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

function serviceValues(text: string, key: string): string[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1));
}

describe('write-units', { skip: hasAnalyze ? false : 'systemd-analyze is not installed' }, () => {
  let dir: string;
  let env: Record<string, string>;
  let configFile: string;
  let outDir: string;
  let unitParent: string;

  before(async () => {
    assert.ok(existsSync(CLI), `${CLI} does not exist: run \`npm run build\` first`);
    // Not under /tmp: the units get PrivateTmp=yes, and write-units warns about such paths. A space, a
    // % and a $ in every path: the quoting and escaping must satisfy systemd's parser.
    dir = await mkdtemp(path.join(ROOT, '.write-units 100%$x-'));
    unitParent = await mkdtemp(path.join(ROOT, '.write-units-out-'));
    await mkdir(path.join(dir, 'repo'));
    configFile = path.join(dir, 'kopi-docka.conf');
    await writeFile(
      configFile,
      [
        '[kopia]',
        `repository_path = ${path.join(dir, 'repo')}`,
        'password = not-in-any-unit-9f3a',
        `cache_directory = ${path.join(dir, 'cache')}`,
        '[backup]',
        `backup_base_path = ${path.join(dir, 'staging')}`,
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    env = { KOPI_DOCKA_STATE_DIR: path.join(dir, 'state'), HOME: dir, NO_COLOR: '1' };
    outDir = path.join(unitParent, 'units');
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
    await rm(unitParent, { recursive: true, force: true });
  });

  it('writes units that pass systemd-analyze verify and carry the config paths', async () => {
    const r = run(
      [process.execPath, CLI, '--config', configFile, 'write-units', '--output-dir', outDir],
      env,
    );
    assert.equal(r.code, 0, show(r));
    assert.match(r.stdout, /systemctl daemon-reload/);
    assert.match(r.stdout, /systemctl enable --now kopi-docka\.timer/);
    const files = UNITS.map((u) => path.join(outDir, u));
    for (const f of files) assert.ok(existsSync(f), `${f} written`);

    const v = run(['systemd-analyze', 'verify', ...files], {});
    assert.equal(v.code, 0, show(v));
    assert.equal(v.stderr.trim(), '', `verify printed warnings:\n${v.stderr}`);

    const backup = await readFile(files[0] ?? '', 'utf8');
    // systemd.service(5): quoted because of the space, %% for %, $$ for $.
    const quoted = `"${configFile.replace(/%/g, '%%').replace(/\$/g, '$$$$')}"`;
    const program = `${realpathSync(process.execPath)} ${realpathSync(CLI)} --config ${quoted}`;
    assert.deepEqual(serviceValues(backup, 'ExecStart'), [`${program} backup`]);
    assert.deepEqual(serviceValues(backup, 'ExecStartPre'), [`${program} recover`]);
    const rw = serviceValues(backup, 'ReadWritePaths')[0] ?? '';
    for (const p of ['repo', 'cache', 'state', 'staging']) {
      const want = `"${path.join(dir, p).replace(/%/g, '%%')}"`;
      assert.ok(rw.includes(want), `ReadWritePaths has ${want}: ${rw}`);
    }
    // The directories the sandbox binds exist, so the unit can start.
    for (const p of ['cache', 'state', 'staging']) assert.ok(existsSync(path.join(dir, p)), `${p} created`);
    for (const f of files) {
      assert.doesNotMatch(await readFile(f, 'utf8'), /not-in-any-unit-9f3a/, `${f} holds no password`);
    }
    const timer = await readFile(files[1] ?? '', 'utf8');
    assert.deepEqual(serviceValues(timer, 'Unit'), ['kopi-docka-backup.service']);
  });

  it('refuses to overwrite existing units without --force, and overwrites them with it', async () => {
    const timerFile = path.join(outDir, 'kopi-docka.timer');
    await writeFile(timerFile, '# edited by hand\n');
    const r = run(
      [process.execPath, CLI, '--config', configFile, 'write-units', '--output-dir', outDir],
      env,
    );
    assert.equal(r.code, 2, show(r));
    for (const u of UNITS) assert.ok(r.stderr.includes(path.join(outDir, u)), `names ${u}:\n${r.stderr}`);
    assert.match(r.stderr, /--force/);
    assert.equal(await readFile(timerFile, 'utf8'), '# edited by hand\n', 'left untouched');

    const f = run(
      [process.execPath, CLI, '--config', configFile, 'write-units', '--output-dir', outDir, '--force'],
      env,
    );
    assert.equal(f.code, 0, show(f));
    assert.match(await readFile(timerFile, 'utf8'), /^OnCalendar=\*-\*-\* 02:00:00$/m);
  });
  it('refuses a calendar spec systemd cannot parse, and writes nothing', () => {
    const other = path.join(unitParent, 'bad-calendar');
    const r = run(
      [
        process.execPath,
        CLI,
        '--config',
        configFile,
        'write-units',
        '--output-dir',
        other,
        '--on-calendar',
        'every day',
      ],
      env,
    );
    assert.equal(r.code, 2, show(r));
    assert.match(r.stderr, /invalid --on-calendar "every day": Failed to parse calendar specification/);
    assert.ok(!existsSync(other), 'nothing written');
  });
});
