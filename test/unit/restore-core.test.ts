/**
 * Restore logic without Docker or a repository: grouping Kopia snapshots into restore points, and the
 * bash restore scripts (syntax for every combination, quoting of hostile names — checked by running a
 * rendered script against a fake kopia —, and that the repository password is never written into one).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { Kopia } from '../../src/adapters/kopia.js';
import { loadConfig } from '../../src/config/load.js';
import { findPoint, groupRestorePoints, type SnapshotLike } from '../../src/core/restore-points.js';
import { renderRestoreScript, shq, type ScriptInput } from '../../src/core/restore-script.js';
import type { DataSnapshot } from '../../src/pipeline/data.js';
import type { RecipeManifest } from '../../src/pipeline/recipe.js';
import { writeRestoreScripts, type RestoredRecipe } from '../../src/pipeline/restore.js';

const roots: string[] = [];
after(async () => {
  for (const r of roots) await rm(r, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'kopi-docka-restore-unit-'));
  roots.push(d);
  return d;
}

// ---------------------------------------------------------------------------------------------------
// Restore points

let nextId = 0;

function snap(o: {
  unit: string;
  backupId: string;
  type: 'recipe' | 'volume' | 'bind';
  host?: string;
  start: string;
  name?: string;
  size?: number;
  incomplete?: string;
  dataSnapshots?: number;
}): SnapshotLike {
  nextId++;
  const tags: Record<string, string> = {
    'tag:unit': o.unit,
    'tag:backup_id': o.backupId,
    'tag:type': o.type,
  };
  if (o.type === 'volume') tags['tag:volume'] = o.name ?? 'vol';
  if (o.type === 'bind') tags['tag:bind_source'] = o.name ?? '/srv/data';
  if (o.dataSnapshots !== undefined) tags['tag:data_snapshots'] = String(o.dataSnapshots);
  return {
    id: nextId.toString(16).padStart(32, '0'),
    source: { host: o.host ?? 'h1', userName: 'kopi-docka', path: `/${o.type}s/${o.unit}` },
    startTime: o.start,
    endTime: o.start,
    incomplete: o.incomplete,
    rootEntry: { obj: `k${nextId}`, summ: { size: o.size ?? 100 } },
    tags,
  };
}

/** A complete point: recipe announcing n data snapshots, and n volumes. */
function point(unit: string, backupId: string, start: string, host = 'h1', n = 1): SnapshotLike[] {
  const out = [snap({ unit, backupId, type: 'recipe', host, start, dataSnapshots: n })];
  for (let i = 0; i < n; i++) out.push(snap({ unit, backupId, type: 'volume', host, start, name: `v${i}` }));
  return out;
}

describe('groupRestorePoints', () => {
  it('groups strictly by (unit, backup_id): close times never merge, one id never splits', () => {
    const snaps = [
      ...point('app', '2025-01-01T00-00-00Z', '2025-01-01T00:00:01Z'),
      // One second later, another run: its own point.
      ...point('app', '2025-01-01T00-00-01Z', '2025-01-01T00:00:02Z'),
      // Same run, a unit processed an hour later: still the run's backup_id.
      ...point('db', '2025-01-01T00-00-00Z', '2025-01-01T01:00:00Z'),
    ];
    const points = groupRestorePoints(snaps);
    assert.deepEqual(
      points.map((p) => [p.unit, p.backupId, p.data.length, p.complete]),
      [
        ['app', '2025-01-01T00-00-01Z', 1, true],
        ['app', '2025-01-01T00-00-00Z', 1, true],
        ['db', '2025-01-01T00-00-00Z', 1, true],
      ],
    );
  });

  it('the same unit and backup_id on two hosts are two points; the host filter keeps one', () => {
    const snaps = [
      ...point('app', '2025-01-01T00-00-00Z', '2025-01-01T00:00:01Z', 'hosta'),
      ...point('app', '2025-01-01T00-00-00Z', '2025-01-01T00:00:05Z', 'hostb', 2),
    ];
    const all = groupRestorePoints(snaps);
    assert.deepEqual(
      all.map((p) => [p.host, p.data.length, p.expectedData, p.complete]),
      [
        ['hosta', 1, 1, true],
        ['hostb', 2, 2, true],
      ],
    );
    const b = groupRestorePoints(snaps, { host: 'hostb' });
    assert.equal(b.length, 1);
    assert.equal(b[0]?.host, 'hostb');
    assert.deepEqual(groupRestorePoints(snaps, { host: 'hostc' }), []);
    assert.equal(groupRestorePoints(snaps, { unit: 'other' }).length, 0);
  });

  it('time is the earliest startTime of the point (UTC, from the snapshots), never now; size is the sum', () => {
    const snaps = [
      snap({
        unit: 'app',
        backupId: '2025-03-01T10-00-00Z',
        type: 'recipe',
        start: '2025-03-01T10:05:00.123456789Z',
        dataSnapshots: 2,
        size: 10,
      }),
      snap({
        unit: 'app',
        backupId: '2025-03-01T10-00-00Z',
        type: 'volume',
        name: 'a',
        start: '2025-03-01T10:01:00.5Z',
        size: 20,
      }),
      snap({
        unit: 'app',
        backupId: '2025-03-01T10-00-00Z',
        type: 'bind',
        start: '2025-03-01T10:03:00Z',
        size: 30,
      }),
    ];
    const [p] = groupRestorePoints(snaps);
    assert.equal(p?.time, '2025-03-01T10:01:00.5Z');
    assert.equal(p?.sizeBytes, 60);
    assert.deepEqual(
      p?.data.map((d) => [d.type, d.name]),
      [
        ['bind', '/srv/data'],
        ['volume', 'a'],
      ],
    );
  });

  it('completeness: recipe missing, recipe incomplete, a data snapshot incomplete or missing', () => {
    const id = '2025-01-01T00-00-00Z';
    const start = '2025-01-01T00:00:01Z';
    const noRecipe = groupRestorePoints([snap({ unit: 'a', backupId: id, type: 'volume', start })])[0];
    assert.equal(noRecipe?.complete, false);
    assert.match(noRecipe?.problems.join() ?? '', /recipe snapshot missing/);

    const badRecipe = groupRestorePoints([
      snap({ unit: 'a', backupId: id, type: 'recipe', start, dataSnapshots: 0, incomplete: 'canceled' }),
    ])[0];
    assert.equal(badRecipe?.complete, false);
    assert.match(badRecipe?.problems.join() ?? '', /recipe snapshot incomplete \(canceled\)/);

    const badData = groupRestorePoints([
      snap({ unit: 'a', backupId: id, type: 'recipe', start, dataSnapshots: 2 }),
      snap({ unit: 'a', backupId: id, type: 'volume', name: 'x', start }),
      snap({ unit: 'a', backupId: id, type: 'volume', name: 'y', start, incomplete: 'checkpoint' }),
    ])[0];
    assert.equal(badData?.complete, false);
    assert.deepEqual(badData?.problems, [
      'volume y incomplete (checkpoint)',
      '1 of 2 data snapshot(s) missing',
    ]);

    const missing = groupRestorePoints(point('a', id, start, 'h1', 3).slice(0, 3))[0];
    assert.equal(missing?.complete, false);
    assert.deepEqual(missing?.problems, ['1 of 3 data snapshot(s) missing']);

    const noData = groupRestorePoints([
      snap({ unit: 'a', backupId: id, type: 'recipe', start, dataSnapshots: 0 }),
    ])[0];
    assert.equal(noData?.complete, true, 'a unit without data sources is complete with its recipe');
  });

  it('snapshots without kopi-docka tags are ignored', () => {
    const foreign: SnapshotLike = {
      id: 'f'.repeat(32),
      source: { host: 'h1', userName: 'root', path: '/home' },
      startTime: '2025-01-01T00:00:00Z',
      endTime: '2025-01-01T00:00:00Z',
      rootEntry: { obj: 'kf' },
      tags: { 'tag:unit': 'home' },
    };
    assert.deepEqual(groupRestorePoints([foreign]), []);
  });

  it('latest is the newest complete point; an incomplete one is reachable only by its id', () => {
    const snaps = [
      ...point('app', '2025-01-01T00-00-00Z', '2025-01-01T00:00:01Z'),
      ...point('app', '2025-01-02T00-00-00Z', '2025-01-02T00:00:01Z', 'h1', 2).slice(0, 2),
      ...point('other', '2025-01-03T00-00-00Z', '2025-01-03T00:00:01Z'),
    ];
    const points = groupRestorePoints(snaps);
    assert.equal(findPoint(points, 'app', 'latest')?.backupId, '2025-01-01T00-00-00Z');
    const incomplete = findPoint(points, 'app', '2025-01-02T00-00-00Z');
    assert.equal(incomplete?.complete, false);
    assert.equal(findPoint(points, 'app', '2025-01-05T00-00-00Z'), undefined);
    assert.equal(findPoint(points, 'nope', 'latest'), undefined);
    const onlyBad = groupRestorePoints(
      point('x', '2025-01-01T00-00-00Z', '2025-01-01T00:00:01Z', 'h1', 2).slice(0, 2),
    );
    assert.equal(findPoint(onlyBad, 'x', 'latest'), undefined);
  });
});

// ---------------------------------------------------------------------------------------------------
// Restore scripts

/** Quotes, command substitution, a glob and a newline followed by a command. */
const HOSTILE = `a'b $(touch PWNED) \`touch PWNED\` "c" \\d *;e\ntouch PWNED #`;

/** The script with every single-quoted string and every comment removed: what bash would interpret. */
function interpreted(script: string): string {
  return script
    .replace(/'\\''/g, '')
    .replace(/'[^']*'/g, "''")
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .join('\n');
}

function baseInput(over: Partial<ScriptInput> = {}): ScriptInput {
  return {
    unit: 'app',
    backupId: '2025-01-01T00-00-00Z',
    kind: 'volume',
    name: 'app_data',
    target: 'app_data',
    isFile: false,
    format: 'dir',
    snapshotId: '0123456789abcdef0123456789abcdef',
    streamObject: undefined,
    kopiaRestore: (s, t) => [
      '/usr/bin/kopia',
      'snapshot',
      'restore',
      '--config-file=/x/k.config',
      '--',
      s,
      t,
    ],
    kopiaShow: (o) => ['/usr/bin/kopia', 'show', '--config-file=/x/k.config', '--', o],
    kopiaEnv: { KOPIA_CHECK_FOR_UPDATES: 'false', KOPIA_CACHE_DIRECTORY: '/var/cache/kopi-docka/kopia-1' },
    passwordFile: undefined,
    safetyFile: '/restore/safety/volume-app_data.tar',
    sidecarDir: undefined,
    hardLinks: [],
    hasXattrs: false,
    hasAcls: false,
    containers: [],
    volumeLabels: {},
    stopTimeoutSec: 30,
    ...over,
  };
}

function bashSyntax(script: string): { ok: boolean; err: string } {
  const r = spawnSync('bash', ['-n'], { input: script, encoding: 'utf8' });
  return { ok: r.status === 0, err: r.stderr };
}

describe('renderRestoreScript', () => {
  it('shq survives bash for hostile values', () => {
    for (const v of [HOSTILE, '', "'", "''", '\\', '\n', 'naïve 日本', '$HOME', '-rf /', "a'b $(rm -rf /)"]) {
      const r = spawnSync('bash', ['-c', `printf '%s' ${shq(v)}`], { encoding: 'utf8' });
      assert.equal(r.stdout, v, `shq(${JSON.stringify(v)})`);
    }
  });

  it('every kind × format × file/dir × sidecar/password combination is valid bash', () => {
    let n = 0;
    for (const kind of ['volume', 'bind'] as const) {
      for (const format of ['dir', 'tar'] as const) {
        for (const isFile of [false, true]) {
          for (const extras of [false, true]) {
            const x = baseInput({
              kind,
              format,
              isFile,
              name: kind === 'volume' ? HOSTILE : `/srv/${HOSTILE}`,
              target: kind === 'volume' ? HOSTILE : `/srv/${HOSTILE}`,
              unit: HOSTILE,
              streamObject: format === 'tar' ? `k123/${HOSTILE}.tar` : undefined,
              passwordFile: extras ? `/etc/${HOSTILE}` : undefined,
              sidecarDir: extras && format === 'dir' ? `/restore/${HOSTILE}/sidecar` : undefined,
              hardLinks: extras ? [[`x/${HOSTILE}`, 'y', 'z']] : [],
              hasXattrs: extras,
              hasAcls: extras,
              containers: extras ? [HOSTILE, 'c2'] : [],
              volumeLabels: extras ? { 'com.docker.compose.project': HOSTILE } : {},
              safetyFile: `/restore/safety/${HOSTILE}.tar`,
            });
            const script = renderRestoreScript(x);
            const syntax = bashSyntax(script);
            assert.ok(
              syntax.ok,
              `${kind}/${format}/${isFile ? 'file' : 'dir'}/${String(extras)}: ${syntax.err}\n${script}`,
            );
            assert.match(script, /^#!\/usr\/bin\/env bash\n/);
            assert.match(script, /^set -euo pipefail$/m);
            assert.match(script, /^trap finish EXIT$/m);
            // The hostile value only ever appears single-quoted or in a comment it cannot break out of.
            assert.ok(!interpreted(script).includes('PWNED'), `unquoted hostile text in:\n${script}`);
            n++;
          }
        }
      }
    }
    assert.equal(n, 16);
  });

  it('a direct-mode script re-applies the sidecar and relinks hard links keeping directory times', () => {
    const script = renderRestoreScript(
      baseInput({
        sidecarDir: '/r/sidecars/v',
        hardLinks: [['a', 'b', 'sub/c']],
        hasXattrs: true,
        hasAcls: true,
      }),
    );
    assert.match(script, /setfattr -h --restore="\$SIDECAR\/xattrs.txt"/);
    assert.match(script, /setfacl --restore="\$SIDECAR\/acls.txt"/);
    assert.match(script, /^relink_group 'a' 'b' 'sub\/c'$/m);
    assert.match(script, /touch -r "\$ref" -- "\$dir"/);
    // Tar mode needs none of it: the stream has xattrs, ACLs and hard links.
    const tar = renderRestoreScript(baseInput({ format: 'tar', streamObject: 'k1/app_data.tar' }));
    assert.doesNotMatch(tar, /setfattr|setfacl|relink_group/);
    assert.match(tar, /'show' .*'k1\/app_data.tar' \| tar -xpf - --numeric-owner --xattrs/);
  });

  it('runs against hostile names: exact arguments, a safety copy, hard links, and no injection', async () => {
    const dir = await tempDir();
    const fakeKopia = path.join(dir, 'fake kopia');
    const argsLog = path.join(dir, 'args.log');
    const src = path.join(dir, 'snapshot-content');
    await mkdir(path.join(src, 'sub'), { recursive: true });
    await writeFile(path.join(src, HOSTILE), 'restored\n');
    await writeFile(path.join(src, 'sub', 'twin'), 'restored\n');
    await utimes(path.join(src, 'sub'), 1_600_000_000, 1_600_000_000);
    // A kopia stand-in: logs its argv (NUL-separated) and "restores" by copying src into the last arg.
    await writeFile(
      fakeKopia,
      [
        '#!/usr/bin/env bash',
        'set -eu',
        `printf '%s\\0' "$@" > ${shq(argsLog)}`,
        '[ "$KOPIA_PASSWORD" = "pw-from-env" ] || { echo "no password" >&2; exit 9; }',
        'target="${!#}"',
        `cp -a ${shq(src)}/. "$target"/`,
        '',
      ].join('\n'),
    );
    await chmod(fakeKopia, 0o755);
    const target = path.join(dir, `target ${HOSTILE}`);
    await mkdir(target);
    await writeFile(path.join(target, 'old.txt'), 'previous contents\n');
    const safety = path.join(dir, 'safety', `bind-${HOSTILE}.tar`);
    const script = renderRestoreScript(
      baseInput({
        kind: 'bind',
        unit: HOSTILE,
        name: target,
        target,
        kopiaRestore: (s, t) => [fakeKopia, 'snapshot', 'restore', '--', s, t],
        safetyFile: safety,
        sidecarDir: path.join(dir, 'no-sidecar-files'),
        // The first name was excluded from the snapshot: the group is relinked around it.
        hardLinks: [['excluded-name', HOSTILE, 'sub/twin']],
      }),
    );
    const file = path.join(dir, 'restore.sh');
    await writeFile(file, script);
    const r = spawnSync('bash', [file], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, KOPIA_PASSWORD: 'pw-from-env' },
    });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.equal(existsSync(path.join(dir, 'PWNED')), false, 'nothing was injected');
    const args = (await readFile(argsLog, 'utf8')).split('\0').slice(0, -1);
    assert.deepEqual(args, ['snapshot', 'restore', '--', '0123456789abcdef0123456789abcdef', target]);
    assert.deepEqual((await readdir(target)).sort(), [HOSTILE, 'sub'].sort(), 'old contents are gone');
    assert.match(r.stdout, /safety copy: /);
    const listed = spawnSync('tar', ['-tf', safety], { encoding: 'utf8' }).stdout.split('\n');
    assert.ok(listed.includes('./old.txt'), `safety tar has the old contents: ${listed.join(', ')}`);
    const a = spawnSync('stat', ['-c', '%i', path.join(target, HOSTILE), path.join(target, 'sub/twin')], {
      encoding: 'utf8',
    }).stdout.split('\n');
    assert.equal(a[0], a[1], 'hard link relinked');
    assert.equal((await stat(path.join(target, 'sub'))).mtimeMs, 1_600_000_000_000, 'dir mtime kept');
    assert.equal(existsSync(path.join(target, 'excluded-name')), false);

    // Without a password (and no password file) it stops before touching anything.
    const noPw = spawnSync('bash', [file], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '' } });
    assert.equal(noPw.status, 2);
    assert.match(noPw.stderr, /KOPIA_PASSWORD/);
  });

  it('a restore that fails half-way keeps the safety copy, says how to put it back, and never overwrites it', async () => {
    const dir = await tempDir();
    const fakeKopia = path.join(dir, 'failing-kopia');
    // Writes part of the data, then dies — like a repository that became unreachable mid-restore.
    await writeFile(
      fakeKopia,
      '#!/usr/bin/env bash\necho partial > "${!#}/partial.txt"\necho "kopia: connection lost" >&2\nexit 3\n',
    );
    await chmod(fakeKopia, 0o755);
    const target = path.join(dir, `data ${HOSTILE}`);
    await mkdir(target);
    await writeFile(path.join(target, 'old.txt'), 'previous contents\n');
    const file = path.join(dir, 'restore.sh');
    const safetyDir = path.join(dir, 'safety');
    await writeFile(
      file,
      renderRestoreScript(
        baseInput({
          kind: 'bind',
          name: target,
          target,
          kopiaRestore: (s, t) => [fakeKopia, s, t],
          safetyFile: path.join(safetyDir, 'bind-data.tar'),
        }),
      ),
    );
    const env = { ...process.env, KOPIA_PASSWORD: 'x' };
    const r = spawnSync('bash', [file], { encoding: 'utf8', env });
    assert.equal(r.status, 3, r.stderr);
    assert.match(r.stderr, /FAILED \(exit 3\)/);
    const lines = r.stderr.split('\n');
    const putBack = lines[lines.findIndex((l) => l.includes('to put them back')) + 1]?.trim() ?? '';
    assert.ok(putBack.startsWith('find '), r.stderr);
    assert.deepEqual(await readdir(target), ['partial.txt'], 'the target was emptied before the restore');

    // The printed command, pasted into a shell, gives the previous contents back.
    const pasted = spawnSync('bash', ['-c', putBack], { encoding: 'utf8' });
    assert.equal(pasted.status, 0, pasted.stderr);
    assert.deepEqual(await readdir(target), ['old.txt']);
    assert.equal(await readFile(path.join(target, 'old.txt'), 'utf8'), 'previous contents\n');
    assert.equal(existsSync(path.join(dir, 'PWNED')), false);

    // Running it again makes a second copy and leaves the first one alone.
    await writeFile(path.join(target, 'old.txt'), 'changed in between\n');
    assert.equal(spawnSync('bash', [file], { encoding: 'utf8', env }).status, 3);
    const copies = (await readdir(safetyDir)).sort();
    assert.equal(copies.length, 2, copies.join(', '));
    assert.ok(copies.includes('bind-data.tar'));
    const first = spawnSync('tar', ['-xOf', path.join(safetyDir, 'bind-data.tar'), './old.txt'], {
      encoding: 'utf8',
    });
    assert.equal(first.stdout, 'previous contents\n');
  });

  it('writeRestoreScripts never writes the repository password into a script', async () => {
    const dir = await tempDir();
    const password = 'Sup3r-Secret-Passw0rd';
    const conf = path.join(dir, 'kopi-docka.conf');
    await writeFile(conf, `[kopia]\nrepository_path = ${dir}/repo\npassword = ${password}\n`, {
      mode: 0o600,
    });
    const cfg = await loadConfig({
      explicitPath: conf,
      searchPaths: [],
      env: { HOME: dir, KOPI_DOCKA_STATE_DIR: path.join(dir, 'state') },
      system: { cores: 2, availableMemoryBytes: 2 * 1024 ** 3, hostname: 'h1' },
    });
    const kopia = new Kopia(cfg.kopia);
    assert.equal(kopia.scriptEnvironment(true).KOPIA_PASSWORD, password, 'the adapter does hold it');
    const entry = (type: 'volume' | 'bind', name: string, format: 'dir' | 'tar'): DataSnapshot => ({
      key: `${type}:${name}`,
      type,
      name,
      hostPath: type === 'volume' ? `/var/lib/docker/volumes/${name}/_data` : name,
      kopiaPath: `/${type}s/app/${name}`,
      snapshotId: `${type === 'volume' ? 'a' : 'b'}${format === 'dir' ? '1' : '2'}`.padEnd(32, '0'),
      format,
      ...(format === 'tar' ? { streamName: 'x.tar' } : {}),
      isFile: false,
      sizeBytes: 1,
      files: 1,
      usedBy: [],
    });
    const entries = [
      entry('volume', 'app_data', 'dir'),
      entry('volume', 'app_db', 'tar'),
      entry('bind', '/srv/app/conf', 'dir'),
      entry('bind', '/srv/app/www', 'tar'),
    ];
    const manifest: RecipeManifest = {
      format: 1,
      tool: { name: 'kopi-docka', version: '0' },
      unit: 'app',
      kind: 'stack',
      backupId: '2025-01-01T00-00-00Z',
      host: 'h1',
      user: 'kopi-docka',
      createdAt: '2025-01-01T00:00:00Z',
      volumeMode: 'direct',
      compose: { workingDir: '/srv/app', configFiles: [], files: [], missing: [] },
      containers: [],
      snapshots: entries,
      coverage: [],
      warnings: [],
    };
    const recipe: RestoredRecipe = {
      manifest,
      workDir: dir,
      recipeDir: path.join(dir, 'recipe'),
      projectDir: path.join(dir, 'app'),
      composeFiles: [],
      redacted: [],
    };
    const pointData = entries.map((e) => ({
      id: e.snapshotId,
      type: e.type,
      name: e.name,
      path: e.kopiaPath,
      rootObj: 'k0',
      startTime: '2025-01-01T00:00:00Z',
      sizeBytes: 1,
      incomplete: undefined,
      tags: {},
    }));
    const restorePoint = {
      unit: 'app',
      backupId: manifest.backupId,
      host: 'h1',
      user: 'kopi-docka',
      time: '2025-01-01T00:00:00Z',
      sizeBytes: 4,
      recipe: undefined,
      data: pointData,
      expectedData: 4,
      complete: true,
      problems: [],
    };
    const written = await writeRestoreScripts(cfg, kopia, restorePoint, recipe, entries, {
      allowIncomplete: false,
    });
    assert.equal(written.length, 4);
    // The relative bind lands in the restored project, the absolute one where it was.
    assert.equal(written[2]?.target, path.join(dir, 'app', 'conf'));
    for (const w of written) {
      const text = await readFile(w.scriptPath, 'utf8');
      assert.ok(!text.includes(password), `${w.scriptPath} holds the password`);
      assert.ok(bashSyntax(text).ok);
      assert.match(text, /KOPIA_PASSWORD:-/, 'it takes the password from the environment');
      assert.doesNotMatch(text, /KOPIA_CONFIG_PATH|KOPIA_USE_KEYRING/, 'unset variables are not exported');
    }
  });
});
