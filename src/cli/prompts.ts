/**
 * Minimal terminal prompts for the restore wizard (numbered choices, yes/no, free text). Ctrl-C or EOF
 * cancels with exit 130 and nothing changed.
 */
import { createInterface } from 'node:readline/promises';
import { InterruptedError } from '../errors.js';

async function question(text: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stdout });
  const ac = new AbortController();
  rl.on('SIGINT', () => ac.abort());
  rl.on('close', () => ac.abort());
  try {
    return (await rl.question(text, { signal: ac.signal })).trim();
  } catch {
    throw new InterruptedError('SIGINT');
  } finally {
    rl.close();
  }
}

export async function ask(text: string): Promise<string> {
  return question(`${text}: `);
}

export async function confirm(text: string, def: boolean): Promise<boolean> {
  for (;;) {
    const a = (await question(`${text} [${def ? 'Y/n' : 'y/N'}] `)).toLowerCase();
    if (a === '') return def;
    if (a === 'y' || a === 'yes') return true;
    if (a === 'n' || a === 'no') return false;
  }
}

export async function choose<T>(title: string, options: { label: string; value: T }[]): Promise<T> {
  process.stdout.write(`${title}:\n`);
  options.forEach((o, i) => process.stdout.write(`  ${String(i + 1).padStart(2)}) ${o.label}\n`));
  for (;;) {
    const a = await question(`choose 1-${options.length}: `);
    const n = Number(a);
    const picked = Number.isInteger(n) ? options[n - 1] : undefined;
    if (picked) return picked.value;
  }
}
