/**
 * Kopia run "by hand": the baselines. A fresh filesystem repository with its own config file, cache
 * and logs, the global compression policy set the way kopi-docka sets it (`policy set --global
 * --compression=zstd` at `init`, see Kopia.ensureRepository), and otherwise Kopia's defaults — the
 * commands a person would type.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { exec, shellQuote, type ExecResult } from './proc.js';

export const KOPIA_BIN: string = process.env.KOPI_DOCKA_KOPIA_BIN || 'kopia';

/** `kopia cache clear` for any Kopia config file (e.g. the one kopi-docka connected with). */
export async function clearKopiaCache(configFile: string, password: string): Promise<void> {
  await exec([KOPIA_BIN, 'cache', 'clear', `--config-file=${configFile}`, '--disable-file-logging'], {
    env: { KOPIA_PASSWORD: password, KOPIA_CHECK_FOR_UPDATES: 'false' },
  });
}

export interface RawSnapshot {
  id: string;
  path: string;
  ms: number;
}

export class RawKopia {
  readonly configFile: string;
  readonly cacheDir: string;
  readonly logDir: string;
  readonly repoPath: string;

  constructor(
    readonly dir: string,
    private readonly password: string,
    private readonly compression: string,
  ) {
    this.configFile = path.join(dir, 'kopia.config');
    this.cacheDir = path.join(dir, 'cache');
    this.logDir = path.join(dir, 'logs');
    this.repoPath = path.join(dir, 'repo');
  }

  env(): Record<string, string> {
    return { KOPIA_PASSWORD: this.password, KOPIA_CHECK_FOR_UPDATES: 'false' };
  }

  argv(...args: string[]): string[] {
    return [KOPIA_BIN, ...args, `--config-file=${this.configFile}`, `--log-dir=${this.logDir}`];
  }

  run(args: string[]): Promise<ExecResult> {
    return exec(this.argv(...args), { env: this.env() });
  }

  async create(): Promise<void> {
    await mkdir(this.repoPath, { recursive: true });
    await this.run([
      'repository',
      'create',
      'filesystem',
      `--path=${this.repoPath}`,
      `--cache-directory=${this.cacheDir}`,
      '--override-hostname=kdb-raw',
      '--override-username=bench',
      '--no-check-for-updates',
    ]);
    await this.run(['policy', 'set', '--global', `--compression=${this.compression}`]);
  }

  /** `kopia snapshot create <dir>` (plus --json to learn the ID; it does not change the work done). */
  async snapshotDir(dir: string): Promise<RawSnapshot> {
    const r = await this.run(['snapshot', 'create', '--json', dir]);
    return { id: parseId(r.stdout), path: dir, ms: r.ms };
  }

  /** `tar … -C <dir> . | kopia snapshot create --stdin-file=<name> <dir>`, through bash's pipe. */
  async snapshotTar(dir: string, name: string): Promise<RawSnapshot> {
    const tar = [
      'tar',
      '-cf',
      '-',
      '--numeric-owner',
      '--xattrs',
      '--xattrs-include=*',
      '--acls',
      '--sort=name',
      '-C',
      dir,
      '.',
    ];
    const kopia = this.argv('snapshot', 'create', '--json', `--stdin-file=${name}`, dir);
    const script = `set -euo pipefail; ${tar.map(shellQuote).join(' ')} | ${kopia.map(shellQuote).join(' ')}`;
    const r = await exec(['bash', '-c', script], { env: this.env() });
    return { id: parseId(r.stdout), path: dir, ms: r.ms };
  }

  /** Empty Kopia's local cache (restores are measured cold, as on a host restoring after a loss). */
  async clearCache(): Promise<void> {
    await this.run(['cache', 'clear']);
  }

  /** `kopia snapshot restore <id> <target>`. */
  async restore(id: string, target: string): Promise<ExecResult> {
    return this.run(['snapshot', 'restore', id, target]);
  }
}

function parseId(stdout: string): string {
  const start = stdout.indexOf('{');
  const m = JSON.parse(stdout.slice(start)) as { id?: unknown; incomplete?: unknown };
  if (typeof m.id !== 'string') throw new Error(`kopia snapshot create: no id in ${stdout.slice(0, 300)}`);
  if (m.incomplete) throw new Error(`kopia snapshot create: incomplete (${JSON.stringify(m.incomplete)})`);
  return m.id;
}
