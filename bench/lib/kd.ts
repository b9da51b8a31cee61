/**
 * kopi-docka as a user runs it: the built CLI (`node dist/main.js`), one private state directory,
 * config file, cache and filesystem repository per instance (never /var/lib/kopi-docka), `init` once.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Cleanup } from './cleanup.js';
import { KOPIA_BIN, clearKopiaCache } from './kopia.js';
import { exec, type ExecOptions, type ExecResult } from './proc.js';

export type VolumeMode = 'direct' | 'tar';

export interface KdInstance {
  dir: string;
  stateDir: string;
  repoPath: string;
  configPath: string;
  password: string;
  env: Record<string, string>;
  /** Removes the instance's directory (repository included) now; also registered with Cleanup. */
  remove: () => Promise<void>;
}

export interface KdOptions {
  cli: string;
  tmpRoot: string;
  cleanup: Cleanup;
  label: string;
  /** Omitted: the key is not written, so kopi-docka's default applies. */
  mode?: VolumeMode;
  stopTimeout: number;
  init?: boolean;
  /** `[backup] warm_pass`; omitted: not written (kopi-docka's default, `auto`). */
  warmPass?: 'auto' | 'always' | 'never';
}

export async function createKd(o: KdOptions): Promise<KdInstance> {
  const dir = await mkdtemp(path.join(o.tmpRoot, `kd-${o.label}-`));
  const remove = o.cleanup.add(`kopi-docka instance ${dir}`, () => rm(dir, { recursive: true, force: true }));
  const stateDir = path.join(dir, 'state');
  const cacheDir = path.join(dir, 'cache');
  const repoPath = path.join(dir, 'repo');
  await mkdir(stateDir, { recursive: true });
  await mkdir(cacheDir, { recursive: true });
  const password = randomBytes(18).toString('base64url');
  const ini = [
    '[kopia]',
    `repository_path = ${repoPath}`,
    `password = ${password}`,
    'compression = zstd',
    `cache_directory = ${cacheDir}`,
    '[backup]',
    `backup_base_path = ${path.join(dir, 'history')}`,
    `recovery_bundle_path = ${path.join(dir, 'recovery')}`,
    `stop_timeout = ${String(o.stopTimeout)}`,
    'start_timeout = 120',
    ...(o.mode ? [`volume_mode = ${o.mode}`] : []),
    ...(o.warmPass ? [`warm_pass = ${o.warmPass}`] : []),
    '',
  ].join('\n');
  const configPath = path.join(dir, 'kopi-docka.conf');
  await writeFile(configPath, ini, { mode: 0o600 });
  await chmod(configPath, 0o600);
  const inst: KdInstance = {
    dir,
    stateDir,
    repoPath,
    configPath,
    password,
    env: {
      KOPI_DOCKA_STATE_DIR: stateDir,
      KOPI_DOCKA_CONFIG: configPath,
      KOPI_DOCKA_KOPIA_BIN: KOPIA_BIN,
      KOPIA_CHECK_FOR_UPDATES: 'false',
      NO_COLOR: '1',
      HOME: dir,
    },
    remove,
  };
  if (o.init !== false) await kd(o.cli, inst, ['init']);
  return inst;
}

/** `node <cli> ...args` with the instance's environment; throws on a non-zero exit unless allowFail. */
export function kd(
  cli: string,
  inst: KdInstance,
  args: string[],
  opts: ExecOptions = {},
): Promise<ExecResult> {
  return exec([process.execPath, cli, ...args], { ...opts, env: { ...inst.env, ...opts.env } });
}

/** Parse the last JSON document kopi-docka printed on stdout (`--json`). */
export function parseJsonOut<T>(r: ExecResult): T {
  const s = r.stdout.trim();
  const i = s.indexOf('{');
  if (i < 0) throw new Error(`no JSON on stdout: ${s.slice(0, 300)}\nstderr: ${r.stderr.slice(-1000)}`);
  return JSON.parse(s.slice(i)) as T;
}

export interface ConfigShow {
  sections: Record<string, Record<string, { value: unknown; origin: string }>>;
}

/** Resolved `[backup]` values (parallel_workers 'auto' → N, the default volume_mode) via `config show`. */
export async function resolvedBackupConfig(
  cli: string,
  inst: KdInstance,
): Promise<{ parallelWorkers: number; volumeMode: string; volumeModeOrigin: string }> {
  const c = parseJsonOut<ConfigShow>(await kd(cli, inst, ['config', 'show', '--json']));
  const b = c.sections.backup ?? {};
  const pw = b.parallel_workers?.value;
  const vm = b.volume_mode;
  if (typeof pw !== 'number' || typeof vm?.value !== 'string') {
    throw new Error('config show --json: parallel_workers / volume_mode missing');
  }
  return { parallelWorkers: pw, volumeMode: vm.value, volumeModeOrigin: vm.origin };
}

/** Empty the Kopia cache of the instance (the Kopia config kopi-docka connected with, under its state dir). */
export async function clearKdKopiaCache(inst: KdInstance): Promise<void> {
  const dir = path.join(inst.stateDir, 'kopia');
  const configs = (await readdir(dir)).filter((f) => f.endsWith('.config'));
  if (configs.length !== 1)
    throw new Error(`expected one Kopia config in ${dir}, found ${configs.join(', ')}`);
  await clearKopiaCache(path.join(dir, configs[0] ?? ''), inst.password);
}
