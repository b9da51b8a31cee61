/**
 * The recipe of a unit: what is needed to recreate it. Compose files, the project files next to them
 * and the files the Compose files name (`include:`d files, env files — also in subdirectories), keeping
 * their layout relative to the working dir so relative paths and bind mounts line up on restore; the
 * redacted `docker inspect` of each container, the direct-mode sidecars, and manifest.json.
 */
import { copyFile, lstat, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative } from 'node:path';
import type { ContainerInfo } from '../core/model.js';
import type { CoverageEntry, UnitPlan } from '../core/plan.js';
import { redactInspect, redactedEnvNames } from '../core/redact.js';
import { escapeSegment } from '../core/sources.js';
import type { RecipeFile, RecipeManifest } from '../core/recipe-manifest.js';

export type { RecipeFile, RecipeManifest };

/** Project files larger than this are data, not recipe. */
const MAX_PROJECT_FILE = 10 * 1024 * 1024;
const MAX_PROJECT_FILES = 500;

function storedPathFor(hostPath: string, workingDir: string | undefined): string {
  if (workingDir) {
    const rel = relative(workingDir, hostPath);
    if (rel && !rel.startsWith('..') && !isAbsolute(rel)) return `project/${rel}`;
  }
  return `external/${escapeSegment(hostPath.replace(/^\/+/, ''))}`;
}

/**
 * Copy compose files, the files they name (plan.recipe.referencedFiles) and the regular files at the
 * top of the working dir into `dir/project/` (those outside the working dir into `dir/external/`).
 * Other directories under the working dir are data (bind mounts), not recipe. A file that is gone
 * since discovery is skipped (discovery reported what was missing then).
 *
 * @returns the files copied (host path → stored path) and, as coverage entries, those left out for
 *   being larger than 10 MiB or beyond 500 files.
 */
export async function stageProjectFiles(
  dir: string,
  plan: UnitPlan,
): Promise<{ files: RecipeFile[]; skipped: CoverageEntry[] }> {
  const files: RecipeFile[] = [];
  const skipped: CoverageEntry[] = [];
  const seen = new Set<string>();
  const add = async (hostPath: string) => {
    if (seen.has(hostPath)) return;
    seen.add(hostPath);
    const stored = storedPathFor(hostPath, plan.recipe.workingDir);
    await mkdir(dirname(join(dir, stored)), { recursive: true, mode: 0o700 });
    await copyFile(hostPath, join(dir, stored));
    files.push({ hostPath, stored });
  };
  // Top-level files are taken only as regular files; a file a Compose file names explicitly is taken
  // through a symlink too (a `.env` linked to a shared one is common).
  const addIfSmall = async (p: string, follow: boolean): Promise<void> => {
    if (seen.has(p)) return;
    const st = await (follow ? stat(p) : lstat(p)).catch(() => undefined);
    if (!st?.isFile()) return;
    if (st.size > MAX_PROJECT_FILE || files.length >= MAX_PROJECT_FILES) {
      skipped.push({
        container: '-',
        kind: 'project-file',
        source: p,
        destination: '-',
        status: 'not-protected',
        reason: st.size > MAX_PROJECT_FILE ? 'larger than 10 MiB' : 'too many project files',
      });
      return;
    }
    await add(p);
  };
  for (const f of plan.recipe.composeFiles) {
    if (!plan.recipe.missingFiles.includes(f)) await add(f);
  }
  // Files the Compose files name (included files, env files), wherever they are: without them
  // `compose up` of the restored project fails or comes up with another configuration.
  for (const f of plan.recipe.referencedFiles) await addIfSmall(f, true);
  const wd = plan.recipe.workingDir;
  if (wd) {
    let names: string[] = [];
    try {
      names = (await readdir(wd)).sort();
    } catch {
      /* the working dir is reported missing through missingFiles/warnings */
    }
    for (const name of names) await addIfSmall(join(wd, name), false);
  }
  return { files, skipped };
}

export async function prepareRecipeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true, mode: 0o700 });
}

export async function writeInspects(
  dir: string,
  containers: ContainerInfo[],
  imageDigests: Map<string, string[]>,
): Promise<RecipeManifest['containers']> {
  await mkdir(join(dir, 'inspect'), { recursive: true, mode: 0o700 });
  const out: RecipeManifest['containers'] = [];
  for (const c of containers) {
    const redacted = redactInspect(c.inspect);
    const inspectFile = `inspect/${escapeSegment(c.name)}_inspect.json`;
    await writeFile(join(dir, inspectFile), JSON.stringify(redacted, null, 2), { mode: 0o600 });
    out.push({
      name: c.name,
      id: c.id,
      service: c.composeService,
      image: c.image,
      imageId: c.imageId,
      imageDigests: imageDigests.get(c.imageId) ?? [],
      state: c.state,
      wasRunning: c.running,
      inspectFile,
      redactedEnv: redactedEnvNames(redacted),
      mounts: c.mounts.map((m) => ({
        kind: m.kind,
        name: m.name,
        source: m.source,
        destination: m.destination,
        readOnly: m.readOnly,
      })),
    });
  }
  return out;
}

export async function writeManifest(dir: string, manifest: RecipeManifest): Promise<void> {
  await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest, null, 2), { mode: 0o600 });
}
