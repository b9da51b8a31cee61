/** `kopi-docka config show [--json]`: the effective configuration, where each value came from, password masked. */
import type { Command } from '@commander-js/extra-typings';
import { KEYS, PASSWORD_MASK, type SettingValue } from '../../config/schema.js';
import type { Config, Origin } from '../../config/types.js';
import { createContext, exitState, globalsOf } from '../context.js';
import { table, type Output } from '../output.js';

// Declared with the key table; re-exported where `config show` always had them.
export { PASSWORD_MASK, type SettingValue };

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

/**
 * The effective configuration as data, in key-table order, secrets masked (each key's `show` in
 * src/config/schema.ts decides its printed value; the password's is PASSWORD_MASK).
 */
export function configView(cfg: Config): ConfigView {
  const sections: ConfigView['sections'] = {};
  for (const def of KEYS) {
    const view: SettingView = { value: def.show(cfg), origin: cfg.origins[def.id] ?? 'default' };
    if (def.id === 'backup.parallel_workers') view.auto = cfg.backup.parallelWorkersAuto;
    (sections[def.section] ??= {})[def.name] = view;
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
