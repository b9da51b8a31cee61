/**
 * The recipe manifest (`manifest.json` in every recipe snapshot): a versioned format, written by the
 * backup and read back from the repository by restore — possibly years later, possibly written by an
 * older or newer kopi-docka. The schema is the type: what the reader returns has been checked, never
 * cast. Unknown fields (a newer writer of the same format may add some) are dropped; missing optional ones are what older
 * writers produced.
 */
import { z } from 'zod';
import { KopiDockaError, ExitCode } from '../errors.js';

/** The format number this version writes; readers accept it and every older one. */
export const RECIPE_MANIFEST_FORMAT = 1;

const sourceUse = z.object({
  container: z.string(),
  destination: z.string(),
  readOnly: z.boolean(),
});

const sidecarInfo = z.object({
  /** Directory inside the recipe holding the sidecar files. */
  dir: z.string(),
  xattrs: z.boolean(),
  acls: z.boolean(),
  hardLinkGroups: z.number(),
  notes: z.array(z.string()),
});

const dataSnapshot = z.object({
  key: z.string(),
  type: z.enum(['volume', 'bind']),
  name: z.string(),
  hostPath: z.string(),
  kopiaPath: z.string(),
  snapshotId: z.string(),
  format: z.enum(['dir', 'tar']),
  /** For tar snapshots: the single file inside the snapshot holding the stream. */
  streamName: z.string().optional(),
  isFile: z.boolean(),
  sizeBytes: z.number(),
  files: z.number(),
  usedBy: z.array(sourceUse),
  sidecar: sidecarInfo.optional(),
  /** What the run must tell about this source (e.g. why it was stored as a tar stream in direct mode). */
  notes: z.array(z.string()).optional(),
});

const stopRecord = z.object({
  container: z.string(),
  id: z.string(),
  /** Set for a container of another unit stopped for this unit's snapshot. */
  otherUnit: z.string().optional(),
  /** The stop timeout given to Docker (seconds). */
  timeoutSec: z.number(),
  /** How long the stop took (seconds, 0.1 s resolution). */
  seconds: z.number(),
  /** State.ExitCode after the stop; undefined when it could not be read or it was not running. */
  exitCode: z.number().optional(),
  /** Docker SIGKILLed it at the stop timeout (exit code 137): the application did not shut down cleanly. */
  forceKilled: z.boolean(),
});

const coverageEntry = z.object({
  container: z.string(),
  kind: z.string(),
  source: z.string(),
  destination: z.string(),
  status: z.enum(['backed-up', 'host-internal', 'not-protected']),
  reason: z.string().optional(),
});

const uncapturedSource = z.object({
  container: z.string(),
  source: z.string(),
  destination: z.string(),
  message: z.string(),
  hint: z.string(),
});

const recipeFile = z.object({
  /** Absolute path on the backed-up host. */
  hostPath: z.string(),
  /** Path inside the recipe snapshot. */
  stored: z.string(),
});

const containerRecipe = z.object({
  name: z.string(),
  id: z.string(),
  service: z.string().optional(),
  image: z.string(),
  imageId: z.string(),
  imageDigests: z.array(z.string()),
  state: z.string(),
  wasRunning: z.boolean(),
  inspectFile: z.string(),
  redactedEnv: z.array(z.string()),
  mounts: z.array(
    z.object({
      kind: z.string(),
      name: z.string().optional(),
      source: z.string(),
      destination: z.string(),
      readOnly: z.boolean(),
    }),
  ),
});

export const recipeManifestSchema = z.object({
  format: z.literal(RECIPE_MANIFEST_FORMAT),
  tool: z.object({ name: z.literal('kopi-docka'), version: z.string() }),
  unit: z.string().min(1),
  kind: z.enum(['stack', 'standalone']),
  backupId: z.string().min(1),
  host: z.string(),
  user: z.string(),
  createdAt: z.string(),
  volumeMode: z.string(),
  compose: z.object({
    workingDir: z.string().optional(),
    configFiles: z.array(z.string()),
    files: z.array(recipeFile),
    missing: z.array(z.string()),
    /**
     * Host paths of the other files the Compose files name (included Compose files, env files); each
     * is in `files` unless it was too large. Absent in recipes written before this field existed.
     */
    referencedFiles: z.array(z.string()).optional(),
    /** Host paths of the project's `--env-file`s (v2); absent in older recipes. */
    environmentFiles: z.array(z.string()).optional(),
  }),
  containers: z.array(containerRecipe),
  /** Every data snapshot this restore point must contain. */
  snapshots: z.array(dataSnapshot),
  coverage: z.array(coverageEntry),
  warnings: z.array(z.string()),
  /** How each container's stop went, in stop order (absent in recipes written before this field). */
  stops: z.array(stopRecord).optional(),
  /** Containers Docker had to SIGKILL at the stop timeout; absent in older recipes. */
  forceKilled: z.array(z.string()).optional(),
  /**
   * Volumes a restore must treat specially (absent in older recipes): `anonymous` ones, which
   * `compose up` does not reattach, and bind-type ones (driver_opts type none, o bind), whose data is
   * the host directory `device` rather than the volume's Mountpoint.
   */
  volumes: z
    .array(
      z.object({
        name: z.string(),
        anonymous: z.boolean(),
        device: z.string().optional(),
        usedBy: z.array(sourceUse),
      }),
    )
    .optional(),
  /** Data the unit used that this restore point does not hold (the unit was reported failed). */
  uncaptured: z.array(uncapturedSource).optional(),
});

export type RecipeManifest = z.infer<typeof recipeManifestSchema>;
export type DataSnapshot = z.infer<typeof dataSnapshot>;
export type SidecarInfo = z.infer<typeof sidecarInfo>;
export type StopRecord = z.infer<typeof stopRecord>;
export type RecipeFile = z.infer<typeof recipeFile>;

/** The hard-link groups sidecar (`hardlinks.json`): lists of paths that share one inode. */
export const hardLinkGroupsSchema = z.array(z.array(z.string()));

/**
 * Parse and check a manifest read back from a recipe snapshot.
 *
 * @param text the file's contents; @param where names it in the error (e.g. the snapshot and path).
 * @throws KopiDockaError (exit 1) naming `where` and the first fields that do not match: a recipe
 *   from a newer, incompatible format, or a damaged one, is never half-read.
 */
export function parseRecipeManifest(text: string, where: string): RecipeManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new KopiDockaError(`${where} is not valid JSON: ${(err as Error).message}`, {
      exitCode: ExitCode.FAILURE,
      hint: 'the recipe snapshot is damaged: pick another restore point (`kopi-docka restore --list`)',
    });
  }
  const format = (raw as { format?: unknown } | null)?.format;
  if (typeof format === 'number' && format > RECIPE_MANIFEST_FORMAT) {
    throw new KopiDockaError(
      `${where} has recipe format ${format}; this kopi-docka reads up to format ${RECIPE_MANIFEST_FORMAT}`,
      { exitCode: ExitCode.FAILURE, hint: 'restore with a newer kopi-docka (the one that wrote it)' },
    );
  }
  const r = recipeManifestSchema.safeParse(raw);
  if (!r.success) {
    const issues = r.error.issues
      .slice(0, 3)
      .map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`)
      .join('; ');
    throw new KopiDockaError(`${where} is not a recipe manifest kopi-docka can read: ${issues}`, {
      exitCode: ExitCode.FAILURE,
      hint: 'the recipe snapshot is damaged or not from kopi-docka: pick another restore point',
    });
  }
  return r.data;
}
