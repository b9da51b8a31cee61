/**
 * Shared fixtures of the unit tests: a running container as the Docker adapter reports it, and the
 * plan options a backup run builds from the config — each test overrides only what it is about.
 */
import type { ContainerInfo } from '../../src/core/model.js';
import type { PlanOptions } from '../../src/core/plan.js';

/** A running standalone container `name` (id `id-<name>`, no mounts, no Compose labels). */
export function containerInfo(name: string, over: Partial<ContainerInfo> = {}): ContainerInfo {
  return {
    id: `id-${name}`,
    name,
    image: 'img',
    imageId: 'sha256:1',
    state: 'running',
    running: true,
    hasHealthcheck: false,
    stopTimeout: undefined,
    labels: {},
    mounts: [],
    composeProject: undefined,
    composeService: undefined,
    composeWorkingDir: undefined,
    composeConfigFiles: [],
    dependsOn: [],
    inspect: {},
    ...over,
  };
}

/** The defaults of a run (direct mode, 2 workers, keep 1 latest, zstd); `run` keys merge one by one. */
export function planOptions(
  over: Omit<Partial<PlanOptions>, 'run'> & { run?: Partial<PlanOptions['run']> } = {},
): PlanOptions {
  const { run, ...rest } = over;
  return {
    backupId: '2025-01-31T23-59-59Z',
    host: 'h',
    user: 'u',
    volumeMode: 'direct',
    parallelWorkers: 2,
    excludePatterns: [],
    stopTimeout: 10,
    dockerRootDir: '/var/lib/docker',
    repositoryPath: '/backup/repo',
    ...rest,
    run: {
      tarDeterministicMtime: false,
      taskTimeoutSec: 0,
      stallTimeoutSec: 300,
      startTimeoutSec: 60,
      retention: { keepLatest: 1, keepHourly: 0, keepDaily: 0, keepWeekly: 0, keepMonthly: 0, keepAnnual: 0 },
      compression: 'zstd',
      preBackupHook: undefined,
      postBackupHook: undefined,
      ...run,
    },
  };
}
