/** `kopi-docka config show [--json]`: the effective configuration, where each value came from, password masked. */
import type { Command } from '@commander-js/extra-typings';
import { SCHEMA } from '../../config/schema.js';
import type { Config, Origin } from '../../config/types.js';
import { createContext, exitState, globalsOf } from '../context.js';
import { table, type Output } from '../output.js';

export const PASSWORD_MASK = '********';

export type SettingValue = string | number | boolean | string[] | null;

export interface SettingView {
  value: SettingValue;
  origin: Origin;
  /** Only on backup.parallel_workers: the number was computed from `auto`. */
  auto?: boolean;
}

/** The `--json` document: stable keys, named like the config file's sections and keys. */
export interface ConfigView {
  file: string | null;
  embeddedDefault: boolean;
  stateDir: string;
  kopiaConfigFile: string;
  binary: string;
  sections: Record<string, Record<string, SettingView>>;
  warnings: string[];
}

function settingValues(cfg: Config): Record<string, Record<string, SettingValue>> {
  const { kopia, backup, retention } = cfg;
  return {
    kopia: {
      repository_path: kopia.repositoryPath,
      // Never the password itself, not even a prefix: `config show` output ends up in tickets and chats.
      password: PASSWORD_MASK,
      password_file: kopia.passwordFile ?? null,
      compression: kopia.compression,
      encryption: kopia.encryption,
      cache_directory: kopia.cacheDirectory,
      hostname: kopia.hostname,
      username: kopia.username,
    },
    backup: {
      backup_base_path: backup.backupBasePath,
      parallel_workers: backup.parallelWorkers,
      stop_timeout: backup.stopTimeout,
      start_timeout: backup.startTimeout,
      task_timeout: backup.taskTimeout,
      exclude_patterns: backup.excludePatterns,
      volume_mode: backup.volumeMode,
      tar_deterministic_mtime: backup.tarDeterministicMtime,
      update_recovery_bundle: backup.updateRecoveryBundle,
      recovery_bundle_path: backup.recoveryBundlePath,
      recovery_bundle_retention: backup.recoveryBundleRetention,
      pre_backup_hook: backup.preBackupHook ?? null,
      post_backup_hook: backup.postBackupHook ?? null,
    },
    retention: { ...retention },
    logging: { level: cfg.logging.level },
  };
}

/** The effective configuration as data, in schema order, with the password masked. */
export function configView(cfg: Config): ConfigView {
  const values = settingValues(cfg);
  const sections: ConfigView['sections'] = {};
  for (const [section, keys] of Object.entries(SCHEMA)) {
    const out: Record<string, SettingView> = {};
    for (const key of keys) {
      const value = values[section]?.[key];
      if (value === undefined) throw new Error(`internal: config show does not know ${section}.${key}`);
      const view: SettingView = { value, origin: cfg.origins[`${section}.${key}`] ?? 'default' };
      if (section === 'backup' && key === 'parallel_workers') view.auto = cfg.backup.parallelWorkersAuto;
      out[key] = view;
    }
    sections[section] = out;
  }
  return {
    file: cfg.file ?? null,
    embeddedDefault: cfg.embeddedDefault,
    stateDir: cfg.stateDir,
    kopiaConfigFile: cfg.kopia.kopiaConfigFile,
    binary: cfg.kopia.binary,
    sections,
    warnings: cfg.warnings,
  };
}

function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=@%+-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

function formatValue(key: string, view: SettingView): string {
  const v = view.value;
  if (v === null) return '(none)';
  if (Array.isArray(v)) {
    if (v.length === 0) return '(none)';
    // Hooks show as the argv they will run; patterns as the list they were read into.
    return key.endsWith('_hook') ? v.map(shellQuote).join(' ') : v.join(', ');
  }
  if (view.auto === true) return `auto (${String(v)})`;
  return String(v);
}

export function printConfigText(out: Output, view: ConfigView): void {
  out.line(`config file:  ${view.file ?? '(none found: embedded default)'}`);
  out.line(`state dir:    ${view.stateDir}`);
  out.line(`kopia config: ${view.kopiaConfigFile}`);
  out.line(`kopia binary: ${view.binary}`);
  for (const [section, settings] of Object.entries(view.sections)) {
    out.line();
    out.line(`[${section}]`);
    const rows = Object.entries(settings).map(([key, s]) => [key, formatValue(key, s), s.origin]);
    out.line(table(['key', 'value', 'origin'], rows));
  }
}

export function register(program: Command): void {
  const config = program.command('config').description('inspect the configuration');
  config
    .command('show', { isDefault: true })
    .description('print the effective configuration, where each value came from (password masked)')
    .option('--json', 'print one JSON document')
    .action(async (opts, cmd) => {
      const ctx = createContext(globalsOf(cmd), opts.json);
      const view = configView(await ctx.config());
      if (ctx.out.json) ctx.out.data(view);
      else printConfigText(ctx.out, view);
      exitState.code = 0;
    });
}
