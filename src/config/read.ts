/**
 * Walks the key table (src/config/schema.ts) over a parsed INI file: which sections and keys may
 * appear, the value of every key set (parsed, or refused with file, line, key, what was expected
 * and what to do), and the settings with every default filled in. No I/O.
 */
import { ConfigError } from '../errors.js';
import type { IniDocument, IniEntry } from './ini.js';
import { LEGACY_SECTIONS, findLegacyKey } from './legacy.js';
import {
  KEYS,
  SCHEMA,
  SECTIONS,
  ValueError,
  findKey,
  nearest,
  type KeyContext,
  type KeyDef,
  type Settings,
} from './schema.js';
import type { Origin } from './types.js';

function unknownSectionError(file: string, name: string, line: number): ConfigError {
  const legacy = LEGACY_SECTIONS[name];
  if (legacy !== undefined) {
    return new ConfigError(
      `${file}:${line}: [${name}] (a section of the original kopi-docka) is not supported`,
      legacy,
    );
  }
  const guess = nearest(name, SECTIONS);
  return new ConfigError(
    `${file}:${line}: unknown section [${name}]${guess ? `; did you mean [${guess}]?` : ''}`,
    `valid sections: ${SECTIONS.map((s) => `[${s}]`).join(', ')}`,
  );
}

function unknownKeyError(file: string, section: string, entry: IniEntry): ConfigError {
  const where = `${file}:${entry.line}: unknown key "${entry.key}" in [${section}]`;
  const legacy = findLegacyKey(section, entry.key);
  if (legacy !== undefined) return new ConfigError(where, legacy.reason);
  const keys = SCHEMA[section] ?? [];
  const valid =
    keys.length > 0
      ? `valid keys in [${section}]: ${keys.join(', ')}`
      : `[${section}] holds only keys of the original kopi-docka that have no effect here`;
  const guess = nearest(entry.key, keys);
  if (guess !== undefined) return new ConfigError(`${where}; did you mean "${guess}"?`, valid);
  const home = Object.keys(SCHEMA).find((s) => findKey(s, entry.key) !== undefined);
  return new ConfigError(
    where,
    home !== undefined ? `"${entry.key}" belongs in the [${home}] section` : valid,
  );
}

/**
 * Throws on an unknown section or key (with the nearest valid name) and on a key of the original
 * that is refused; returns one warning per key of the original that is accepted but has no effect.
 */
export function checkStructure(doc: IniDocument): string[] {
  const warnings: string[] = [];
  for (const section of doc.sections.values()) {
    if (!SECTIONS.includes(section.name)) throw unknownSectionError(doc.file, section.name, section.line);
    for (const entry of section.entries.values()) {
      if (findKey(section.name, entry.key) !== undefined) continue;
      const legacy = findLegacyKey(section.name, entry.key);
      if (legacy?.effect !== 'ignored') throw unknownKeyError(doc.file, section.name, entry);
      // An empty value asked for nothing, so there is nothing to warn about.
      if (entry.value === '') continue;
      warnings.push(
        `${doc.file}:${entry.line}: [${section.name}] ${entry.key} has no effect: ${legacy.reason}; remove the line to silence this`,
      );
    }
  }
  return warnings;
}

/** A key set in the file, its line, and its parsed value. */
export interface FileValue {
  entry: IniEntry;
  value: unknown;
}

/** The key's line, written under its name or one alias; both at once is an error. */
function findEntry(doc: IniDocument, def: KeyDef): IniEntry | undefined {
  const entries = doc.sections.get(def.section)?.entries;
  const found = [def.name, ...def.aliases].flatMap((n) => entries?.get(n) ?? []);
  const [first, second] = found.sort((a, b) => a.line - b.line);
  if (second !== undefined && first !== undefined) {
    throw new ConfigError(
      `${doc.file}:${second.line}: [${def.section}] "${second.key}" and "${first.key}" (line ${first.line}) are the same key`,
      `keep only one of the two lines ("${def.name}" is the current name)`,
    );
  }
  return first;
}

const QUOTED = /^(["'])(.*)\1$/s;

/**
 * Values are taken literally, as Python's configparser (the original's reader) did: quotes stay
 * part of the value. A scalar in quotes is refused rather than guessed at: stripping them would lock
 * users of the original out of a repository whose password has them; keeping them would surprise
 * everyone else.
 */
function refuseQuotes(file: string, def: KeyDef, entry: IniEntry): void {
  const m = QUOTED.exec(entry.value);
  if (def.quotes !== 'refuse' || m === null || entry.value.length < 2) return;
  const where = `${file}:${entry.line}: [${def.section}] ${entry.key}: the value is in quotes`;
  if (def.secret) {
    throw new ConfigError(
      where,
      `values are taken literally, so the quotes would be part of the password (the original kopi-docka kept them too). ` +
        `If the password is the text between the quotes, write it without them: "${entry.key} = <that text>". ` +
        `If the quotes are part of the password (a repository the original created from this line), put the password, quotes included, ` +
        `as the only line of a file with mode 600 and replace this line with "password_file = /path/to/that/file"`,
    );
  }
  throw new ConfigError(
    where,
    `values are taken literally, quotes included (as the original's configparser did); write it without quotes: ${entry.key} = ${m[2] ?? ''}`,
  );
}

/** A ValueError from a parser, located: file, line, key, what was expected, what was found (never a secret). */
function valueError(file: string, def: KeyDef, entry: IniEntry, err: ValueError): ConfigError {
  const found = def.secret ? '' : `, found ${JSON.stringify(entry.value)}`;
  const inlineComment = /\s[#;]/.test(entry.value)
    ? `"#" and ";" start a comment only at the beginning of a line, so this one is part of the value (the original kopi-docka read it the same way and silently used its default); put the comment on its own line`
    : undefined;
  const fallback =
    def.defaultText === undefined
      ? `fix the value on line ${entry.line}`
      : `fix the value on line ${entry.line}, or remove the line to use the default (${def.defaultText})`;
  return new ConfigError(
    `${file}:${entry.line}: [${def.section}] ${entry.key}: ${err.message}${found}`,
    err.hint ?? inlineComment ?? fallback,
  );
}

function keyContext(base: Omit<KeyContext, 'warn'>, warnings: string[], prefix: string): KeyContext {
  return { ...base, warn: (message) => warnings.push(`${prefix}${message}`) };
}

/** Parses every key set in the file; deprecation and spelling warnings go to `warnings`. */
export function readKeys(
  doc: IniDocument | undefined,
  base: Omit<KeyContext, 'warn'>,
  warnings: string[],
): Map<string, FileValue> {
  const values = new Map<string, FileValue>();
  if (doc === undefined) return values;
  for (const def of KEYS) {
    const entry = findEntry(doc, def);
    if (entry === undefined) continue;
    refuseQuotes(doc.file, def, entry);
    const prefix = `${doc.file}:${entry.line}: [${def.section}] ${entry.key}: `;
    let value: unknown;
    try {
      value = def.parse(entry.value, keyContext(base, warnings, prefix));
    } catch (err) {
      if (err instanceof ValueError) throw valueError(doc.file, def, entry, err);
      throw err;
    }
    const deprecation = def.deprecated?.(value);
    if (deprecation !== undefined)
      warnings.push(`${doc.file}:${entry.line}: [${def.section}] ${deprecation}`);
    values.set(def.id, { entry, value });
  }
  return values;
}

/** Every key's value from the file, else its default, stored into the settings. */
export function buildSettings(values: Map<string, FileValue>, base: Omit<KeyContext, 'warn'>): Settings {
  // Filled field by field below by every key's apply(); the kopia fields no key fills are set by
  // loadConfig. A unit test checks that no field of Config is left out.
  const target = {
    kopia: {},
    backup: {},
    retention: {},
    logging: {},
    notifications: {},
    daemon: {},
  } as Settings;
  const noWarnings = keyContext(base, [], '');
  for (const def of KEYS) {
    if (def.apply === undefined) continue;
    const read = values.get(def.id);
    def.apply(target, read !== undefined ? read.value : def.fallback(noWarnings));
  }
  return target;
}

export function initialOrigins(values: Map<string, FileValue>): Record<string, Origin> {
  const origins: Record<string, Origin> = {};
  for (const def of KEYS) origins[def.id] = values.has(def.id) ? 'file' : 'default';
  return origins;
}
