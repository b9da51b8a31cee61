/**
 * One disaster-recovery bundle for the configured repository: what `kopi-docka disaster-recovery`,
 * `backup --update-recovery` and `[backup] update_recovery_bundle = true` write (once per run, never per
 * unit). The format, encryption and rotation are src/core/recovery-bundle.ts and
 * src/pipeline/recovery-bundle.ts; this module gathers the contents:
 *
 * - kopia-repository.json: the typed backend (every non-secret parameter) and the identifying fields of
 *   `kopia repository status --json`;
 * - kopi-docka.conf: the config file as it is on disk (the embedded default: an equivalent file);
 * - kopia-password.txt: the repository password;
 * - backup-status.json: every unit of this host (user@host) with its newest complete restore point and
 *   sizes, from `kopia snapshot list --json --all` grouped by `groupRestorePoints`.
 *
 * Kopia commands followed: `kopia repository status --json`, `kopia snapshot list --json --all`.
 */
import { readFile } from 'node:fs/promises';
import type { Kopia } from '../adapters/kopia.js';
import type { Config } from '../config/types.js';
import { groupRestorePoints, type RestorePoint } from '../core/restore-points.js';
import type { Logger } from '../core/log.js';
import { RepositoryError, errorMessage } from '../errors.js';
import { writeRecoveryBundle, type RecoveryBundleResult } from './recovery-bundle.js';

export const BACKUP_STATUS_FORMAT = 'kopi-docka-backup-status/1';

/** backup-status.json. Sizes in bytes; times ISO 8601 UTC (Kopia's startTime). */
export interface BackupStatus {
  format: typeof BACKUP_STATUS_FORMAT;
  createdAt: string;
  /** `user@host` whose restore points these are. */
  identity: string;
  repository: string;
  units: {
    unit: string;
    /** Restore points of the unit in the repository (complete or not). */
    restorePoints: number;
    /** The newest complete restore point; undefined when none is complete. */
    latestComplete?: {
      backupId: string;
      time: string;
      sizeBytes: number;
      snapshots: number;
      sources: { type: string; name: string; sizeBytes: number }[];
    };
    /** The newest point when it is not complete, with why. */
    newestIncomplete?: { backupId: string; time: string; problems: string[] };
  }[];
}

/** The units, their newest complete restore point and sizes (pure, from grouped restore points). */
export function backupStatus(
  points: readonly RestorePoint[],
  meta: { now: Date; identity: string; repository: string },
): BackupStatus {
  const byUnit = new Map<string, RestorePoint[]>();
  for (const p of points) byUnit.set(p.unit, [...(byUnit.get(p.unit) ?? []), p]);
  const units = [...byUnit.keys()].sort().map((unit) => {
    const list = [...(byUnit.get(unit) ?? [])].sort((a, b) => a.backupId.localeCompare(b.backupId));
    const complete = list.filter((p) => p.complete);
    const latest = complete[complete.length - 1];
    const newest = list[list.length - 1];
    return {
      unit,
      restorePoints: list.length,
      ...(latest
        ? {
            latestComplete: {
              backupId: latest.backupId,
              time: latest.time,
              sizeBytes: latest.sizeBytes,
              snapshots: latest.data.length + (latest.recipe ? 1 : 0),
              sources: latest.data.map((d) => ({ type: d.type, name: d.name, sizeBytes: d.sizeBytes })),
            },
          }
        : {}),
      ...(newest && !newest.complete
        ? { newestIncomplete: { backupId: newest.backupId, time: newest.time, problems: newest.problems } }
        : {}),
    };
  });
  return {
    format: BACKUP_STATUS_FORMAT,
    createdAt: meta.now.toISOString(),
    identity: meta.identity,
    repository: meta.repository,
    units,
  };
}

/** A config file equivalent to the embedded default (no file on disk), for the bundle. */
function embeddedConfigText(cfg: Config): string {
  return [
    '# kopi-docka ran without a config file (the embedded default); this is its equivalent.',
    '[kopia]',
    `repository_path = ${cfg.kopia.repositoryPath}`,
    ...(cfg.kopia.passwordFile ? [`password_file = ${cfg.kopia.passwordFile}`] : []),
    `hostname = ${cfg.kopia.hostname}`,
    `username = ${cfg.kopia.username}`,
    '',
  ].join('\n');
}

export interface CreateBundleOptions {
  /** Directory for the bundle (default `[backup] recovery_bundle_path`). */
  outputDir?: string | undefined;
  now?: Date;
}

/**
 * Write one bundle for the configured repository and rotate the directory to
 * `[backup] recovery_bundle_retention` bundles.
 *
 * @returns the files written (absolute paths) and the names rotation removed. The passphrase is only
 *   in `<bundle>.PASSWORD` (0600): callers print its path, never its content.
 * @throws RepositoryError when Kopia is not connected to the configured repository (a bundle for
 *   another repository would send a recovery to the wrong place); KopiaError; RecoveryBundleError;
 *   ProcessError from tar/openssl; fs errors.
 */
export async function createRecoveryBundle(
  cfg: Config,
  kopia: Kopia,
  opts: CreateBundleOptions = {},
): Promise<RecoveryBundleResult> {
  const now = opts.now ?? new Date();
  const st = await kopia.status();
  if (!st) {
    throw new RepositoryError(`not connected to the repository ${kopia.repositoryLabel}`, {
      hint: 'run `kopi-docka init` first',
    });
  }
  const check = await kopia.connectionCheck(st);
  if (check.state !== 'same') {
    throw new RepositoryError(`no recovery bundle written: ${check.message}`, {
      hint: 'run `kopi-docka init` to connect to the configured repository',
    });
  }
  const points = groupRestorePoints(await kopia.snapshotList({ all: true }), { host: cfg.kopia.hostname });
  const status = backupStatus(
    points.filter((p) => p.user === cfg.kopia.username),
    { now, identity: kopia.identity, repository: kopia.repositoryLabel },
  );
  const configText = cfg.file ? await readFile(cfg.file, 'utf8') : embeddedConfigText(cfg);
  return writeRecoveryBundle({
    outputDir: opts.outputDir ?? cfg.backup.recoveryBundlePath,
    configText,
    // The embedded default has no file: recover.sh puts the equivalent at the first search path.
    configPath: cfg.file ?? '/etc/kopi-docka.conf',
    backend: kopia.backend,
    ...(cfg.kopia.backendSecrets ? { backendSecrets: cfg.kopia.backendSecrets } : {}),
    passwordOfRepository: cfg.kopia.password,
    ...(cfg.kopia.passwordFile ? { passwordFile: cfg.kopia.passwordFile } : {}),
    kopia: {
      configFile: kopia.configFile,
      cacheDirectory: kopia.kopiaCacheDirectory,
      hostname: cfg.kopia.hostname,
      username: cfg.kopia.username,
    },
    repositoryStatus: st,
    status,
    retention: cfg.backup.recoveryBundleRetention,
    now,
  });
}

/**
 * The end of a backup run: one bundle when `--update-recovery` or `[backup] update_recovery_bundle`
 * asks for it (`requested` undefined: the config decides). Never throws: a bundle that cannot be
 * written is logged as an error (the backups themselves are done); the passphrase's file is named,
 * never its content.
 *
 * @returns the bundle written, or undefined (not asked, or failed).
 */
export async function updateRecoveryBundleAfterRun(
  cfg: Config,
  kopia: Kopia,
  log: Logger,
  requested: boolean | undefined,
): Promise<RecoveryBundleResult | undefined> {
  if (!(requested ?? cfg.backup.updateRecoveryBundle)) return undefined;
  try {
    const r = await createRecoveryBundle(cfg, kopia);
    log.info(
      `recovery bundle written: ${r.bundlePath} (passphrase in ${r.passwordPath}: move it off this host; README: ${r.readmePath})` +
        (r.removed.length ? `; rotated out ${r.removed.length} old file(s)` : ''),
    );
    return r;
  } catch (err) {
    log.error(`recovery bundle NOT written: ${errorMessage(err)}`);
    return undefined;
  }
}
