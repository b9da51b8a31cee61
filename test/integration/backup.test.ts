/**
 * `kopi-docka backup` end to end against the real Docker daemon and a real Kopia filesystem repository,
 * driven through the built CLI (dist/main.js). Results are checked with kopia itself (`snapshot list`,
 * `snapshot restore`, `show`), never through kopi-docka's own code.
 *
 * Every test builds its own fixtures (Compose project, standalone containers, repository, config) with
 * unique names and removes them in t.after(), which runs even when the test fails. Every run is limited
 * with `--unit` so that other containers on the host are never touched.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import {
  chmod,
  chown,
  lchown,
  link,
  lstat,
  mkdir,
  readFile,
  readdir,
  readlink,
  rm,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import path from 'node:path';
import { type TestContext, describe, it } from 'node:test';
import { promisify } from 'node:util';
import {
  KOPIA_BIN,
  TEST_IMAGE as IMAGE,
  type RepoConfig,
  type RepoSections,
  cli,
  cliOk,
  compose,
  composeContainers,
  createStack,
  describeRun,
  docker,
  makeRepoConfig,
  makeTempDir,
  registerCleanup,
  uniqueName,
} from './helpers.js';

const execFileP = promisify(execFile);

const LOOP = "sh -c 'while :; do sleep 1; done'";
const BACKUP_ID_RE = /^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z$/;
const ISO_UTC_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
/** Seconds db of the direct-mode stack needs to become healthy after a start. */
const DB_HEALTHY_AFTER = 2;

// ---------------------------------------------------------------------------------------------------
// Repository + config

type Repo = RepoConfig;

/** A repository + config (helpers' makeRepoConfig); `sections` keys go into their config sections. */
function makeRepo(t: TestContext, sections: RepoSections = {}): Promise<Repo> {
  return makeRepoConfig(t, { prefix: 'backup-repo', password: 'backup-test-pw-1', sections });
}

async function initRepo(repo: Repo): Promise<void> {
  await cliOk(repo, ['init']);
}

/** The Kopia config file the CLI uses for this repository (`config show --json`, field kopiaConfigFile). */
async function kopiaConfigFile(repo: Repo): Promise<string> {
  const r = await cliOk(repo, ['config', 'show', '--json']);
  const doc = JSON.parse(r.stdout) as { kopiaConfigFile?: unknown };
  assert.equal(typeof doc.kopiaConfigFile, 'string', `no kopiaConfigFile in: ${r.stdout}`);
  return doc.kopiaConfigFile as string;
}

// ---------------------------------------------------------------------------------------------------
// Kopia, directly

interface KopiaCtx {
  configFile: string;
  password: string;
  logDir: string;
}

async function kopiaCtx(repo: Repo): Promise<KopiaCtx> {
  return {
    configFile: await kopiaConfigFile(repo),
    password: repo.password,
    logDir: path.join(repo.dir, 'test-kopia-logs'),
  };
}

function kopiaEnv(k: KopiaCtx): NodeJS.ProcessEnv {
  return { ...process.env, KOPIA_PASSWORD: k.password, KOPIA_CHECK_FOR_UPDATES: 'false' };
}

function kopiaArgs(k: KopiaCtx, args: string[]): string[] {
  return [...args, `--config-file=${k.configFile}`, `--log-dir=${k.logDir}`, '--no-progress'];
}

async function kopia(k: KopiaCtx, args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileP(KOPIA_BIN, kopiaArgs(k, args), {
      env: kopiaEnv(k),
      maxBuffer: 256 * 1024 * 1024,
    });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`kopia ${args.join(' ')} failed: ${e.stderr ?? e.message}`, { cause: err });
  }
}

interface Snap {
  id: string;
  source: { host: string; userName: string; path: string };
  startTime: string;
  endTime: string;
  incomplete?: string;
  rootEntry: { name: string; type: string; obj: string; summ?: { size: number; files: number } };
  tags?: Record<string, string>;
}

async function listSnapshots(k: KopiaCtx): Promise<Snap[]> {
  return JSON.parse(await kopia(k, ['snapshot', 'list', '--json', '--all'])) as Snap[];
}

function tag(s: Snap, name: string): string | undefined {
  return s.tags?.[`tag:${name}`];
}

function snapsOfUnit(all: Snap[], unit: string): Snap[] {
  return all.filter((s) => tag(s, 'unit') === unit);
}

function bySource(snaps: Snap[], sourcePath: string): Snap[] {
  return snaps.filter((s) => s.source.path === sourcePath);
}

function onlyAt(snaps: Snap[], sourcePath: string): Snap {
  const found = bySource(snaps, sourcePath);
  assert.equal(
    found.length,
    1,
    `expected one snapshot at ${sourcePath}, got ${found.length}; sources: ${snaps.map((s) => s.source.path).join(', ')}`,
  );
  return found[0] as Snap;
}

async function restoreSnapshot(k: KopiaCtx, id: string, target: string): Promise<void> {
  await kopia(k, ['snapshot', 'restore', id, target]);
}

/** `kopia show <obj>` piped into `tar -x` (as root: owners, modes, mtimes and xattrs kept). */
async function extractTarStream(k: KopiaCtx, objectPath: string, target: string): Promise<void> {
  await mkdir(target, { recursive: true });
  const show = spawn(KOPIA_BIN, kopiaArgs(k, ['show', objectPath]), {
    env: kopiaEnv(k),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const tar = spawn(
    'tar',
    ['-x', '-f', '-', '--numeric-owner', '--same-owner', '-p', '--xattrs', '--acls', '-C', target],
    { stdio: ['pipe', 'ignore', 'pipe'] },
  );
  let showErr = '';
  let tarErr = '';
  show.stderr.on('data', (b: Buffer) => (showErr += b.toString()));
  tar.stderr.on('data', (b: Buffer) => (tarErr += b.toString()));
  tar.stdin.on('error', () => undefined);
  show.stdout.pipe(tar.stdin);
  const exit = (c: ReturnType<typeof spawn>) =>
    new Promise<number | null>((resolve, reject) => {
      c.once('error', reject);
      c.once('close', (code) => resolve(code));
    });
  const [showCode, tarCode] = await Promise.all([exit(show), exit(tar)]);
  assert.equal(showCode, 0, `kopia show ${objectPath} failed: ${showErr}`);
  assert.equal(tarCode, 0, `tar -x of ${objectPath} failed: ${tarErr}`);
}

// ---------------------------------------------------------------------------------------------------
// Trees

/**
 * One line per entry below `root` (the root itself excluded), sorted: path, type, and per option mode,
 * owner and mtime; sha256 for files, target for symlinks.
 */
async function treeListing(
  root: string,
  opts: { modes?: boolean; owners?: boolean; mtimes?: boolean } = {},
): Promise<string[]> {
  const lines: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const name of (await readdir(path.join(root, rel))).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const p = path.join(root, r);
      const st = await lstat(p);
      const parts = [r];
      if (st.isSymbolicLink()) parts.push('l', `-> ${await readlink(p)}`);
      else if (st.isDirectory()) parts.push('d');
      else if (st.isFile()) {
        const sha = createHash('sha256')
          .update(await readFile(p))
          .digest('hex');
        parts.push('f', String(st.size), sha);
      } else parts.push('?');
      if (opts.modes && !st.isSymbolicLink()) parts.push((st.mode & 0o7777).toString(8));
      if (opts.owners) parts.push(`${st.uid}:${st.gid}`);
      if (opts.mtimes && !st.isDirectory()) parts.push(String(Math.floor(st.mtimeMs / 1000)));
      lines.push(parts.join(' '));
      if (st.isDirectory()) await walk(r);
    }
  };
  await walk('');
  return lines;
}

async function writeFiles(root: string, files: Record<string, string | Buffer>): Promise<void> {
  for (const [rel, content] of Object.entries(files)) {
    const p = path.join(root, rel);
    await mkdir(path.dirname(p), { recursive: true });
    await writeFile(p, content);
  }
}

function pseudoRandom(bytes: number, seed: string): Buffer {
  const out = Buffer.alloc(bytes);
  let block = createHash('sha256').update(seed).digest();
  for (let off = 0; off < bytes; off += block.length) {
    block.copy(out, off);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Docker

interface ContainerState {
  Running: boolean;
  Status: string;
  StartedAt: string;
  FinishedAt: string;
  Health?: { Status: string };
}

async function containerState(name: string): Promise<ContainerState> {
  const r = await docker(['inspect', '--format', '{{json .State}}', name]);
  return JSON.parse(r.stdout) as ContainerState;
}

async function mountpoint(volume: string): Promise<string> {
  const r = await docker(['volume', 'inspect', '--format', '{{.Mountpoint}}', volume]);
  return r.stdout.trim();
}

/** `docker run -d --init` a standalone container with the given `volume:/path` mounts, removed after t. */
async function standalone(
  t: TestContext,
  name: string,
  volumes: string[],
  extra: string[] = [],
): Promise<void> {
  registerCleanup(t, async () => {
    await docker(['rm', '-f', '-v', name], { allowFail: true });
    const vols = volumes.map((v) => v.split(':')[0] ?? '').filter(Boolean);
    if (vols.length) await docker(['volume', 'rm', '-f', ...vols], { allowFail: true });
  });
  for (const v of volumes) await docker(['volume', 'create', v.split(':')[0] ?? '']);
  await docker([
    'run',
    '-d',
    '--init',
    '--name',
    name,
    ...volumes.flatMap((v) => ['-v', v]),
    ...extra,
    IMAGE,
    'sh',
    '-c',
    'while :; do sleep 1; done',
  ]);
}

/**
 * The Compose stack of these tests: db (healthcheck, secret env), app (depends on db, relative bind),
 * worker. db turns healthy `healthyAfter` seconds after it starts (within the healthcheck's start period),
 * which makes "app is started only once db is healthy" observable in the containers' StartedAt.
 */
function stackCompose(healthyAfter = 0): string {
  return `version: '2.4'
services:
  db:
    image: ${IMAGE}
    init: true
    command: sh -c 'sleep ${healthyAfter}; touch /tmp/ok; while :; do sleep 1; done'
    environment:
      DB_PASSWORD: hunter2
      DB_NAME: appdb
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ok"]
      interval: 1s
      timeout: 2s
      retries: 3
      start_period: 20s
    volumes:
      - dbdata:/var/lib/db
  app:
    image: ${IMAGE}
    init: true
    command: ${LOOP}
    depends_on:
      db:
        condition: service_healthy
    volumes:
      - appdata:/appdata
      - ./data:/data
  worker:
    image: ${IMAGE}
    init: true
    command: ${LOOP}
    volumes:
      - workerdata:/work
volumes:
  dbdata:
  appdata:
  workerdata:
`;
}

const ENV_FILE = 'FOO=bar\nDB_NAME=appdb\n';

/**
 * Brings the stack up, then stops worker (a stopped member of the project). `ctrs` are the containers'
 * names, looked up by label (Compose v1 and v2 name them differently); volumes are `<project>_<name>`.
 */
async function upStack(t: TestContext, prefix: string, healthyAfter = 0) {
  const stack = await createStack(t, {
    name: uniqueName(prefix),
    files: {
      'docker-compose.yml': stackCompose(healthyAfter),
      '.env': ENV_FILE,
      'data/bind.txt': 'bind mount data\n',
    },
  });
  await compose(stack.dir, stack.project, ['stop', '-t', '1', 'worker']);
  const p = stack.project;
  return {
    ...stack,
    bindDir: path.join(stack.dir, 'data'),
    vols: { db: `${p}_dbdata`, app: `${p}_appdata`, worker: `${p}_workerdata` },
    ctrs: await composeContainers(p, ['db', 'app', 'worker']),
  };
}

/** Kopia source path of a bind: `/binds/<unit>/<host path without leading '/', '%'→%25, '/'→%2F>`. */
function bindSourcePath(unit: string, hostPath: string): string {
  const esc = (s: string) => s.replace(/%/g, '%25').replace(/\//g, '%2F');
  return `/binds/${esc(unit)}/${esc(hostPath.replace(/^\/+/, '').replace(/\/+$/, ''))}`;
}

interface RunSummary {
  backupId: string;
  units: { unit: string; status: string; error?: string; snapshots: { type: string; id: string }[] }[];
}

async function backupJson(repo: Repo, units: string[]): Promise<RunSummary> {
  const r = await cliOk(repo, ['backup', ...units.flatMap((u) => ['--unit', u]), '--json']);
  try {
    return JSON.parse(r.stdout) as RunSummary;
  } catch {
    assert.fail(`backup --json printed no JSON: ${describeRun(r)}`);
  }
}

// ---------------------------------------------------------------------------------------------------

describe('kopi-docka backup (real Docker, real Kopia)', () => {
  it('direct mode: backs up a Compose stack and a standalone container, with tags, contents and recipe', async (t) => {
    const s = await upStack(t, 'bk-direct', DB_HEALTHY_AFTER);
    const solo = uniqueName('bk-solo');
    const soloVol = `${solo}-vol`;
    await standalone(t, solo, [`${soloVol}:/v`], ['-e', 'API_TOKEN=s3cr3t-token', '-e', 'PLAIN=visible']);

    const data: Record<string, Record<string, string | Buffer>> = {
      [s.vols.db]: {
        'db.bin': pseudoRandom(256 * 1024, 'db'),
        'sub/dir/n.txt': 'nested\n',
        'empty.txt': '',
      },
      [s.vols.app]: { 'app.txt': 'app data\n', 'x/y/z.bin': pseudoRandom(10_000, 'app') },
      [s.vols.worker]: { 'worker.txt': 'the stopped worker has data too\n' },
      [soloVol]: { 'solo.txt': 'standalone\n' },
    };
    const hostPaths = new Map<string, string>();
    for (const [vol, files] of Object.entries(data)) {
      const mp = await mountpoint(vol);
      hostPaths.set(vol, mp);
      await writeFiles(mp, files);
    }
    await symlink('sub/dir/n.txt', path.join(hostPaths.get(s.vols.db) ?? '', 'link'));
    await chmod(path.join(hostPaths.get(s.vols.db) ?? '', 'db.bin'), 0o600);
    await writeFiles(s.bindDir, { 'nested/b.bin': pseudoRandom(5000, 'bind') });

    const repo = await makeRepo(t);
    await initRepo(repo);

    const before = {
      db: await containerState(s.ctrs.db),
      app: await containerState(s.ctrs.app),
      worker: await containerState(s.ctrs.worker),
      solo: await containerState(solo),
    };
    assert.equal(before.worker.Running, false);

    const summary = await backupJson(repo, [s.project, solo]);
    assert.match(summary.backupId, BACKUP_ID_RE);
    const su = summary.units.find((u) => u.unit === s.project);
    const so = summary.units.find((u) => u.unit === solo);
    assert.ok(su && so, `summary lacks a unit: ${JSON.stringify(summary)}`);
    assert.equal(summary.units.length, 2);
    assert.equal(su.status, 'ok', su.error);
    assert.equal(so.status, 'ok', so.error);
    assert.equal(su.snapshots.length, 5, 'stack: recipe + 3 volumes + 1 bind');
    assert.equal(so.snapshots.length, 2, 'standalone: recipe + 1 volume');

    // Containers: the running ones were stopped (cold) and are back, db healthy; worker stays stopped.
    const after = {
      db: await containerState(s.ctrs.db),
      app: await containerState(s.ctrs.app),
      worker: await containerState(s.ctrs.worker),
      solo: await containerState(solo),
    };
    assert.equal(after.db.Running, true, 'db running again');
    assert.equal(after.db.Health?.Status, 'healthy', 'db healthy again (backup waits for it)');
    assert.equal(after.app.Running, true, 'app running again');
    assert.equal(after.solo.Running, true, 'standalone running again');
    for (const k of ['db', 'app', 'solo'] as const) {
      assert.notEqual(after[k].StartedAt, before[k].StartedAt, `${k} was stopped and started (cold backup)`);
    }
    // Dependency order with a wait: app (depends_on db) starts only once db is healthy again.
    const dbToApp = Date.parse(after.app.StartedAt) - Date.parse(after.db.StartedAt);
    assert.ok(
      dbToApp >= (DB_HEALTHY_AFTER - 0.5) * 1000,
      `app started ${dbToApp} ms after db: not after db was healthy`,
    );
    assert.equal(after.worker.Running, false, 'worker was stopped before and must stay stopped');
    assert.equal(after.worker.StartedAt, before.worker.StartedAt, 'worker never started');

    // Snapshots in the repository.
    const k = await kopiaCtx(repo);
    const all = await listSnapshots(k);
    const stackSnaps = snapsOfUnit(all, s.project);
    const soloSnaps = snapsOfUnit(all, solo);
    assert.equal(stackSnaps.length, 5, stackSnaps.map((x) => x.source.path).join(', '));
    assert.equal(soloSnaps.length, 2, soloSnaps.map((x) => x.source.path).join(', '));
    for (const snap of [...stackSnaps, ...soloSnaps]) {
      assert.equal(snap.incomplete, undefined, `${snap.source.path} is incomplete`);
      assert.equal(tag(snap, 'backup_id'), summary.backupId, `${snap.source.path}: one backup_id per run`);
      assert.match(tag(snap, 'timestamp') ?? '', ISO_UTC_RE, `${snap.source.path}: timestamp tag`);
    }

    const expectData = [
      { unit: s.project, vol: s.vols.db },
      { unit: s.project, vol: s.vols.app },
      { unit: s.project, vol: s.vols.worker },
      { unit: solo, vol: soloVol },
    ];
    const restoreRoot = await makeTempDir('bk-restore');
    registerCleanup(t, () => rm(restoreRoot, { recursive: true, force: true }));
    for (const { unit, vol } of expectData) {
      const snap = onlyAt(all, `/volumes/${unit}/${vol}`);
      assert.equal(tag(snap, 'unit'), unit);
      assert.equal(tag(snap, 'type'), 'volume');
      assert.equal(tag(snap, 'volume'), vol);
      assert.equal(tag(snap, 'format'), 'dir');
      const files = data[vol] ?? {};
      const minBytes = Object.values(files).reduce((n, c) => n + Buffer.byteLength(c), 0);
      assert.match(tag(snap, 'size_bytes') ?? '', /^\d+$/, `${vol}: size_bytes tag`);
      assert.ok(Number(tag(snap, 'size_bytes')) >= minBytes, `${vol}: size_bytes ≥ ${minBytes}`);
      const target = path.join(restoreRoot, vol);
      await restoreSnapshot(k, snap.id, target);
      const src = hostPaths.get(vol) ?? '';
      assert.deepEqual(
        await treeListing(target, { modes: true, owners: true, mtimes: true }),
        await treeListing(src, { modes: true, owners: true, mtimes: true }),
        `${vol}: restored tree differs from the volume`,
      );
    }
    const bindSnap = onlyAt(all, bindSourcePath(s.project, s.bindDir));
    assert.equal(tag(bindSnap, 'unit'), s.project);
    assert.equal(tag(bindSnap, 'type'), 'bind');
    assert.equal(tag(bindSnap, 'bind_source'), s.bindDir);
    assert.equal(tag(bindSnap, 'format'), 'dir');
    assert.match(tag(bindSnap, 'size_bytes') ?? '', /^\d+$/);
    const bindTarget = path.join(restoreRoot, 'bind');
    await restoreSnapshot(k, bindSnap.id, bindTarget);
    assert.deepEqual(
      await treeListing(bindTarget, { modes: true, owners: true }),
      await treeListing(s.bindDir, { modes: true, owners: true }),
      'bind: restored tree differs',
    );

    // Recipes.
    for (const unit of [s.project, solo]) {
      const recipe = onlyAt(all, `/recipes/${unit}`);
      assert.equal(tag(recipe, 'type'), 'recipe');
      assert.equal(tag(recipe, 'unit'), unit);
      const dir = path.join(restoreRoot, `recipe-${unit}`);
      await restoreSnapshot(k, recipe.id, dir);
      const manifest = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')) as {
        unit: string;
        backupId: string;
        snapshots: { snapshotId: string }[];
      };
      assert.equal(manifest.unit, unit);
      assert.equal(manifest.backupId, summary.backupId);
      const dataIds = snapsOfUnit(all, unit)
        .filter((x) => tag(x, 'type') !== 'recipe')
        .map((x) => x.id)
        .sort();
      assert.deepEqual(
        manifest.snapshots.map((x) => x.snapshotId).sort(),
        dataIds,
        `${unit}: manifest.json lists every data snapshot`,
      );
      const inspectDir = path.join(dir, 'inspect');
      for (const f of await readdir(inspectDir)) {
        const text = await readFile(path.join(inspectDir, f), 'utf8');
        assert.doesNotMatch(text, /hunter2|s3cr3t-token/, `${f} leaks a secret`);
      }
    }
    const stackRecipe = path.join(restoreRoot, `recipe-${s.project}`);
    assert.equal(
      await readFile(path.join(stackRecipe, 'project', 'docker-compose.yml'), 'utf8'),
      stackCompose(DB_HEALTHY_AFTER),
    );
    assert.equal(await readFile(path.join(stackRecipe, 'project', '.env'), 'utf8'), ENV_FILE);
    for (const c of Object.values(s.ctrs)) {
      assert.ok(
        existsSync(path.join(stackRecipe, 'inspect', `${c}_inspect.json`)),
        `inspect of ${c} (worker included)`,
      );
    }
    const dbInspect = JSON.parse(
      await readFile(path.join(stackRecipe, 'inspect', `${s.ctrs.db}_inspect.json`), 'utf8'),
    ) as { Config: { Env: string[] } };
    assert.ok(dbInspect.Config.Env.includes('DB_PASSWORD=***REDACTED***'), dbInspect.Config.Env.join(' '));
    assert.ok(dbInspect.Config.Env.includes('DB_NAME=appdb'), 'a non-secret env var is kept');
    const soloInspect = JSON.parse(
      await readFile(path.join(restoreRoot, `recipe-${solo}`, 'inspect', `${solo}_inspect.json`), 'utf8'),
    ) as { Config: { Env: string[] } };
    assert.ok(soloInspect.Config.Env.includes('API_TOKEN=***REDACTED***'));
    assert.ok(soloInspect.Config.Env.includes('PLAIN=visible'));
  });

  it('tar mode: streams each source as <name>.tar; extracting gives the same files, modes, owners, symlinks', async (t) => {
    const s = await upStack(t, 'bk-tar');
    const dbPath = await mountpoint(s.vols.db);
    await writeFiles(dbPath, {
      'plain.txt': 'plain\n',
      'secret.key': 'only owner\n',
      'owned/by-1000.txt': 'chowned\n',
      'bin/random.bin': pseudoRandom(100_000, 'tar'),
    });
    await chmod(path.join(dbPath, 'secret.key'), 0o640);
    await chmod(path.join(dbPath, 'bin'), 0o750);
    await chmod(path.join(dbPath, 'bin', 'random.bin'), 0o755);
    await chown(path.join(dbPath, 'owned', 'by-1000.txt'), 1000, 1000);
    await chown(path.join(dbPath, 'owned'), 1000, 1001);
    await symlink('../plain.txt', path.join(dbPath, 'owned', 'link'));
    await lchown(path.join(dbPath, 'owned', 'link'), 1000, 1000);
    const old = new Date('2020-02-02T02:02:02Z');
    await utimes(path.join(dbPath, 'plain.txt'), old, old);
    // What only tar mode keeps in the data snapshot itself: extended attributes and hard links.
    await execFileP('setfattr', ['-n', 'user.kd_test', '-v', 'kept', path.join(dbPath, 'plain.txt')]);
    await link(path.join(dbPath, 'bin', 'random.bin'), path.join(dbPath, 'hardlink.bin'));
    const workerPath = await mountpoint(s.vols.worker);
    await writeFiles(workerPath, { 'w.txt': 'worker\n' });
    await writeFiles(s.bindDir, { 'sub/bind2.txt': 'bind two\n' });

    const repo = await makeRepo(t, { backup: { volume_mode: 'tar' } });
    await initRepo(repo);
    const summary = await backupJson(repo, [s.project]);
    assert.equal(summary.units[0]?.status, 'ok', summary.units[0]?.error);

    const k = await kopiaCtx(repo);
    const snaps = snapsOfUnit(await listSnapshots(k), s.project);
    assert.equal(snaps.length, 5, snaps.map((x) => x.source.path).join(', '));
    for (const snap of snaps.filter((x) => tag(x, 'type') !== 'recipe')) {
      assert.equal(tag(snap, 'format'), 'tar', `${snap.source.path}: format tag`);
      assert.equal(tag(snap, 'backup_id'), summary.backupId);
    }

    const out = await makeTempDir('bk-tar-out');
    registerCleanup(t, () => rm(out, { recursive: true, force: true }));
    const full = { modes: true, owners: true, mtimes: true };
    const cases = [
      { source: `/volumes/${s.project}/${s.vols.db}`, stream: `${s.vols.db}.tar`, host: dbPath },
      { source: `/volumes/${s.project}/${s.vols.worker}`, stream: `${s.vols.worker}.tar`, host: workerPath },
      { source: bindSourcePath(s.project, s.bindDir), stream: 'data.tar', host: s.bindDir },
    ];
    for (const c of cases) {
      const snap = onlyAt(snaps, c.source);
      const target = path.join(out, c.stream);
      await extractTarStream(k, `${snap.rootEntry.obj}/${c.stream}`, target);
      assert.deepEqual(
        await treeListing(target, full),
        await treeListing(c.host, full),
        `${c.stream}: extracted tree differs from the source`,
      );
    }
    // The owner and mode really made it (not just "equal because both are root-owned").
    const extracted = path.join(out, `${s.vols.db}.tar`);
    const st = await lstat(path.join(extracted, 'owned', 'by-1000.txt'));
    assert.equal(`${st.uid}:${st.gid}`, '1000:1000');
    assert.equal((await lstat(path.join(extracted, 'secret.key'))).mode & 0o777, 0o640);
    assert.equal(await readlink(path.join(extracted, 'owned', 'link')), '../plain.txt');
    assert.equal(
      Math.floor((await lstat(path.join(extracted, 'plain.txt'))).mtimeMs / 1000),
      old.getTime() / 1000,
    );
    const xattr = await execFileP('getfattr', [
      '--only-values',
      '-n',
      'user.kd_test',
      path.join(extracted, 'plain.txt'),
    ]);
    assert.equal(xattr.stdout, 'kept', 'extended attribute kept');
    assert.equal(
      (await lstat(path.join(extracted, 'hardlink.bin'))).ino,
      (await lstat(path.join(extracted, 'bin', 'random.bin'))).ino,
      'hard link kept',
    );

    assert.equal((await containerState(s.ctrs.db)).Health?.Status, 'healthy');
    assert.equal((await containerState(s.ctrs.app)).Running, true);
    assert.equal((await containerState(s.ctrs.worker)).Running, false);
  });

  it('--dry-run prints the plan and changes nothing, even without a repository (exit 5, as the run); an unknown --unit exits 2', async (t) => {
    const s = await upStack(t, 'bk-dry');
    const dbPath = await mountpoint(s.vols.db);
    await writeFiles(dbPath, { 'a.bin': pseudoRandom(12_345, 'dry'), 'b/c.txt': 'abc\n' });
    const dbBytes = 12_345 + 4;
    const repo = await makeRepo(t); // no init: there is no repository at all
    const kopiaConfig = await kopiaConfigFile(repo);
    const names = Object.values(s.ctrs);
    const started = new Map<string, string>();
    for (const n of names) started.set(n, (await containerState(n)).StartedAt);

    // Without a repository the run would stop before stopping anything (exit 5): the dry-run says so
    // with the same code, after the whole plan.
    const text = await cli(repo, ['backup', '--dry-run', '--unit', s.project]);
    assert.equal(text.code, 5, describeRun(text));
    assert.match(text.stdout, /pre-flight: the run would stop here[\s\S]*FAIL repository: not connected/);
    const out = text.stdout;
    assert.match(out, new RegExp(`unit ${s.project}\\b`));
    const stopLine = out.split('\n').find((l) => /^\s*stop:/.test(l)) ?? '';
    assert.ok(
      stopLine.indexOf(s.ctrs.app) >= 0 && stopLine.indexOf(s.ctrs.app) < stopLine.indexOf(s.ctrs.db),
      `stop line lists app before db: ${stopLine}`,
    );
    assert.ok(!stopLine.includes(s.ctrs.worker), `the stopped worker is not in the stop order: ${stopLine}`);
    for (const v of Object.values(s.vols)) assert.ok(out.includes(v), `plan names volume ${v}`);
    assert.ok(out.includes(s.bindDir), 'plan names the bind source');
    assert.match(out, /expected snapshots: 5\b/);

    const js = await cli(repo, ['backup', '--dry-run', '--unit', s.project, '--json']);
    assert.equal(js.code, 5, describeRun(js));
    const doc = JSON.parse(js.stdout) as {
      exitCode: number;
      dryRun: boolean;
      plan: {
        backupId: string;
        volumeMode: string;
        units: {
          unit: string;
          stop: { container: string }[];
          start: { container: string; waitHealthy: boolean }[];
          sources: { type: string; name: string; kopiaPath: string; sizeBytes?: number }[];
          expectedSnapshots: number;
        }[];
      };
    };
    assert.equal(doc.dryRun, true);
    assert.equal(doc.exitCode, 5);
    assert.match(doc.plan.backupId, BACKUP_ID_RE);
    assert.equal(doc.plan.volumeMode, 'direct');
    assert.equal(doc.plan.units.length, 1);
    const u = doc.plan.units[0];
    assert.ok(u);
    assert.equal(u.unit, s.project);
    assert.deepEqual(
      u.stop.map((x) => x.container),
      [s.ctrs.app, s.ctrs.db],
    );
    assert.deepEqual(
      u.start.map((x) => [x.container, x.waitHealthy]),
      [
        [s.ctrs.db, true],
        [s.ctrs.app, false],
      ],
    );
    assert.deepEqual(
      u.sources.map((x) => `${x.type} ${x.name} ${x.kopiaPath}`).sort(),
      [
        `bind ${s.bindDir} ${bindSourcePath(s.project, s.bindDir)}`,
        ...Object.values(s.vols).map((v) => `volume ${v} /volumes/${s.project}/${v}`),
      ].sort(),
    );
    assert.equal(u.sources.find((x) => x.name === s.vols.db)?.sizeBytes, dbBytes, 'measured size');
    assert.equal(u.expectedSnapshots, 5);

    // An unknown unit: usage error listing the known units, nothing stopped (no --dry-run here).
    const bad = await cli(repo, ['backup', '--unit', 'nosuch']);
    assert.equal(bad.code, 2, describeRun(bad));
    assert.match(bad.stderr, /nosuch/);
    assert.ok(bad.stderr.includes(s.project), `known units listed: ${bad.stderr}`);

    for (const n of names) {
      assert.equal((await containerState(n)).StartedAt, started.get(n), `${n} was not restarted`);
    }
    assert.equal((await containerState(s.ctrs.db)).Running, true);
    assert.equal((await containerState(s.ctrs.worker)).Running, false);
    assert.equal(existsSync(repo.repoPath), false, 'the repository directory was not created');
    assert.equal(existsSync(kopiaConfig), false, 'no Kopia connection was made');
    for (const f of ['journal.json', 'run.lock', 'staging']) {
      assert.equal(existsSync(path.join(repo.stateDir, f)), false, `state dir has no ${f}`);
    }
  });

  for (const mode of ['direct', 'tar'] as const) {
    it(`exclude_patterns apply in ${mode} mode`, async (t) => {
      const name = uniqueName(`bk-excl-${mode}`);
      const vol = `${name}-vol`;
      await standalone(t, name, [`${vol}:/v`]);
      const mp = await mountpoint(vol);
      await writeFiles(mp, {
        'a.log': 'log\n',
        'keep.txt': 'keep\n',
        'cache/x': 'cached\n',
        'sub/b.txt': 'b\n',
        'sub/c.log': 'nested log\n',
      });
      const repo = await makeRepo(t, {
        backup: { volume_mode: mode, exclude_patterns: '*.log, cache/*' },
      });
      await initRepo(repo);
      const summary = await backupJson(repo, [name]);
      assert.equal(summary.units[0]?.status, 'ok', summary.units[0]?.error);

      const k = await kopiaCtx(repo);
      const snap = onlyAt(snapsOfUnit(await listSnapshots(k), name), `/volumes/${name}/${vol}`);
      const target = await makeTempDir(`bk-excl-${mode}`);
      registerCleanup(t, () => rm(target, { recursive: true, force: true }));
      if (mode === 'direct') await restoreSnapshot(k, snap.id, path.join(target, 'r'));
      else await extractTarStream(k, `${snap.rootEntry.obj}/${vol}.tar`, path.join(target, 'r'));
      const r = path.join(target, 'r');
      for (const gone of ['a.log', 'cache/x', 'sub/c.log']) {
        assert.equal(existsSync(path.join(r, gone)), false, `${mode}: ${gone} is excluded`);
      }
      assert.equal(await readFile(path.join(r, 'keep.txt'), 'utf8'), 'keep\n');
      assert.equal(await readFile(path.join(r, 'sub', 'b.txt'), 'utf8'), 'b\n');
    });
  }

  it('parallel_workers = 2 snapshots two volumes at the same time', async (t) => {
    const name = uniqueName('bk-par');
    const vols = [`${name}-one`, `${name}-two`];
    await standalone(t, name, [`${vols[0] ?? ''}:/one`, `${vols[1] ?? ''}:/two`]);
    const size = 150 * 1024 * 1024;
    await Promise.all(
      vols.map(async (v) => {
        const file = path.join(await mountpoint(v), 'random.bin');
        const out = createWriteStream(file);
        const head = spawn('head', ['-c', String(size), '/dev/urandom'], {
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        head.stdout.pipe(out);
        await new Promise<void>((resolve, reject) => {
          out.once('finish', resolve);
          out.once('error', reject);
          head.once('error', reject);
        });
        assert.equal((await lstat(file)).size, size);
      }),
    );
    // Without the warm pass: after it the cold snapshots take under a millisecond and cannot be seen overlapping.
    const repo = await makeRepo(t, { backup: { parallel_workers: '2', warm_pass: 'never' } });
    await initRepo(repo);
    const summary = await backupJson(repo, [name]);
    assert.equal(summary.units[0]?.status, 'ok', summary.units[0]?.error);

    const k = await kopiaCtx(repo);
    const snaps = snapsOfUnit(await listSnapshots(k), name);
    const [a, b] = vols.map((v) => onlyAt(snaps, `/volumes/${name}/${v}`));
    assert.ok(a && b);
    for (const x of [a, b]) assert.equal(x.rootEntry.summ?.size, size);
    const iv = (x: Snap) => [Date.parse(x.startTime), Date.parse(x.endTime)] as const;
    const [as, ae] = iv(a);
    const [bs, be] = iv(b);
    assert.ok(
      Math.max(as, bs) < Math.min(ae, be),
      `snapshots ran one after the other: ${a.startTime}–${a.endTime} and ${b.startTime}–${b.endTime}`,
    );
    assert.equal((await containerState(name)).Running, true);
  });

  it('retention (latest = 2) keeps the newest two restore points of each source', async (t) => {
    const name = uniqueName('bk-ret');
    const vol = `${name}-vol`;
    await standalone(t, name, [`${vol}:/v`]);
    const mp = await mountpoint(vol);
    const repo = await makeRepo(t, {
      retention: { latest: '2', hourly: '0', daily: '0', weekly: '0', monthly: '0', yearly: '0' },
    });
    await initRepo(repo);
    const ids: string[] = [];
    for (let i = 1; i <= 3; i++) {
      await writeFile(path.join(mp, 'generation.txt'), `generation ${i}\n`);
      const summary = await backupJson(repo, [name]);
      assert.equal(summary.units[0]?.status, 'ok', summary.units[0]?.error);
      ids.push(summary.backupId);
    }
    assert.equal(new Set(ids).size, 3, `three distinct backup_ids: ${ids.join(', ')}`);

    const k = await kopiaCtx(repo);
    const all = await listSnapshots(k);
    for (const source of [`/volumes/${name}/${vol}`, `/recipes/${name}`]) {
      const kept = bySource(all, source);
      assert.deepEqual(
        kept.map((x) => tag(x, 'backup_id')).sort(),
        ids.slice(1).sort(),
        `${source} keeps exactly the newest two backups`,
      );
    }
    // The newest volume snapshot holds the newest data.
    const newest = bySource(all, `/volumes/${name}/${vol}`).find((x) => tag(x, 'backup_id') === ids[2]);
    assert.ok(newest);
    const target = await makeTempDir('bk-ret');
    registerCleanup(t, () => rm(target, { recursive: true, force: true }));
    await restoreSnapshot(k, newest.id, path.join(target, 'r'));
    assert.equal(await readFile(path.join(target, 'r', 'generation.txt'), 'utf8'), 'generation 3\n');
  });
});
