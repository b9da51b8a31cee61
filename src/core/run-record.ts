/** The record of one backup run (kept in the run history, printed by `backup --json`, sent by alerts). */

export type UnitStatus = 'ok' | 'failed' | 'skipped';

export interface UnitRecord {
  unit: string;
  status: UnitStatus;
  error?: string | undefined;
  /** Seconds the unit's containers were not running because of this run. */
  downtimeSec: number;
  bytes: number;
  snapshots: { type: string; name: string; id: string }[];
  warnings: string[];
}

export interface RunRecord {
  runId: string;
  backupId: string;
  host: string;
  startedAt: string;
  finishedAt: string;
  dryRun: false;
  interrupted?: string | undefined;
  units: UnitRecord[];
}
