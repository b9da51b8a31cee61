/** Command output on stdout: text tables for people, `--json` for programs. */
import { colorEnabled } from '../config/env.js';

export interface Output {
  json: boolean;
  color: boolean;
  /** Print a line of text (ignored in --json mode, where only data is printed). */
  line(text?: string): void;
  /** Print data as JSON (in --json mode) — exactly one document per command. */
  data(value: unknown): void;
}

export function createOutput(json: boolean, stream: NodeJS.WriteStream = process.stdout): Output {
  return {
    json,
    color: colorEnabled(stream),
    line(text = '') {
      if (!json) stream.write(`${text}\n`);
    },
    data(value) {
      stream.write(`${JSON.stringify(value, null, 2)}\n`);
    },
  };
}

/** Left-aligned columns; the widths fit the widest cell. */
export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [fmt(headers), fmt(widths.map((w) => '-'.repeat(w))), ...rows.map(fmt)].join('\n');
}

export function paint(out: Output, code: 'red' | 'green' | 'yellow' | 'bold', text: string): string {
  if (!out.color) return text;
  const codes = { red: 31, green: 32, yellow: 33, bold: 1 } as const;
  return `\u001b[${codes[code]}m${text}\u001b[0m`;
}
