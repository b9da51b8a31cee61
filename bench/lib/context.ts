/** What every scenario gets: where to work, what to run, how big, and the shared cleanup. */
import type { Cleanup } from './cleanup.js';
import type { Figure } from './report.js';

export const GiB = 1024 ** 3;
export const MiB = 1024 ** 2;

export interface Sizes {
  name: 'full' | 'smoke';
  reps: number;
  unit: { files: number; bytes: number; dirs: number; changeFraction: number };
  scale: { units: number; containersPerUnit: number };
  memory: { bigBytes: number; bigFiles: number; smallBytes: number; smallFiles: number };
}

export const FULL: Sizes = {
  name: 'full',
  reps: 3,
  unit: { files: 10_000, bytes: GiB, dirs: 100, changeFraction: 0.01 },
  scale: { units: 100, containersPerUnit: 3 },
  memory: { bigBytes: 2 * GiB, bigFiles: 64, smallBytes: 16 * MiB, smallFiles: 16 },
};

export const SMOKE: Sizes = {
  name: 'smoke',
  reps: 1,
  unit: { files: 200, bytes: 4 * MiB, dirs: 10, changeFraction: 0.01 },
  scale: { units: 3, containersPerUnit: 3 },
  memory: { bigBytes: 8 * MiB, bigFiles: 8, smallBytes: 1 * MiB, smallFiles: 4 },
};

export interface BenchContext {
  /** The built CLI entry point (dist/main.js). */
  cli: string;
  /** Parent of every temporary directory the run makes. */
  tmpRoot: string;
  cleanup: Cleanup;
  log: (msg: string) => void;
  sizes: Sizes;
  image: string;
  /** stop_timeout in every kopi-docka config, and `docker stop -t` of the floor. */
  stopTimeout: number;
  /** kopi-docka's resolved parallel_workers: the raw baselines run as many kopia processes at once. */
  parallelWorkers: number;
}

export interface ScenarioResult {
  figures: Figure[];
  /** Every sample with its parts, for the JSON. */
  details: Record<string, unknown>;
}
