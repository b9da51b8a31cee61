/**
 * Restoring a unit from a restore point: the recipe into a working directory (with the Compose project
 * layout rebuilt so relative bind mounts point at the restored data), one safe restore script per data
 * source, and — with `execute` — running those very scripts.
 */
import { chmod, copyFile, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import type { Kopia } from '../adapters/kopia.js';
import { run } from '../adapters/process.js';
import type { Logger } from '../core/log.js';
import { groupRestorePoints } from '../core/restore-points.js';
import { hardLinkGroupsSchema, parseRecipeManifest } from '../core/recipe-manifest.js';
import { acquireLock } from './lock.js';
import { exists, makeDirectory } from '../fsutil.js';
import type { Config } from '../config/types.js';
import { renderRestoreScript, type ScriptInput } from '../core/restore-script.js';
import type { PointSnapshot, RestorePoint } from '../core/restore-points.js';
import { escapeSegment } from '../core/sources.js';
import { ExitCode, KopiDockaError, UsageError, doing, errorMessage } from '../errors.js';
import type { DataSnapshot } from './data.js';
import type { RecipeManifest } from './recipe.js';

export interface RestoredRecipe {
  manifest: RecipeManifest;
  workDir: string;
  recipeDir: string;
  /** Where the Compose project lives now (named after the unit so Compose keeps the project name). */
  projectDir: string;
  /** Compose files as restored, in the order the project used them. */
  composeFiles: string[];
  /**
   * The project's `--env-file`s as restored (Compose v2 records them): `compose up` needs them passed
   * again with `--env-file`, or it reads `.env` instead. Empty when the project used the default
   * (set by restoreRecipe; optional only for callers that build a RestoredRecipe themselves).
   */
  environmentFiles?: string[];
  /** Variables whose values were redacted at backup and must be filled in by hand. */
  redacted: { container: string; vars: string[] }[];
  /**
   * Restored in place (same host, the project's own directory still there): projectDir is the
   * project's working dir, binds go back where they were; project files are not overwritten.
   */
  inPlace?: boolean;
  /**
   * In place: project files that differ from the backed-up ones (host path → the backed-up copy,
   * kept as `<name>.from-backup` under the recipe dir) — left as they are, for the user to compare.
   */
  differing?: { hostPath: string; fromBackup: string }[];
}

export interface DataRestore {
  entry: DataSnapshot;
  snapshot: PointSnapshot;
  target: string;
  scriptPath: string;
  /** Why the target was chosen (shown to the user). */
  note: string;
}

export function defaultWorkDir(cfg: Config, point: RestorePoint): string {
  return join(cfg.stateDir, 'restore', escapeSegment(point.unit), point.backupId);
}

async function isNonEmpty(path: string): Promise<boolean> {
  try {
    const st = await stat(path);
    if (!st.isDirectory()) return true;
    return (await readdir(path)).length > 0;
  } catch {
    return false;
  }
}

async function holdsRecipeOf(recipeDir: string, point: RestorePoint): Promise<boolean> {
  try {
    const file = join(recipeDir, 'manifest.json');
    const m = parseRecipeManifest(await readFile(file, 'utf8'), file);
    return m.unit === point.unit && m.backupId === point.backupId && m.host === point.host;
  } catch {
    return false;
  }
}

/**
 * Is `point` of this host, with its Compose project's directory still here? Then a restore goes back
 * in place by default (no `--to`): the project's own directory, binds where they were.
 */
export async function sameHostProject(
  point: RestorePoint,
  manifest: { compose: { workingDir?: string | undefined } },
  hostname: string,
): Promise<string | undefined> {
  const wd = manifest.compose.workingDir;
  if (point.host !== hostname || wd === undefined) return undefined;
  const st = await stat(wd).catch(() => undefined);
  return st?.isDirectory() ? wd : undefined;
}

async function sameContent(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([readFile(a).catch(() => undefined), readFile(b).catch(() => undefined)]);
  return x !== undefined && y !== undefined && x.equals(y);
}

/**
 * Restore the recipe snapshot of `point` into `<workDir>/recipe` and lay out the Compose project:
 * under `<workDir>/<unit>` (elsewhere, e.g. a new host), or — `inPlaceOnHost` is this host's name,
 * the point is of this host and its project directory is still here (sameHostProject) — in the
 * project's own directory, where only missing files are written (a differing one is reported, never
 * replaced).
 * Either way the recipe's own copy of the project files is removed afterwards, so the work dir holds
 * exactly one runnable project directory (or none, in place).
 *
 * @throws UsageError when `<workDir>/recipe` holds something else; KopiaError; SystemError.
 */
export async function restoreRecipe(
  kopia: Kopia,
  point: RestorePoint,
  workDir: string,
  opts: { inPlaceOnHost?: string | undefined } = {},
): Promise<RestoredRecipe> {
  if (!point.recipe) {
    throw new KopiDockaError(`restore point ${point.unit} ${point.backupId} has no recipe snapshot`, {
      hint: 'pick a complete restore point (`kopi-docka restore --list`)',
    });
  }
  const recipeDir = join(workDir, 'recipe');
  // Running the same restore again (typically: refused for a non-empty volume, then re-run with --yes)
  // finds its own earlier recipe there; anything else is somebody's data and is never written over.
  if ((await isNonEmpty(recipeDir)) && !(await holdsRecipeOf(recipeDir, point))) {
    throw new UsageError(
      `${recipeDir} is not empty and does not hold the recipe of ${point.unit} ${point.backupId}`,
      'remove it or pass another directory with --to',
    );
  }
  await rm(join(recipeDir, 'project'), { recursive: true, force: true });
  await mkdir(recipeDir, { recursive: true, mode: 0o700 });
  await kopia.restore(point.recipe.id, recipeDir);
  const manifest = parseRecipeManifest(
    await readFile(join(recipeDir, 'manifest.json'), 'utf8'),
    `manifest.json of the recipe snapshot ${point.recipe.id} (${point.unit} ${point.backupId})`,
  );
  const inPlaceDir =
    opts.inPlaceOnHost === undefined ? undefined : await sameHostProject(point, manifest, opts.inPlaceOnHost);
  const inPlace = inPlaceDir !== undefined;
  const projectDir = inPlaceDir ?? join(workDir, manifest.unit);
  const composeFiles: string[] = [];
  const envFiles = manifest.compose.environmentFiles ?? [];
  // Files Compose is pointed at on its command line (-f, --env-file) can live anywhere.
  const isConfig = (f: { hostPath: string }) =>
    manifest.compose.configFiles.includes(f.hostPath) || envFiles.includes(f.hostPath);
  const placed = new Map<string, string>();
  const differing: { hostPath: string; fromBackup: string }[] = [];
  for (const f of manifest.compose.files) {
    const stored = join(recipeDir, f.stored);
    if (inPlace) {
      // The live project is the user's: a file that is there stays as it is.
      if (!(await exists(f.hostPath))) {
        await mkdir(dirname(f.hostPath), { recursive: true });
        await copyFile(stored, f.hostPath);
      } else if (!(await sameContent(stored, f.hostPath))) {
        const fromBackup = join(recipeDir, 'differing', `${f.stored.replace(/\//g, '__')}.from-backup`);
        await mkdir(dirname(fromBackup), { recursive: true });
        await copyFile(stored, fromBackup);
        differing.push({ hostPath: f.hostPath, fromBackup });
      }
      placed.set(f.hostPath, f.hostPath);
      continue;
    }
    let dest: string;
    if (f.stored.startsWith('project/')) dest = join(projectDir, f.stored.slice('project/'.length));
    else if (isConfig(f)) {
      // A compose file or --env-file from outside the project dir (`-f /elsewhere/x.yml`): Compose
      // resolves relative paths against the project dir anyway, so next to the others is where it
      // works. Other external files stay in recipe/external/ for the user to place.
      dest = join(projectDir, basename(f.hostPath));
      if ([...placed.values()].includes(dest)) dest = join(projectDir, `external-${basename(f.hostPath)}`);
    } else continue;
    await mkdir(dirname(dest), { recursive: true });
    await copyFile(stored, dest);
    placed.set(f.hostPath, dest);
  }
  // The project files now live in the one project directory: a second copy with its Compose file,
  // next to no data, would start the app empty if someone ran `up` there.
  await rm(join(recipeDir, 'project'), { recursive: true, force: true });
  // In the order the project used them: later files override earlier ones.
  for (const hostPath of manifest.compose.configFiles) {
    const dest = placed.get(hostPath);
    if (dest) composeFiles.push(dest);
  }
  const environmentFiles = envFiles.flatMap((f) => placed.get(f) ?? []);
  const redacted = manifest.containers
    .filter((c) => c.redactedEnv.length > 0)
    .map((c) => ({ container: c.name, vars: c.redactedEnv }));
  return {
    manifest,
    workDir,
    recipeDir,
    projectDir,
    composeFiles,
    environmentFiles,
    redacted,
    inPlace,
    differing,
  };
}

/** Short volume name as written in the Compose file: `<project>_<name>` → `<name>`. */
function composeShortName(manifest: RecipeManifest, volume: string): string | undefined {
  const prefix = `${manifest.unit}_`;
  return manifest.kind === 'stack' && volume.startsWith(prefix) ? volume.slice(prefix.length) : undefined;
}

/** Match `--volume` arguments against the manifest: full volume name, Compose short name or bind path. */
export function selectEntries(manifest: RecipeManifest, names: string[]): DataSnapshot[] {
  if (names.length === 0) return manifest.snapshots;
  const out: DataSnapshot[] = [];
  const unknown: string[] = [];
  for (const n of names) {
    const hit = manifest.snapshots.find(
      (s) => s.name === n || s.hostPath === n || composeShortName(manifest, s.name) === n,
    );
    if (hit) {
      if (!out.includes(hit)) out.push(hit);
    } else unknown.push(n);
  }
  if (unknown.length > 0) {
    throw new UsageError(
      `unknown volume or bind mount: ${unknown.join(', ')}`,
      `this restore point has: ${manifest.snapshots.map((s) => s.name).join(', ') || '(no data)'}`,
    );
  }
  return out;
}

function targetFor(entry: DataSnapshot, r: RestoredRecipe): { target: string; note: string } {
  if (entry.type === 'volume') return { target: entry.name, note: `Docker volume ${entry.name}` };
  const wd = r.manifest.compose.workingDir;
  if (wd) {
    const rel = relative(wd, entry.hostPath);
    if (rel && !rel.startsWith('..') && !isAbsolute(rel)) {
      // Relative bind (./data) → next to the restored compose file, where `compose up` will look.
      return { target: join(r.projectDir, rel), note: `project-relative bind ./${rel}` };
    }
  }
  return { target: entry.hostPath, note: `absolute bind ${entry.hostPath} (original location)` };
}

function scriptName(entry: DataSnapshot): string {
  const base = entry.type === 'volume' ? entry.name : basename(entry.hostPath) || 'root';
  const safe = base.replace(/[^A-Za-z0-9._-]/g, '_');
  const tag =
    entry.type === 'bind' ? `-${createHash('sha256').update(entry.hostPath).digest('hex').slice(0, 8)}` : '';
  return `restore-${entry.type}-${safe}${tag}.sh`;
}

export async function writeRestoreScripts(
  cfg: Config,
  kopia: Kopia,
  point: RestorePoint,
  r: RestoredRecipe,
  entries: DataSnapshot[],
  opts: { allowIncomplete: boolean },
): Promise<DataRestore[]> {
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const out: DataRestore[] = [];
  for (const entry of entries) {
    const snapshot = point.data.find((d) => d.id === entry.snapshotId);
    if (!snapshot || (snapshot.incomplete && !opts.allowIncomplete)) {
      throw new KopiDockaError(
        `the snapshot of ${entry.type} ${entry.name} (${entry.snapshotId}) is ${snapshot ? 'incomplete' : 'missing from the repository'}`,
        { hint: 'pick another restore point, or pass --allow-incomplete to use what is there' },
      );
    }
    const { target, note } = targetFor(entry, r);
    const short = entry.type === 'volume' ? composeShortName(r.manifest, entry.name) : undefined;
    const input: ScriptInput = {
      unit: point.unit,
      backupId: point.backupId,
      kind: entry.type,
      name: entry.name,
      target,
      isFile: entry.isFile,
      format: entry.format,
      snapshotId: entry.snapshotId,
      streamObject: entry.streamName ? `${snapshot.rootObj}/${entry.streamName}` : undefined,
      // Sparse files stay sparse: without it a 1 GiB image holding 8 KiB comes back as 1 GiB on disk.
      kopiaRestore: (s, t) => kopia.argv(['snapshot', 'restore'], ['--write-sparse-files'], [s, t]),
      kopiaShow: (o) => kopia.argv(['show'], [], [o]),
      kopiaEnv: kopia.scriptEnvironment(false),
      passwordFile: cfg.kopia.passwordFile,
      safetyFile: join(
        r.workDir,
        'safety',
        `${scriptName(entry).replace(/^restore-|\.sh$/g, '')}-${stamp}.tar`,
      ),
      sidecarDir: entry.sidecar ? join(r.recipeDir, entry.sidecar.dir) : undefined,
      hardLinks: entry.sidecar ? await readHardLinks(join(r.recipeDir, entry.sidecar.dir)) : [],
      hasXattrs: entry.sidecar?.xattrs ?? false,
      hasAcls: entry.sidecar?.acls ?? false,
      // A bind restored into a new directory is used by nobody: stopping the app for it would be
      // downtime for nothing (the script still stops whatever mounts the target itself).
      containers:
        entry.type === 'bind' && target !== entry.hostPath ? [] : entry.usedBy.map((u) => u.container),
      volumeLabels: short
        ? { 'com.docker.compose.project': r.manifest.unit, 'com.docker.compose.volume': short }
        : {},
      stopTimeoutSec: cfg.backup.stopTimeout,
    };
    const scriptPath = join(r.workDir, scriptName(entry));
    await writeFile(scriptPath, renderRestoreScript(input), { mode: 0o700 });
    await chmod(scriptPath, 0o700);
    out.push({ entry, snapshot, target, scriptPath, note });
  }
  return out;
}

async function readHardLinks(dir: string): Promise<string[][]> {
  try {
    return hardLinkGroupsSchema.parse(JSON.parse(await readFile(join(dir, 'hardlinks.json'), 'utf8')));
  } catch {
    return [];
  }
}

/** The part of the Docker adapter a restore needs (narrow, so tests see what is used). */
export interface RestoreDocker {
  inspectVolume(name: string): Promise<{ mountpoint: string }>;
  listContainers(query: { all?: boolean }): Promise<{ id: string; name: string }[]>;
  inspectContainer(
    id: string,
  ): Promise<{ Mounts?: { Type: string; Name?: string; Source: string }[] | null }>;
  stopContainer(id: string, timeoutSec: number): Promise<unknown>;
  startContainer(id: string): Promise<unknown>;
}

/**
 * The running containers that use what `data` will write: a volume by name, a bind target by its host
 * path — as the restore scripts find them. A bind restored into a new directory is used by nobody.
 */
export async function runningUsers(
  docker: RestoreDocker,
  data: DataRestore[],
): Promise<{ id: string; name: string }[]> {
  const volumes = new Set(data.filter((d) => d.entry.type === 'volume').map((d) => d.entry.name));
  const paths = new Set(data.filter((d) => d.entry.type === 'bind').map((d) => d.target));
  const out: { id: string; name: string }[] = [];
  for (const c of await docker.listContainers({ all: false })) {
    const mounts = (await docker.inspectContainer(c.id).catch(() => undefined))?.Mounts ?? [];
    if (mounts.some((m) => (m.Type === 'volume' && volumes.has(m.Name ?? '')) || paths.has(m.Source)))
      out.push(c);
  }
  return out;
}

/** The directory a restore script will write into right now (a volume's mountpoint, if it exists). */
export async function currentTarget(docker: RestoreDocker, d: DataRestore): Promise<string | undefined> {
  if (d.entry.type === 'bind') return d.target;
  // A volume that does not exist yet is created by the script: nothing is there to replace.
  return (await docker.inspectVolume(d.entry.name).catch(() => undefined))?.mountpoint;
}

export async function targetHasData(docker: RestoreDocker, d: DataRestore): Promise<boolean> {
  const t = await currentTarget(docker, d);
  return t !== undefined && (await isNonEmpty(t));
}

/** Run one restore script (the same file a person would run), password only in its environment. */
export async function executeScript(
  d: DataRestore,
  kopia: Kopia,
  onLine: (line: string) => void,
): Promise<{ safetyCopy: string | undefined }> {
  const res = await run(['bash', d.scriptPath], {
    // The caller stopped the data's users once for the whole unit (executeRestore).
    env: { ...kopia.scriptEnvironment(true), KOPI_DOCKA_USERS_STOPPED: '1' },
    onStderrLine: onLine,
    maxStdoutBytes: 1024 * 1024,
  });
  let safetyCopy: string | undefined;
  for (const l of res.stdout.split('\n')) {
    if (!l) continue;
    onLine(l);
    // The script names the copy it made (its name may differ from the planned one; see SAFETY_FRESH).
    if (l.startsWith(SAFETY_LINE)) safetyCopy = l.slice(SAFETY_LINE.length);
  }
  if (res.code !== 0) {
    throw new KopiDockaError(`restore of ${d.entry.type} ${d.entry.name} failed (exit ${String(res.code)})`, {
      hint: `the script ${d.scriptPath} printed how to put the safety copy back; nothing was deleted without one`,
    });
  }
  return { safetyCopy };
}

const SAFETY_LINE = 'safety copy: ';

/**
 * Every restore point of `host` (all hosts when undefined), all units: one `kopia snapshot list --all`.
 */
export async function loadRestorePoints(kopia: Kopia, host: string | undefined): Promise<RestorePoint[]> {
  return groupRestorePoints(await kopia.snapshotList({ all: true }), { host });
}

/**
 * Assert the repository is connected before a restore reads from it.
 *
 * @throws DependencyError when kopia is missing or too old; KopiDockaError (exit 5) when not connected.
 */
export async function assertConnected(kopia: Kopia, repository: string): Promise<void> {
  await kopia.assertSupported();
  const st = await kopia.status();
  if (!st) {
    throw new KopiDockaError(`not connected to the repository ${repository}`, {
      exitCode: ExitCode.REPOSITORY,
      hint: 'run `kopi-docka init` with the repository settings (on a new host: the same repository settings and password)',
    });
  }
  // Restore points are read from the configured repository only, never from whatever Kopia's config
  // happens to be connected to.
  const check = await kopia.connectionCheck(st);
  if (check.state !== 'same') {
    throw new KopiDockaError(check.message, {
      exitCode: ExitCode.REPOSITORY,
      hint: 'run `kopi-docka init` to connect to the configured repository',
    });
  }
}

/** A unit's recipe restored into `workDir` and one restore script per data source chosen. */
export interface PreparedRestore {
  workDir: string;
  recipe: RestoredRecipe;
  data: DataRestore[];
}

/**
 * Restore the recipe of `point` into a work dir (`to`, else the state dir's restore/<unit>/<id>) and
 * write the restore scripts of the data sources `volumes` names (all when empty). In place (no `to`,
 * same host, project dir still there) missing project files are put back in the project's directory;
 * nothing else outside the work dir is touched before the scripts run.
 *
 * @throws UsageError for `to` non-empty and not an earlier restore of this point (unless `force`), an
 *   unknown volume; KopiaError; SystemError.
 */
export async function prepareRestore(
  cfg: Config,
  kopia: Kopia,
  point: RestorePoint,
  opts: { to: string | undefined; volumes: string[]; allowIncomplete: boolean; force: boolean },
): Promise<PreparedRestore> {
  const workDir = resolve(opts.to ?? defaultWorkDir(cfg, point));
  if (opts.to !== undefined && !opts.force && (await isNonEmpty(workDir))) {
    // A directory that holds this very restore (a re-run, e.g. after a refusal) is ours to reuse.
    if (!(await holdsRecipeOf(join(workDir, 'recipe'), point))) {
      throw new UsageError(
        `--to ${workDir} is not empty and is not an earlier restore of ${point.unit} ${point.backupId}`,
        'choose a new or empty directory, or pass --force to restore into it anyway (nothing in it is deleted; files of the same name are replaced)',
      );
    }
  }
  await doing(`creating the restore directory`, () => makeDirectory(workDir), {
    exitCode: ExitCode.USAGE,
    hint: 'pass --to a directory (new or empty), not a file',
  });
  // Without --to, on the host the point is from, with the project's directory still there: in place.
  const recipe = await restoreRecipe(kopia, point, workDir, {
    inPlaceOnHost: opts.to === undefined ? cfg.kopia.hostname : undefined,
  });
  const entries = selectEntries(recipe.manifest, opts.volumes);
  const data = await writeRestoreScripts(cfg, kopia, point, recipe, entries, {
    allowIncomplete: opts.allowIncomplete,
  });
  return { workDir, recipe, data };
}

/** How a target holding data is named to the user: where it will be restored, and what it was. */
export function describeTarget(d: DataRestore): string {
  // A bind is restored to its target, which need not be where it was backed up from: name that.
  return d.entry.type === 'bind' && d.target !== d.entry.name
    ? `${d.target} (bind ${d.entry.name} of the backup)`
    : `${d.entry.type} ${d.entry.name}`;
}

/**
 * Run the restore scripts of a prepared restore, under the run lock. Every refusal comes before the
 * first script runs: stopping half-way through a unit's data sources would leave it half old, half
 * restored. A target holding data is replaced only when `replace(d)` says so (a safety copy is always
 * taken by the script first).
 *
 * @returns the safety copy each script made, by data source.
 * @throws LockBusyError; KopiDockaError (exit 2) for a non-empty target not to be replaced; (exit 1)
 *   for a script that failed (it printed how to put its safety copy back).
 */
export async function executeRestore(
  x: { stateDir: string; kopia: Kopia; docker: RestoreDocker; log: Logger; stopTimeoutSec: number },
  prepared: PreparedRestore,
  replace: (d: DataRestore) => Promise<boolean>,
): Promise<Map<DataRestore, string>> {
  const safety = new Map<DataRestore, string>();
  const lock = await acquireLock(x.stateDir, 'restore');
  try {
    for (const d of prepared.data) {
      if (!(await targetHasData(x.docker, d)) || (await replace(d))) continue;
      const what = describeTarget(d);
      throw new KopiDockaError(`${what} is not empty: refusing to overwrite it`, {
        exitCode: ExitCode.USAGE,
        hint: `pass --yes to replace it (a safety copy is written under ${join(prepared.workDir, 'safety')} first), or restore into an empty target`,
      });
    }
    // The unit's users go down once for all its sources, and always come back (finally).
    const users = await runningUsers(x.docker, prepared.data);
    const stopped: { id: string; name: string }[] = [];
    try {
      for (const c of users) {
        x.log.info(`stopping ${c.name} (it uses data being restored)`);
        await x.docker.stopContainer(c.id, x.stopTimeoutSec);
        stopped.push(c);
      }
      for (const d of prepared.data) {
        x.log.info(`restoring ${d.entry.type} ${d.entry.name} → ${d.note}`);
        const done = await executeScript(d, x.kopia, (l) => x.log.info(`  ${l}`));
        if (done.safetyCopy) safety.set(d, done.safetyCopy);
      }
    } finally {
      const problems: string[] = [];
      for (const c of [...stopped].reverse()) {
        await x.docker.startContainer(c.id).then(
          () => x.log.info(`started ${c.name} again`),
          (err: unknown) => problems.push(`${c.name}: ${errorMessage(err)}`),
        );
      }
      if (problems.length > 0) x.log.error(`could not start again: ${problems.join('; ')}`);
    }
  } finally {
    await lock.release();
  }
  return safety;
}

/** Names directly under `parent` in a tar stream object (directories end with '/'), for hints. */
async function tarChildren(kopia: Kopia, object: string, parent: string): Promise<string[]> {
  const res = await kopia
    .showInto(object, ['tar', '-tf', '-'], { maxStdoutBytes: 16 * 1024 * 1024 })
    .catch(() => undefined);
  if (!res || res.consumer.code !== 0) return [];
  const prefix = parent ? `./${parent}/` : './';
  const names = new Set<string>();
  for (const line of res.consumer.stdout.split('\n')) {
    if (!line.startsWith(prefix) || line === prefix) continue;
    const rest = line.slice(prefix.length);
    const slash = rest.indexOf('/');
    names.add(slash < 0 ? rest : rest.slice(0, slash + 1));
  }
  return [...names].sort();
}

/**
 * Restore one file or directory `path` of one data source (`volume`: its name, or the Compose short
 * name) of `point` into the directory `to`; no container is stopped. Tar snapshots: `kopia show | tar
 * -x` of that member; directory snapshots: `kopia snapshot restore <id>/<path>`.
 *
 * @returns where it was written.
 * @throws UsageError for an unknown volume or a path not in the snapshot (naming what is there).
 */
export async function restoreSinglePath(
  kopia: Kopia,
  point: RestorePoint,
  want: { volume: string; path: string; to: string },
): Promise<string> {
  const snap = point.data.find((d) => d.name === want.volume || d.name.endsWith(`_${want.volume}`));
  if (!snap) {
    throw new UsageError(
      `unknown volume or bind mount "${want.volume}"`,
      `this restore point has: ${point.data.map((d) => d.name).join(', ')}`,
    );
  }
  const rel = want.path.replace(/^\.?\/+/, '').replace(/\/+$/, '');
  const to = resolve(want.to);
  await mkdir(to, { recursive: true });
  const dest = join(to, basename(rel) || 'restored');
  if (snap.tags.format === 'tar') {
    const stream =
      snap.tags.volume !== undefined
        ? `${snap.tags.volume}.tar`
        : `${basename(snap.tags.bind_source ?? '') || 'root'}.tar`;
    const object = `${snap.rootObj}/${stream}`;
    const depth = String(rel.split('/').length);
    const res = await kopia.showInto(object, [
      'tar',
      '-xpf',
      '-',
      '--numeric-owner',
      '-C',
      to,
      '--strip-components',
      depth,
      '--',
      `./${rel}`,
    ]);
    if (res.consumer.code !== 0) {
      const parent = dirname(rel) === '.' ? '' : dirname(rel);
      const entries = await tarChildren(kopia, object, parent);
      throw new UsageError(
        `"${rel}" is not in ${want.volume} of ${point.backupId}: ${res.consumer.stderrTail.trim().split('\n')[0] ?? ''}`,
        `entries in /${parent}: ${entries.join(', ') || '(none)'}`,
      );
    }
  } else {
    const parent = dirname(rel) === '.' ? '' : `/${dirname(rel)}`;
    const entries = await kopia.ls(`${snap.id}${parent}`).catch(() => [] as string[]);
    const name = basename(rel);
    if (!entries.some((e) => e.replace(/\/$/, '') === name)) {
      throw new UsageError(
        `"${rel}" is not in ${want.volume} of ${point.backupId}`,
        `entries in ${parent || '/'}: ${entries.join(', ') || '(none)'}`,
      );
    }
    await kopia.restore(`${snap.id}/${rel}`, dest);
  }
  return dest;
}
