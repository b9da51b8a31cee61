/**
 * The config keys, one declaration each. A declaration drives
 * - parsing and validation (src/config/load.ts: which keys exist, which spellings are aliases, what
 *   a value must look like, the default, the deprecation warning),
 * - `kopi-docka config show` (src/cli/commands/config.ts: the value, masked when `secret`),
 * - the key tables of docs/configuration.md (src/config/doc.ts, written by `node --import tsx
 *   scripts/config-doc.ts`; a unit test fails when the doc and this table disagree).
 *
 * Adding a key: a field in src/config/types.ts, one `setting({...})` below (`resolved({...})` only
 * for a key the loader must combine with others), then `node --import tsx scripts/config-doc.ts`.
 * test/unit/config-keys.test.ts lists Config's fields as typed records, so typecheck points at it
 * too: that is the check that the new field is really filled.
 * Keys of the original kopi-docka that do nothing here, or that are refused: src/config/legacy.ts.
 * The declaration's shape and helpers: src/config/key.ts.
 * No I/O here; the value parsers are in src/config/values.ts.
 */
import path from 'node:path';
import {
  PASSWORD_MASK,
  resolved,
  setting,
  type KeyContext,
  type KeyDef,
  type SectionName,
  type Settings,
} from './key.js';
import { DAEMON_KEY_DEFS, NOTIFICATION_KEY_DEFS, NOTIFICATION_SECTION_DOCS } from './keys-notifications.js';
import { WARM_PASS_MODES } from '../core/warm.js';
import { REPOSITORY_KEYS } from './keys-repository.js';
import { LEGACY_KEYS } from './legacy.js';
import type { RetentionSettings } from './types.js';
import {
  COMPRESSIONS,
  COMPRESSION_ALIASES,
  ENCRYPTIONS,
  ENCRYPTION_ALIASES,
  ENCRYPTION_REFUSED,
  LZ4_HINT,
  VOLUME_MODES,
  parseAbsolutePath,
  parseBool,
  parseChoice,
  parseCompression,
  parseEncryption,
  parseIdentityPart,
  parseInteger,
  parseList,
  parseLogLevelValue,
  parseWorkers,
  shortHostname,
  splitShellWords,
} from './values.js';

// The parsers, the declaration's types and the original's keys stay importable from here.
export * from './key.js';
export * from './legacy.js';
export * from './values.js';

const code = (items: readonly string[]) => items.map((i) => `\`${i}\``).join(', ');
const aliasDoc = (aliases: Readonly<Record<string, string>>) =>
  Object.entries(aliases)
    .map(([from, to]) => `\`${from}\` = \`${to}\``)
    .join(', ');

const hook = (raw: string): string[] | undefined => {
  const argv = splitShellWords(raw);
  return argv.length === 0 ? undefined : argv;
};
const HOOK_DOC =
  "Split into arguments like a shell would (spaces separate, `'…'` and `\"…\"` quote, `\\` escapes) but **never run through a shell**: unquoted `\\|`, `&`, `;`, `<`, `>`, `` ` `` and `$` are refused. For shell features write `/bin/sh -c '…'`. Empty = none.";

const retention = (name: keyof RetentionSettings, fallback: number, doc: string) =>
  setting({
    section: 'retention',
    name,
    field: name,
    type: 'integer ≥ 0',
    default: fallback,
    doc,
    parse: (v) => parseInteger(v, 0),
  });

/** Every key, in the order `config show` and the docs list them. */
export const KEYS: readonly KeyDef[] = [
  // [kopia]
  resolved({
    section: 'kopia',
    name: 'repository_path',
    type: 'absolute path',
    defaultDoc: '— (**required** for `filesystem`)',
    doc: '(`filesystem`) The filesystem Kopia repository (**required** for it). Trailing slashes are ignored. A URL (`s3://`, `b2://`, `sftp://`, …, which the original took) is refused: set `backend` and its keys instead.',
    parse: parseAbsolutePath,
    show: (cfg) => cfg.kopia.repositoryPath || null,
  }),
  ...REPOSITORY_KEYS,
  resolved({
    section: 'kopia',
    name: 'password',
    type: 'string',
    doc: 'The password inline, taken literally (`%` and `#` included). One of `password_file`, `password` or `KOPI_DOCKA_PASSWORD` is required; if both keys are set, `password_file` wins and a warning says so. A value in quotes is refused: see [Quotes](#quotes).',
    parse: (v) => v,
    show: () => PASSWORD_MASK,
    secret: true,
  }),
  resolved({
    section: 'kopia',
    name: 'password_file',
    type: 'path',
    doc: "File holding the repository password (recommended). Read whole; trailing newlines are dropped. A relative path is relative to the config file's directory.",
    parse: (v) => v,
    show: (cfg) => cfg.kopia.passwordFile ?? null,
  }),
  setting({
    section: 'kopia',
    name: 'compression',
    field: 'compression',
    type: 'Kopia compressor',
    default: 'zstd',
    doc: `One of ${code(COMPRESSIONS)}; ${aliasDoc(COMPRESSION_ALIASES)} (with a warning). \`lz4\` is refused: ${LZ4_HINT}.`,
    parse: (v, ctx) => parseCompression(v, ctx.warn),
  }),
  setting({
    section: 'kopia',
    name: 'encryption',
    field: 'encryption',
    type: ENCRYPTIONS.map((e) => `\`${e}\``).join(' \\| '),
    default: 'AES256-GCM-HMAC-SHA256',
    doc: `Used only when the repository is created. The original's spellings are accepted, in any case: ${aliasDoc(ENCRYPTION_ALIASES)}. Refused: ${code(Object.keys(ENCRYPTION_REFUSED))} (Kopia cannot do them).`,
    parse: parseEncryption,
  }),
  setting({
    section: 'kopia',
    name: 'cache_directory',
    field: 'cacheDirectory',
    type: 'absolute path',
    default: '/var/cache/kopi-docka',
    doc: "Kopia's cache.",
    parse: parseAbsolutePath,
  }),
  setting({
    section: 'kopia',
    name: 'hostname',
    field: 'hostname',
    type: '`[A-Za-z0-9][A-Za-z0-9._-]*`',
    defaultFrom: (ctx) => shortHostname(ctx.system.hostname),
    defaultText: 'the host name up to the first ".", lower-cased',
    defaultDoc: 'the host name up to the first `.`, lower-cased',
    doc: 'Recorded on every snapshot as `username@hostname`. Lower-cased. Set it if the machine may be renamed, or to restore on a new host under the old identity.',
    parse: parseIdentityPart,
  }),
  setting({
    section: 'kopia',
    name: 'username',
    field: 'username',
    type: 'same as `hostname`',
    default: 'kopi-docka',
    doc: 'See `hostname`.',
    parse: parseIdentityPart,
  }),

  // [backup]
  setting({
    section: 'backup',
    name: 'backup_base_path',
    field: 'backupBasePath',
    aliases: ['base_path'],
    type: 'absolute path',
    defaultFrom: (ctx) => path.join(ctx.stateDir, 'backups'),
    defaultText: '<state dir>/backups',
    defaultDoc: '`<state dir>/backups` (`/var/lib/kopi-docka/backups`)',
    doc: 'Where the run history (`history.jsonl`) is kept.',
    parse: parseAbsolutePath,
  }),
  {
    // Two fields (the number and whether it came from `auto`), so written out rather than setting().
    ...setting({
      section: 'backup',
      name: 'parallel_workers',
      field: 'parallelWorkers',
      type: '`auto` or integer 1–64',
      default: 0,
      defaultText: 'auto',
      doc: 'How many data sources of a unit are snapshotted at once. See [below](#parallel_workers--auto).',
      parse: (v, ctx) => parseWorkers(v, ctx.system).workers,
    }),
    parse: (v: string, ctx: KeyContext) => parseWorkers(v, ctx.system),
    fallback: (ctx: KeyContext) => parseWorkers('auto', ctx.system),
    apply: (target: Settings, value: unknown) => {
      // parse/fallback above return parseWorkers' result.
      const w = value as ReturnType<typeof parseWorkers>;
      target.backup.parallelWorkers = w.workers;
      target.backup.parallelWorkersAuto = w.auto;
    },
  },
  setting({
    section: 'backup',
    name: 'stop_timeout',
    field: 'stopTimeout',
    type: 'integer 1–3600 (s)',
    default: 30,
    doc: "Graceful stop timeout; a container's own longer `StopTimeout` wins.",
    parse: (v) => parseInteger(v, 1, 3600),
  }),
  setting({
    section: 'backup',
    name: 'start_timeout',
    field: 'startTimeout',
    type: 'integer 1–3600 (s)',
    default: 120,
    doc: 'How long to wait for containers to be running (and healthy, if they have a healthcheck) after the snapshot.',
    parse: (v) => parseInteger(v, 1, 3600),
  }),
  setting({
    section: 'backup',
    name: 'stall_timeout',
    field: 'stallTimeout',
    type: 'integer ≥ 0 (s)',
    default: 300,
    doc: "A Kopia or tar call that reports no progress — no bytes, no files — for this long is aborted, the unit's containers are restarted and the unit fails with that reason. `0` = off. Catches a hung call without limiting a long one.",
    parse: (v) => parseInteger(v, 0),
  }),
  setting({
    section: 'backup',
    name: 'task_timeout',
    field: 'taskTimeout',
    type: 'integer ≥ 0 (s)',
    default: 0,
    doc: '**Deprecated** (a key of the original), still honoured, with a warning: the longest any single Kopia or tar call may take while containers are down; `0` = no limit (the default, as in the original). A hung call is caught by `stall_timeout` instead.',
    parse: (v) => parseInteger(v, 0),
    deprecated: (v) =>
      `task_timeout is deprecated (a key of the Python kopi-docka); it is still honoured: each Kopia/tar call while containers are down may take ${v === 0 ? 'unlimited time' : `at most ${v} s`} (a hung call is caught by stall_timeout)`,
  }),
  setting({
    section: 'backup',
    name: 'exclude_patterns',
    field: 'excludePatterns',
    type: 'list',
    default: [],
    defaultText: 'empty',
    defaultDoc: 'empty',
    quotes: 'parse',
    doc: 'Patterns left out of every volume. Three spellings: `*.log, cache/*`; one per indented continuation line; or a bracketed list `["*.log", "cache/*"]` (single quotes also work). Empty entries are dropped. A pattern containing a comma needs the quoted bracketed form.',
    parse: parseList,
  }),
  setting({
    section: 'backup',
    name: 'volume_mode',
    field: 'volumeMode',
    type: VOLUME_MODES.map((m) => `\`${m}\``).join(' \\| '),
    default: 'direct',
    doc: "`direct`: Kopia snapshots the volume's files (incremental, unchanged files are not re-read). `tar`: one tar stream per volume (keeps xattrs, ACLs, hard links).",
    parse: (v) => parseChoice(v, VOLUME_MODES),
  }),
  setting({
    section: 'backup',
    name: 'tar_deterministic_mtime',
    field: 'tarDeterministicMtime',
    type: 'boolean',
    default: false,
    doc: "`tar` mode only: store every mtime as 0 (the original's `--mtime=@0`); restored files then all have mtime 1970.",
    parse: parseBool,
  }),
  setting({
    section: 'backup',
    name: 'warm_pass',
    field: 'warmPass',
    type: WARM_PASS_MODES.map((m) => `\`${m}\``).join(' \\| '),
    default: 'auto',
    doc: "Snapshot each data source while its containers still run (a *warm* pass, never a restore point, removed after the run), so the cold snapshot taken with them stopped reads only what changed since. `auto`: for sources of 64 MiB or more without a previous snapshot, or whose size changed by 64 MiB or more or file count by 10 % (`direct`); `tar` streams only on their first backup. Never when the warm snapshot would make Kopia's retention delete an older one. See docs/data-safety.md.",
    parse: (v) => parseChoice(v, WARM_PASS_MODES),
  }),
  setting({
    section: 'backup',
    name: 'update_recovery_bundle',
    field: 'updateRecoveryBundle',
    type: 'boolean',
    default: false,
    doc: 'Write a disaster-recovery bundle after each run.',
    parse: parseBool,
  }),
  setting({
    section: 'backup',
    name: 'recovery_bundle_path',
    field: 'recoveryBundlePath',
    type: 'absolute path',
    defaultFrom: (ctx) => path.join(ctx.stateDir, 'recovery'),
    defaultText: '<state dir>/recovery',
    defaultDoc: '`<state dir>/recovery`',
    doc: 'Where recovery bundles go.',
    parse: parseAbsolutePath,
  }),
  setting({
    section: 'backup',
    name: 'recovery_bundle_retention',
    field: 'recoveryBundleRetention',
    type: 'integer 1–100',
    default: 3,
    doc: 'How many bundles to keep.',
    parse: (v) => parseInteger(v, 1, 100),
  }),
  setting({
    section: 'backup',
    name: 'pre_backup_hook',
    field: 'preBackupHook',
    type: 'command line',
    defaultDoc: 'none',
    quotes: 'parse',
    doc: `Run before the backup. ${HOOK_DOC}`,
    parse: hook,
  }),
  setting({
    section: 'backup',
    name: 'post_backup_hook',
    field: 'postBackupHook',
    type: 'command line',
    defaultDoc: 'none',
    quotes: 'parse',
    doc: 'Run after the backup; same rules.',
    parse: hook,
  }),

  // [retention]
  retention('latest', 10, 'Newest snapshots kept regardless of age.'),
  retention('hourly', 0, 'One per hour, for this many hours.'),
  retention('daily', 7, 'One per day, for this many days.'),
  retention('weekly', 4, 'One per week, for this many weeks.'),
  retention('monthly', 12, 'One per month, for this many months.'),
  retention('yearly', 3, "One per year, for this many years (Kopia's `annual`)."),

  // [logging]
  setting({
    section: 'logging',
    name: 'level',
    field: 'level',
    type: '`debug` \\| `info` \\| `warning` \\| `error`',
    default: 'info',
    doc: 'Messages below this level are not printed; any case (`INFO`), `warn` = `warning`, `critical` = `error` (with a warning). `KOPI_DOCKA_LOG_LEVEL` and `--log-level` override it.',
    parse: (v, ctx) => parseLogLevelValue(v, ctx.warn),
  }),

  // [notifications], [daemon]
  ...NOTIFICATION_KEY_DEFS,
  ...DAEMON_KEY_DEFS,
];

/** One paragraph per section for the docs. */
export const SECTION_DOCS: Readonly<Record<SectionName, string>> = {
  kopia: 'The repository, its password and how snapshots are recorded.',
  backup: 'How a backup run treats each unit.',
  retention:
    'How many snapshots Kopia keeps **per source** (each volume, bind mount and recipe of a unit), applied as Kopia retention policy.',
  logging: 'What is printed.',
  ...NOTIFICATION_SECTION_DOCS,
};

/** Sections in file order: the key sections, then those that exist only for the original's keys. */
export const SECTIONS: readonly string[] = [
  ...new Set([...KEYS.map((k) => k.section), ...LEGACY_KEYS.map((k) => k.section)]),
];

/** Every section and its keys' names (no aliases), in KEYS order. */
export const SCHEMA: Readonly<Record<string, readonly string[]>> = Object.fromEntries(
  [...new Set(KEYS.map((k) => k.section))].map((s) => [
    s,
    KEYS.filter((k) => k.section === s).map((k) => k.name),
  ]),
);

/** The declaration of `section.name` (by INI name or alias), if it is a key. */
export function findKey(section: string, name: string): KeyDef | undefined {
  return KEYS.find((k) => k.section === section && (k.name === name || k.aliases.includes(name)));
}

/** The declaration with this id; throws on a typo in the code (never on user input). */
export function keyById(id: string): KeyDef {
  const def = KEYS.find((k) => k.id === id);
  if (def === undefined) throw new Error(`internal: ${id} is not in the config key table`);
  return def;
}
