/** Types of kopia's JSON output and of the adapter's options (reference §2.3, §4.1, §6.7, §7.1). */
import type { RunOptions, RunResult } from '../process.js';

export const MIN_KOPIA_VERSION = '0.23.0';
/** Policy target meaning `--global`. */
export const GLOBAL_POLICY = '(global)';

// ---------------------------------------------------------------------------------------------------
// Types of kopia's JSON output (reference §2.3, §4.1, §6.7, §7.1). Optional where kopia may omit.

export interface SnapshotSource {
  host: string;
  userName: string;
  path: string;
}

export interface DirSummary {
  size: number;
  files: number;
  symlinks: number;
  dirs: number;
  maxTime?: string;
  incomplete?: string;
  numFailed: number;
  numIgnoredErrors?: number;
  errors?: { path: string; error: string }[];
}

export interface SnapshotRootEntry {
  name: string;
  /** 'd' directory, 'f' file, 's' symlink. */
  type: string;
  mode: string;
  /** Size of the root inode itself (omitted by kopia when 0); the data size is summ.size. */
  size?: number;
  mtime: string;
  /** Omitted by kopia when 0. */
  uid?: number;
  gid?: number;
  /** Root object ID: `kopia show <obj>/<name>` reads a child. */
  obj: string;
  summ?: DirSummary;
}

export interface SnapshotStats {
  totalSize?: number;
  excludedTotalSize?: number;
  fileCount?: number;
  cachedFiles?: number;
  nonCachedFiles?: number;
  dirCount?: number;
  excludedFileCount?: number;
  excludedDirCount?: number;
  ignoredErrorCount?: number;
  errorCount?: number;
}

export interface SnapshotManifest {
  /** 32-hex manifest ID (what delete/restore take). */
  id: string;
  source: SnapshotSource;
  description: string;
  /** RFC3339 with nanoseconds, UTC. Kept as the original string (Date would truncate to ms). */
  startTime: string;
  endTime: string;
  /** 'checkpoint' | 'canceled' | 'limit reached'; absent when the snapshot is complete. */
  incomplete?: string;
  rootEntry: SnapshotRootEntry;
  /** Raw kopia tags, keys prefixed with `tag:`; use tagsOf() for the plain ones. */
  tags?: Record<string, string>;
  pins?: string[];
  /** Only in `snapshot list`; empty/absent means the next expiry deletes it. */
  retentionReason?: string[];
  /** Only in `snapshot list` (create omits it unless --json-verbose). */
  stats?: SnapshotStats;
}

export interface RepoStatus {
  configFile: string;
  uniqueIDHex?: string;
  clientOptions: {
    hostname: string;
    username: string;
    readonly?: boolean;
    description?: string;
    enableActions?: boolean;
    formatBlobCacheDuration?: number;
  };
  storage?: { type: string; config: Record<string, unknown> };
  volume?: { capacity?: number; available?: number };
  contentFormat?: { hash?: string; encryption?: string; version?: number; [k: string]: unknown };
  objectFormat?: { splitter?: string };
  blobRetention?: { retentionMode?: string; retentionPeriod?: number };
}

/** A policy as kopia prints it. Every key is optional (v0.22.0 omitted empty sections, §9). */
export interface KopiaPolicy {
  retention?: {
    keepLatest?: number;
    keepHourly?: number;
    keepDaily?: number;
    keepWeekly?: number;
    keepMonthly?: number;
    keepAnnual?: number;
    ignoreIdenticalSnapshots?: boolean;
  };
  files?: {
    ignore?: string[];
    noParentIgnore?: boolean;
    ignoreDotFiles?: string[];
    noParentDotFiles?: boolean;
    ignoreCacheDirs?: boolean;
    maxFileSize?: number;
    oneFileSystem?: boolean;
  };
  errorHandling?: {
    ignoreFileErrors?: boolean;
    ignoreDirectoryErrors?: boolean;
    ignoreUnknownTypes?: boolean;
  };
  scheduling?: {
    intervalSeconds?: number;
    timeOfDay?: { hour: number; min: number }[];
    cron?: string[];
    manual?: boolean;
    runMissed?: boolean;
  };
  compression?: {
    compressorName?: string;
    onlyCompress?: string[];
    neverCompress?: string[];
    minSize?: number;
    maxSize?: number;
  };
  metadataCompression?: { compressorName?: string };
  splitter?: { algorithm?: string };
  actions?: Record<string, unknown>;
  osSnapshots?: Record<string, unknown>;
  logging?: Record<string, unknown>;
  upload?: { maxParallelSnapshots?: number; maxParallelFileReads?: number; parallelUploadAboveSize?: number };
  noParent?: boolean;
}

/** An entry of `policy list --json`: a policy that is *defined* for exactly this target. */
export interface DefinedPolicy extends KopiaPolicy {
  id: string;
  /** All empty strings for the global policy; path "" for user@host and @host policies. */
  target: SnapshotSource;
}

export interface MaintenanceInfo {
  owner: string;
  quick?: { enabled?: boolean; interval?: number };
  full?: { enabled?: boolean; interval?: number };
  schedule?: {
    nextFullMaintenance?: string;
    nextQuickMaintenance?: string;
    runs?: Record<string, { start: string; end: string; success?: boolean; error?: string }[]> | null;
  };
  [k: string]: unknown;
}

export interface DesiredPolicy {
  keepLatest?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepAnnual?: number;
  compression?: string;
  /** The exact set of gitignore-style patterns (kopia stores them as a sorted set). */
  ignore?: string[];
}

export interface CallOptions {
  /** Kill kopia after this many ms (undefined/0 = no limit). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface SnapshotCreateOptions extends CallOptions {
  /** `user@host:/abs/path`, the identity the snapshot is recorded under. */
  source: string;
  tags: Record<string, string>;
  description?: string;
  /**
   * Called with every stderr line (kopia's progress line, refreshed every couple of seconds, and its
   * log lines). Giving it switches kopia's progress output on.
   */
  onProgress?: (line: string) => void;
  /**
   * The stall watchdog (ms; 0/undefined = off): Kopia's progress counters (hashed, cached, uploaded)
   * not moving for this long stops the call (reason 'stalled'). Switches the progress line on.
   */
  stallTimeoutMs?: number | undefined;
}

export interface RestoreOptions extends CallOptions {
  skipOwners?: boolean;
  skipPermissions?: boolean;
  skipTimes?: boolean;
  /** Remove files in the target that are not in the snapshot (v0.21+). */
  deleteExtra?: boolean;
  /** Kopia's default is true (chown/chmod failures ignored); pass false for exact restores as root. */
  ignorePermissionErrors?: boolean;
}

export type EnsureResult = 'created' | 'connected' | 'already-connected';

/** How a kopia call failed, as far as we can tell from its output. */
export type KopiaFailure =
  | 'wrong-password'
  | 'not-connected'
  | 'not-initialized'
  | 'storage-missing'
  | 'storage-full'
  | 'not-owner'
  | 'not-found'
  | 'snapshot-failed'
  | 'nothing-saved'
  | 'unexpected-output'
  | 'timeout'
  | 'aborted'
  | 'killed'
  /** Stopped by the stall watchdog: no progress for stall_timeout. */
  | 'stalled'
  | 'failed';

/** The runner the adapter uses; tests substitute a fake one (never in integration tests). */
export type KopiaRunner = (argv: readonly string[], opts: RunOptions) => Promise<RunResult>;

export interface KopiaOptions {
  /** Directory for kopia's own log files; default `<cacheDirectory>/logs`; false = no file logs. */
  logDir?: string | false;
  /** Debug sink for the argv of each call (argv never contains the password). */
  debug?: (msg: string) => void;
  runner?: KopiaRunner;
}
