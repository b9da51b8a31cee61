/**
 * The parts of docs/configuration.md generated from the key table (src/config/schema.ts): the key
 * tables per section, and the list of the original kopi-docka's keys that are ignored or refused.
 * Each lives between a pair of marker comments; `node --import tsx scripts/config-doc.ts` rewrites
 * them, and a unit test fails when the doc and the table disagree. Pure: strings in, strings out.
 */
import { KEYS, LEGACY_KEYS, LEGACY_SECTIONS, SECTION_DOCS, type KeyDef, type SectionName } from './schema.js';

/** A generated block: its name appears in `<!-- NAME:begin -->` … `<!-- NAME:end -->`. */
export interface GeneratedBlock {
  name: string;
  render(): string;
}

const cell = (text: string) => text.replace(/\n/g, ' ');

function keyRow(def: KeyDef): string {
  const aliases =
    def.aliases.length > 0
      ? ` Also accepted as ${def.aliases.map((a) => `\`${a}\``).join(', ')} (the original's name).`
      : '';
  return `| \`${def.name}\` | ${cell(def.type)} | ${cell(def.defaultDoc)} | ${cell(def.doc)}${aliases} |`;
}

/** One `### [section]` heading, its paragraph and its key table per section, in table order. */
export function renderKeyTables(): string {
  const sections = [...new Set(KEYS.map((k) => k.section))];
  return sections
    .map((section: SectionName) =>
      [
        `### \`[${section}]\``,
        '',
        SECTION_DOCS[section],
        '',
        '| key | type | default | meaning |',
        '|---|---|---|---|',
        ...KEYS.filter((k) => k.section === section).map(keyRow),
      ].join('\n'),
    )
    .join('\n\n');
}

/** The original's keys that kopi-docka ignores (with a warning) or refuses, and why. */
export function renderLegacyKeys(): string {
  return [
    '| key | here | why |',
    '|---|---|---|',
    ...LEGACY_KEYS.map(
      (k) =>
        `| \`[${k.section}] ${k.name}\` | ${k.effect === 'ignored' ? 'no effect (warning)' : '**refused**'} | ${cell(k.reason)} |`,
    ),
    ...Object.entries(LEGACY_SECTIONS).map(
      ([section, reason]) => `| \`[${section}]\` (the whole section) | **refused** | ${cell(reason)} |`,
    ),
  ].join('\n');
}

export const BLOCKS: readonly GeneratedBlock[] = [
  { name: 'keys', render: renderKeyTables },
  { name: 'legacy-keys', render: renderLegacyKeys },
];

function markers(name: string): { begin: string; end: string } {
  return { begin: `<!-- ${name}:begin -->`, end: `<!-- ${name}:end -->` };
}

/** The text between a block's markers (trimmed); throws when the markers are missing. */
export function extractBlock(doc: string, name: string): string {
  const { begin, end } = markers(name);
  const from = doc.indexOf(begin);
  const to = doc.indexOf(end);
  if (from < 0 || to < from) throw new Error(`the doc has no ${begin} … ${end} block`);
  return doc.slice(from + begin.length, to).trim();
}

/** `doc` with every generated block replaced by its current rendering. */
export function updateDoc(doc: string): string {
  let out = doc;
  for (const block of BLOCKS) {
    const { begin, end } = markers(block.name);
    extractBlock(out, block.name); // throws when the markers are missing
    const from = out.indexOf(begin) + begin.length;
    const to = out.indexOf(end);
    out = `${out.slice(0, from)}\n${block.render()}\n${out.slice(to)}`;
  }
  return out;
}
