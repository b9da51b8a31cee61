/**
 * The effective, validated configuration every command works from. Produced only by src/config/load.ts;
 * which INI key fills which field is declared in src/config/schema.ts.
 */
import type { NotificationSettings } from '../core/notification.js';
import type { DaemonSettings } from './keys-notifications.js';

import type { WarmPassMode } from '../core/warm.js';

import type { BackendSecrets, RepositoryBackend } from '../core/repository-backend.js';

export type VolumeMode = 'direct' | 'tar';
export type LogLevel = 'debug' | 'info' | 'warning' | 'error';
/** Where an effective value came from (shown by `config show`). */
export type Origin = 'file' | 'env' | 'flag' | 'default' | 'embedded-default';

export interface KopiaSettings {
  /** Absolute path of the filesystem repository; '' for any other backend (see `backend`). */
  repositoryPath: string;
  /**
   * Where the repository lives (`[kopia] backend` and its keys; src/config/keys-repository.ts). Always
   * set by the loader; absent only in settings built by hand (tests): filesystem at repositoryPath.
   * Read it through `backendOf(settings)`.
   */
  backend?: RepositoryBackend;
  /** Backend credentials (environment over credentials_file). Only for Kopia's connect/create env. */
  backendSecrets?: BackendSecrets;
  /** `credentials_file`, absolute, when set. */
  credentialsFile?: string | undefined;
  /** The repository password. Never logged, never put in argv: only into KOPIA_PASSWORD of a child. */
  password: string;
  /** Set when the password was read from a file (recommended over an inline password). */
  passwordFile: string | undefined;
  /** Kopia compression algorithm applied by policy (never lz4). */
  compression: string;
  /** Repository encryption, used only at `repository create`. */
  encryption: string;
  cacheDirectory: string;
  /** Absolute path of kopi-docka's own Kopia config file (never the user's default profile). */
  kopiaConfigFile: string;
  /** Identity recorded on every snapshot: <username>@<hostname>. Stable, lower-case. */
  hostname: string;
  username: string;
  /** The kopia executable (KOPI_DOCKA_KOPIA_BIN, else `kopia` on PATH). */
  binary: string;
}

export interface BackupSettings {
  backupBasePath: string;
  parallelWorkers: number;
  /** How `parallel_workers` was given: a number, or "auto" resolved by the documented heuristic. */
  parallelWorkersAuto: boolean;
  /** Seconds to wait for a graceful stop (a container's own longer StopTimeout wins). */
  stopTimeout: number;
  /** Seconds to wait for containers to be running/healthy after the snapshot. */
  startTimeout: number;
  /** Seconds any single Kopia/tar call may take while containers are down; 0 = no limit (the default; legacy task_timeout). */
  taskTimeout: number;
  /**
   * Seconds a Kopia/tar call may go without progress (no bytes, no files) before it is aborted, the
   * unit's containers restarted and the unit failed with that reason; 0 = off. Default 300.
   */
  stallTimeout: number;
  excludePatterns: string[];
  volumeMode: VolumeMode;
  tarDeterministicMtime: boolean;
  /** `auto` | `always` | `never`: snapshot each source while the unit runs, before the cold snapshot (core/warm.ts). */
  warmPass: WarmPassMode;
  updateRecoveryBundle: boolean;
  recoveryBundlePath: string;
  recoveryBundleRetention: number;
  /** Commands (argv, split like a shell word list but never run through a shell). */
  preBackupHook: string[] | undefined;
  postBackupHook: string[] | undefined;
}

export interface RetentionSettings {
  latest: number;
  hourly: number;
  daily: number;
  weekly: number;
  monthly: number;
  yearly: number;
}

export interface Config {
  /** The file this came from; undefined when the embedded default is in use. */
  file: string | undefined;
  embeddedDefault: boolean;
  /** kopi-docka's state directory (locks, journal, history, generated password). */
  stateDir: string;
  kopia: KopiaSettings;
  backup: BackupSettings;
  retention: RetentionSettings;
  logging: { level: LogLevel };
  /** `[notifications]` (src/config/keys-notifications.ts). */
  notifications: NotificationSettings;
  daemon: DaemonSettings;
  /** "section.key" → where the value came from. */
  origins: Record<string, Origin>;
  /** Non-fatal findings (deprecated keys, loose password permissions) to print once. */
  warnings: string[];
}
