/**
 * A small INI reader with the semantics of Python's configparser (the format the original kopi-docka
 * README documents), so a config written for it reads the same here:
 * - `[section]` headers (section names are case-sensitive, as in configparser);
 * - `key = value` or `key: value`, split at the first `=` or `:`; keys are lower-cased;
 * - full-line comments only (`#` or `;` as the first non-blank character) — never inline, so
 *   `password = s3cr3t#with;specials` keeps its whole value;
 * - a line indented deeper than its key line continues the previous value (joined with `\n`);
 *   blank lines inside such a value are kept, trailing ones dropped;
 * - values are trimmed.
 * Stricter than configparser in one way: a duplicate section or key, text before the first section,
 * and any line that is none of the above are errors, each naming the file and line.
 */
import { ConfigError } from '../errors.js';

export interface IniEntry {
  /** Lower-cased key. */
  key: string;
  value: string;
  /** 1-based line of the `key = value` line. */
  line: number;
}

export interface IniSection {
  name: string;
  line: number;
  entries: Map<string, IniEntry>;
}

export interface IniDocument {
  file: string;
  sections: Map<string, IniSection>;
}

const SECTION_RE = /^\[([^\]]+)\]$/;
// Shortest key up to the first delimiter, like configparser's OPTCRE.
const OPTION_RE = /^(.*?)\s*([=:])\s*(.*)$/;

interface OpenValue {
  entry: IniEntry;
  parts: string[];
  indent: number;
}

/**
 * The original kopi-docka switched to a JSON config (`config.json`) in its v3; naming one here would
 * otherwise fail on its first line with "cannot parse line", which does not say what to do.
 */
function refuseJson(lines: readonly string[], file: string): void {
  const first = lines.findIndex((l) => l.trim() !== '');
  if (first < 0 || !(lines[first] ?? '').trim().startsWith('{')) return;
  throw new ConfigError(
    `${file}:${first + 1}: this is a JSON file (the original kopi-docka's config.json, v3 and later), not INI`,
    'kopi-docka reads INI: write the settings as [kopia] and [backup] sections — see "Coming from the original kopi-docka" in docs/configuration.md',
  );
}

export function parseIni(text: string, file: string): IniDocument {
  const sections = new Map<string, IniSection>();
  let current: IniSection | undefined;
  let open: OpenValue | undefined;

  const close = () => {
    if (open) open.entry.value = open.parts.join('\n').trim();
    open = undefined;
  };

  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  refuseJson(lines, file);
  lines.forEach((raw, idx) => {
    const lineNo = idx + 1;
    const stripped = raw.trim();
    if (stripped.startsWith('#') || stripped.startsWith(';')) return;
    if (stripped === '') {
      // configparser keeps blank lines inside a multi-line value; trailing ones are trimmed on close.
      open?.parts.push('');
      return;
    }
    const indent = raw.length - raw.trimStart().length;
    if (open && indent > open.indent) {
      open.parts.push(stripped);
      return;
    }
    close();

    const header = SECTION_RE.exec(stripped);
    if (header) {
      const name = (header[1] ?? '').trim();
      const previous = sections.get(name);
      if (previous) {
        throw new ConfigError(
          `${file}:${lineNo}: duplicate section [${name}] (first defined on line ${previous.line})`,
          'merge the two sections into one',
        );
      }
      current = { name, line: lineNo, entries: new Map() };
      sections.set(name, current);
      return;
    }

    const option = OPTION_RE.exec(stripped);
    const key = option?.[1]?.trim().toLowerCase() ?? '';
    if (!option || key === '' || key.startsWith('[')) {
      throw new ConfigError(
        `${file}:${lineNo}: cannot parse line: ${JSON.stringify(raw)}`,
        'expected "[section]", "key = value", "key: value", a comment starting with # or ;, or an indented continuation of the previous value',
      );
    }
    if (!current) {
      throw new ConfigError(
        `${file}:${lineNo}: "${key}" appears before any [section] header`,
        'put it under its section, e.g. [kopia] or [backup]',
      );
    }
    const previous = current.entries.get(key);
    if (previous) {
      throw new ConfigError(
        `${file}:${lineNo}: duplicate key "${key}" in [${current.name}] (first set on line ${previous.line})`,
        'keep only one of the two lines',
      );
    }
    const entry: IniEntry = { key, value: '', line: lineNo };
    current.entries.set(key, entry);
    open = { entry, parts: [option[3] ?? ''], indent };
  });
  close();
  return { file, sections };
}
