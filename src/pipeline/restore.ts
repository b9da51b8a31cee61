/**
 * Restoring a unit from a restore point: the recipe into a working directory (with the Compose project
 * layout rebuilt so relative bind mounts point at the restored data), one safe restore script per data
 * source, and — with `execute` — running those very scripts.
 */
import { chmod, copyFile, mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { basename, dirname, isAbsolute, join, relative } from 'node:path';
import type { Kopia } from '../adapters/kopia.js';
import { run } from '../adapters/process.js';
import type { Config } from '../config/types.js';
import { renderRestoreScript, type ScriptInput } from '../core/restore-script.js';
import type { PointSnapshot, RestorePoint } from '../core/restore-points.js';
import { escapeSegment } from '../core/sources.js';
import { KopiDockaError, UsageError } from '../errors.js';
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
    const m = JSON.parse(await readFile(join(recipeDir, 'manifest.json'), 'utf8')) as Partial<RecipeManifest>;
    return m.unit === point.unit && m.backupId === point.backupId && m.host === point.host;
  } catch {
    return false;
  }
}

export async function restoreRecipe(
  kopia: Kopia,
  point: RestorePoint,
  workDir: string,
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
  await mkdir(recipeDir, { recursive: true, mode: 0o700 });
  await kopia.restore(point.recipe.id, recipeDir);
  const manifest = JSON.parse(await readFile(join(recipeDir, 'manifest.json'), 'utf8')) as RecipeManifest;
  const projectDir = join(workDir, manifest.unit);
  const composeFiles: string[] = [];
  const envFiles = manifest.compose.environmentFiles ?? [];
  // Files Compose is pointed at on its command line (-f, --env-file) can live anywhere.
  const isConfig = (f: { hostPath: string }) =>
    manifest.compose.configFiles.includes(f.hostPath) || envFiles.includes(f.hostPath);
  const placed = new Map<string, string>();
  for (const f of manifest.compose.files) {
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
    await copyFile(join(recipeDir, f.stored), dest);
    placed.set(f.hostPath, dest);
  }
  // In the order the project used them: later files override earlier ones.
  for (const hostPath of manifest.compose.configFiles) {
    const dest = placed.get(hostPath);
    if (dest) composeFiles.push(dest);
  }
  const environmentFiles = envFiles.flatMap((f) => placed.get(f) ?? []);
  const redacted = manifest.containers
    .filter((c) => c.redactedEnv.length > 0)
    .map((c) => ({ container: c.name, vars: c.redactedEnv }));
  return { manifest, workDir, recipeDir, projectDir, composeFiles, environmentFiles, redacted };
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
    const kopiaEnv = kopia.env();
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(kopiaEnv)) if (v !== undefined && k !== 'KOPIA_PASSWORD') env[k] = v;
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
      kopiaEnv: env,
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
      containers: entry.usedBy.map((u) => u.container),
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
    return JSON.parse(await readFile(join(dir, 'hardlinks.json'), 'utf8')) as string[][];
  } catch {
    return [];
  }
}

/** The directory a restore script will write into right now (a volume's mountpoint, if it exists). */
export async function currentTarget(d: DataRestore): Promise<string | undefined> {
  if (d.entry.type === 'bind') return d.target;
  const res = await run(['docker', 'volume', 'inspect', '--format', '{{.Mountpoint}}', d.entry.name], {
    timeoutMs: 30_000,
  });
  return res.code === 0 ? res.stdout.trim() : undefined;
}

export async function targetHasData(d: DataRestore): Promise<boolean> {
  const t = await currentTarget(d);
  return t !== undefined && (await isNonEmpty(t));
}

/** Run one restore script (the same file a person would run), password only in its environment. */
export async function executeScript(
  d: DataRestore,
  password: string,
  onLine: (line: string) => void,
): Promise<{ safetyCopy: string | undefined }> {
  const res = await run(['bash', d.scriptPath], {
    env: { KOPIA_PASSWORD: password },
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
