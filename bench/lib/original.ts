/**
 * The original kopi-docka (Python, from PyPI) as its users run it, for the side-by-side figure:
 * installed once into a virtualenv cached under ~/.cache/kopi-docka/bench/, one private JSON config,
 * Kopia config (its `~/.config/kopia/repository-<profile>.config`, so HOME points into the instance),
 * Kopia cache and filesystem repository per instance, `advanced repo init` once.
 *
 * The version is pinned in scripts/versions.env (ORIGINAL_KOPI_DOCKA_VERSION). Its config format and
 * keys: ../shared/reference/upstream-kopi-docka.md §2.2 (the template kopi_docka/templates/
 * config_template.json of that version).
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Cleanup } from './cleanup.js';
import { KOPIA_BIN } from './kopia.js';
import { exec, type ExecOptions, type ExecResult } from './proc.js';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** ORIGINAL_KOPI_DOCKA_VERSION from scripts/versions.env (plain KEY=VALUE lines). */
export function originalVersion(): string {
  const text = readFileSync(path.join(REPO_ROOT, 'scripts', 'versions.env'), 'utf8');
  const v = /^ORIGINAL_KOPI_DOCKA_VERSION=(\S+)$/m.exec(text)?.[1];
  if (!v) throw new Error('scripts/versions.env has no ORIGINAL_KOPI_DOCKA_VERSION');
  return v;
}

/**
 * The `kopi-docka` entry point of a virtualenv holding the pinned version, created on first use
 * (`python3 -m venv` + `pip install kopi-docka==V`, ~30 s; PyPI must be reachable). A venv cannot be
 * moved (its scripts name its path), so it is made in place and a marker written last tells a
 * finished install from an interrupted one, which is removed and made again.
 * @throws when python3 cannot make a venv (Debian: python3-venv, which scripts/provision.sh
 *   installs), when pip fails, or when the installed tool reports another version.
 */
export async function ensureOriginal(log: (msg: string) => void): Promise<string> {
  const version = originalVersion();
  const venv = path.join(os.homedir(), '.cache', 'kopi-docka', 'bench', `kopi-docka-${version}`);
  const bin = path.join(venv, 'bin', 'kopi-docka');
  const marker = path.join(venv, '.installed');
  if (existsSync(marker)) return bin;
  await rm(venv, { recursive: true, force: true });
  await mkdir(path.dirname(venv), { recursive: true });
  log(`original kopi-docka ${version}: creating a virtualenv and installing it from PyPI…`);
  try {
    await exec(['python3', '-m', 'venv', venv]).catch((err: unknown) => {
      throw new Error(
        `python3 -m venv failed (${err instanceof Error ? err.message : String(err)}): run \`bash scripts/provision.sh\` (installs python3-venv)`,
      );
    });
    await exec(
      [
        path.join(venv, 'bin', 'pip'),
        'install',
        '--disable-pip-version-check',
        '-q',
        `kopi-docka==${version}`,
      ],
      { timeoutMs: 10 * 60_000 },
    );
    // Asked of the package, not of the tool: `kopi-docka version` run as root without a config
    // writes a template to /etc/kopi-docka.json.
    const v = await exec([
      path.join(venv, 'bin', 'python'),
      '-c',
      "import importlib.metadata as m; print(m.version('kopi-docka'))",
    ]);
    if (v.stdout.trim() !== version)
      throw new Error(`${venv}: expected kopi-docka ${version}, pip installed ${v.stdout.trim()}`);
  } catch (err) {
    await rm(venv, { recursive: true, force: true });
    throw err;
  }
  await writeFile(marker, `${version}\n`);
  return bin;
}

export interface OriginalInstance {
  dir: string;
  configPath: string;
  env: Record<string, string>;
  remove: () => Promise<void>;
}

/**
 * A fresh instance with a new filesystem repository (`advanced repo init`), settings matched to
 * kopi-docka's bench instances: same stop timeout, start timeout 120 s, zstd, the same retention
 * numbers, notifications and missed-backup alerts off (no network), no recovery bundle.
 */
export async function createOriginal(o: {
  bin: string;
  tmpRoot: string;
  cleanup: Cleanup;
  label: string;
  stopTimeout: number;
}): Promise<OriginalInstance> {
  const dir = await mkdtemp(path.join(o.tmpRoot, `orig-${o.label}-`));
  const remove = o.cleanup.add(`original kopi-docka instance ${dir}`, () =>
    rm(dir, { recursive: true, force: true }),
  );
  const home = path.join(dir, 'home');
  await mkdir(home, { recursive: true });
  const config = {
    version: originalVersion(),
    kopia: {
      kopia_params: `filesystem --path ${path.join(dir, 'repo')}`,
      profile: 'kdbench',
      password: randomBytes(18).toString('base64url'),
      password_file: null,
      compression: 'zstd',
      encryption: 'AES256-GCM-HMAC-SHA256',
      cache_directory: path.join(dir, 'cache'),
      cache_size_mb: 500,
    },
    backup: {
      base_path: path.join(dir, 'base'),
      backup_scope: 'standard',
      stop_timeout: o.stopTimeout,
      start_timeout: 120,
      update_recovery_bundle: false,
      recovery_bundle_path: path.join(dir, 'recovery'),
      recovery_bundle_retention: 3,
      exclude_patterns: [],
      hooks: { pre_backup: null, post_backup: null },
    },
    retention: { latest: 10, hourly: 0, daily: 7, weekly: 4, monthly: 12, annual: 3 },
    notifications: { enabled: false, preflight_check: true },
    alerting: { missed_backup: { enabled: false, max_age_hours: 26, per_unit: {} } },
  };
  const configPath = path.join(dir, 'config.json');
  await writeFile(configPath, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  await chmod(configPath, 0o600);
  // It runs `kopia` from PATH: put the pinned one first.
  const kopiaDir = path.isAbsolute(KOPIA_BIN) ? path.dirname(KOPIA_BIN) : undefined;
  const inst: OriginalInstance = {
    dir,
    configPath,
    env: {
      HOME: home,
      KOPIA_CHECK_FOR_UPDATES: 'false',
      NO_COLOR: '1',
      TERM: 'dumb',
      COLUMNS: '200',
      PATH: [kopiaDir, process.env.PATH].filter(Boolean).join(':'),
    },
    remove,
  };
  const r = await original(o.bin, inst, ['advanced', 'repo', 'init'], { allowFail: true });
  if (r.code !== 0 || !/initiali[sz]ed successfully/i.test(r.stdout + r.stderr)) {
    throw new Error(
      `original kopi-docka: repo init failed (exit ${String(r.code)}): ${(r.stdout + r.stderr).slice(-1500)}`,
    );
  }
  return inst;
}

/** `kopi-docka --config <its config> ...args` with the instance's environment. */
export function original(
  bin: string,
  inst: OriginalInstance,
  args: string[],
  opts: ExecOptions = {},
): Promise<ExecResult> {
  return exec([bin, '--config', inst.configPath, ...args], { ...opts, env: { ...inst.env, ...opts.env } });
}

/**
 * `backup --unit <unit>`, checked for what the original prints on success: it exits 0 also when its
 * lock is taken ("Backup already running … skipping"), so the exit code alone proves nothing.
 */
export async function originalBackup(bin: string, inst: OriginalInstance, unit: string): Promise<ExecResult> {
  const r = await original(bin, inst, ['backup', '--unit', unit], { allowFail: true });
  const out = r.stdout + r.stderr;
  if (r.code !== 0 || !out.includes(`${unit} completed`)) {
    throw new Error(
      `original kopi-docka backup of ${unit} failed (exit ${String(r.code)}): ${out.slice(-2000)}`,
    );
  }
  return r;
}

/**
 * What the original leaves outside its instance — its lock file /run/kopi-docka.lock and its staging
 * copies of recipes and networks under /var/cache/kopi-docka/staging/ (kept after every run) — as
 * found before the scenario: returns the undo, which removes what was not there.
 */
export function originalLeftovers(unit: string): () => Promise<void> {
  const lock = '/run/kopi-docka.lock';
  const staging = '/var/cache/kopi-docka/staging';
  const had = { lock: existsSync(lock), staging: existsSync(staging) };
  return async () => {
    if (!had.lock) await rm(lock, { force: true });
    if (!had.staging) await rm(staging, { recursive: true, force: true });
    else {
      for (const kind of ['recipes', 'networks', 'docker-config']) {
        await rm(path.join(staging, kind, unit), { recursive: true, force: true });
      }
    }
  };
}
