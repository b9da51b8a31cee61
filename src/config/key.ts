/**
 * The shape of one config key's declaration (KeyDef) and the two helpers that build one:
 * `setting()` for a key that fills one field of Config, `resolved()` for a key the loader resolves
 * itself. The declarations themselves are the table in src/config/schema.ts.
 */
import type { BackupSettings, Config, KopiaSettings, RetentionSettings } from './types.js';
import type { Warn } from './values.js';

/** What `config show` prints instead of the password. Never a prefix of it: output ends up in tickets. */
export const PASSWORD_MASK = '********';

export type SectionName = 'kopia' | 'backup' | 'retention' | 'logging' | 'notifications' | 'daemon';

/** The parts of Config that keys fill in, by section. */
export interface Settings {
  kopia: KopiaSettings;
  backup: BackupSettings;
  retention: RetentionSettings;
  logging: Config['logging'];
  notifications: Config['notifications'];
  daemon: Config['daemon'];
}

/** A value as `config show` prints it (and `--json` emits it); null = not set. */
export type SettingValue = string | number | boolean | string[] | null;

/** What defaults and parsers may depend on besides the raw text. */
export interface KeyContext {
  system: { cores: number; availableMemoryBytes: number; hostname: string };
  /** kopi-docka's state directory: the defaults of the history and bundle paths live under it. */
  stateDir: string;
  /** A non-fatal finding about this value (the loader prefixes file, line and key). */
  warn: Warn;
}

/** One config key, with its generics erased so keys of all types sit in one list. */
export interface KeyDef {
  /** `section.name`: the key of Config.origins. */
  readonly id: string;
  readonly section: SectionName;
  /** The INI name (lower-case). */
  readonly name: string;
  /** Other names accepted for the same key (the original's), never both at once. */
  readonly aliases: readonly string[];
  /** Docs: the type column. */
  readonly type: string;
  /** Plain text of the default for error hints; undefined = the key has no default. */
  readonly defaultText: string | undefined;
  /** Docs: the default column (markdown). */
  readonly defaultDoc: string;
  /** Docs: the meaning column (markdown, one line). */
  readonly doc: string;
  /** Never echoed in errors; `config show` prints PASSWORD_MASK. */
  readonly secret: boolean;
  /**
   * `refuse`: a value wrapped in matching quotes is an error (the original kept quotes as part of
   * the value, so neither stripping nor keeping them is safe to guess). `parse`: the parser
   * understands quotes itself (lists, command lines).
   */
  readonly quotes: 'refuse' | 'parse';
  /** Deprecated keys: the warning printed when the key is set (given the parsed value). */
  readonly deprecated: ((value: unknown) => string) | undefined;
  /** The raw text → the value; throws ValueError. */
  parse(raw: string, ctx: KeyContext): unknown;
  /** The value when the key is not set. */
  fallback(ctx: KeyContext): unknown;
  /**
   * Stores a parsed (or fallback) value into the settings. Undefined for the keys the loader
   * resolves together (repository_path, password, password_file: files, env and embedded default).
   */
  readonly apply: ((target: Settings, value: unknown) => void) | undefined;
  /** The effective value for `config show`. */
  show(cfg: Config): SettingValue;
}

/** Docs-only parts of a declaration, shared by both helpers. */
interface DocSpec {
  section: SectionName;
  name: string;
  type: string;
  defaultDoc?: string;
  doc: string;
  aliases?: readonly string[];
  quotes?: 'refuse' | 'parse';
}

function toSettingValue(v: unknown, id: string): SettingValue {
  if (v === undefined || v === null) return null;
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v;
  throw new Error(`internal: ${id} has a value config show cannot print`);
}

function docDefault(text: string | undefined): string {
  return text === undefined ? 'none' : `\`${text}\``;
}

/** A key that fills one field of one section: the common case. */
export function setting<S extends SectionName, F extends keyof Settings[S] & string>(
  spec: DocSpec & {
    section: S;
    field: F;
    parse: (raw: string, ctx: KeyContext) => Settings[S][F];
    /** A constant default (its text is derived), or `defaultFrom` for one that depends on the host. */
    default?: Settings[S][F];
    defaultFrom?: (ctx: KeyContext) => Settings[S][F];
    defaultText?: string;
    deprecated?: (value: Settings[S][F]) => string;
  },
): KeyDef {
  const id = `${spec.section}.${spec.name}`;
  const constant = spec.default;
  const defaultText =
    spec.defaultText ??
    (constant === undefined ? undefined : typeof constant === 'string' ? constant : JSON.stringify(constant));
  const deprecated = spec.deprecated;
  return {
    id,
    section: spec.section,
    name: spec.name,
    aliases: spec.aliases ?? [],
    type: spec.type,
    defaultText,
    defaultDoc: spec.defaultDoc ?? docDefault(defaultText),
    doc: spec.doc,
    secret: false,
    quotes: spec.quotes ?? 'refuse',
    // The value handed back is the one this key's own parse produced, so the cast restores its type.
    deprecated: deprecated && ((value) => deprecated(value as Settings[S][F])),
    parse: spec.parse,
    fallback: (ctx) => (spec.defaultFrom ? spec.defaultFrom(ctx) : constant),
    apply: (target, value) => {
      const section: Settings[S] = target[spec.section];
      // Only this key's parse or fallback produced `value`: it has the field's type.
      section[spec.field] = value as Settings[S][F];
    },
    show: (cfg) => {
      const settings: Settings = cfg;
      return toSettingValue(settings[spec.section][spec.field], id);
    },
  };
}

/** A key the loader resolves itself (see KeyDef.apply); parse only validates the text. */
export function resolved(
  spec: DocSpec & {
    parse: (raw: string) => unknown;
    show: (cfg: Config) => SettingValue;
    secret?: boolean;
  },
): KeyDef {
  return {
    id: `${spec.section}.${spec.name}`,
    section: spec.section,
    name: spec.name,
    aliases: spec.aliases ?? [],
    type: spec.type,
    defaultText: undefined,
    defaultDoc: spec.defaultDoc ?? '—',
    doc: spec.doc,
    secret: spec.secret ?? false,
    quotes: spec.quotes ?? 'refuse',
    deprecated: undefined,
    parse: spec.parse,
    fallback: () => undefined,
    apply: undefined,
    show: spec.show,
  };
}
