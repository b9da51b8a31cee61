/**
 * Minimal terminal prompts for the restore wizard: numbered choices, yes/no, free text.
 *
 * - Invalid input is never swallowed: the prompt says what it accepts and asks again. A choice takes
 *   its number (`1`…`N`) or an option's name typed exactly (an option's `names`, else its label and the
 *   label's first word — for a unit its name, for a restore point its backup_id); a yes/no takes
 *   `y`, `yes`, `n`, `no` (any case) or Enter for the default.
 * - Ctrl-C cancels with InterruptedError('SIGINT'): "interrupted by SIGINT", exit 130.
 * - End of input (Ctrl-D on a terminal, or stdin closed) is not an interruption: it throws
 *   InputEndedError, "no answer: input ended (Ctrl-D)", exit code 1 (ExitCode.FAILURE) — the same
 *   code as declining a wizard question ("cancelled"). Exit 2 (usage) is kept for wrong arguments.
 *   Either way the wizard has changed nothing yet.
 *
 * Each prompt reads one line with a fresh readline on `io.input` (default process.stdin) and writes to
 * `io.output` (default process.stdout); tests pass their own streams.
 */
import { createInterface } from 'node:readline/promises';
import type { Readable, Writable } from 'node:stream';
import { ExitCode, InterruptedError, KopiDockaError } from '../errors.js';

/** Where prompts read answers and write questions. Default: process.stdin / process.stdout. */
export interface PromptIO {
  input: Readable;
  output: Writable;
}

/** The input ended (Ctrl-D, or stdin closed) before an answer was given. */
export class InputEndedError extends KopiDockaError {
  constructor() {
    super('no answer: input ended (Ctrl-D)', {
      exitCode: ExitCode.FAILURE,
      hint: 'nothing was changed; to restore without questions: kopi-docka restore --unit U --backup-id ID|latest',
    });
  }
}

/** One option of choose(): shown as `label`; `names` (default: the label and its first word) may be typed instead of its number. */
export interface ChoiceOption<T> {
  label: string;
  value: T;
  names?: readonly string[];
}

function defaultIO(): PromptIO {
  return { input: process.stdin, output: process.stdout };
}

async function question(text: string, io: PromptIO): Promise<string> {
  // A fresh readline on an input that has already ended would wait forever.
  if (io.input.readableEnded || io.input.destroyed) throw new InputEndedError();
  const rl = createInterface({ input: io.input, output: io.output });
  const ac = new AbortController();
  let why: 'sigint' | 'eof' | undefined;
  rl.on('SIGINT', () => {
    why ??= 'sigint';
    ac.abort();
  });
  rl.on('close', () => {
    why ??= 'eof';
    ac.abort();
  });
  try {
    return (await rl.question(text, { signal: ac.signal })).trim();
  } catch (err) {
    if (why === 'sigint') throw new InterruptedError('SIGINT');
    if (why === 'eof') throw new InputEndedError();
    throw err;
  } finally {
    rl.close();
  }
}

/** Free text; an empty answer is returned as '' (callers use it for "the default"). */
export async function ask(text: string, io: PromptIO = defaultIO()): Promise<string> {
  return question(`${text}: `, io);
}

/** Yes or no; Enter answers `def`. Anything else is answered with "answer y or n" and asked again. */
export async function confirm(text: string, def: boolean, io: PromptIO = defaultIO()): Promise<boolean> {
  for (;;) {
    const a = (await question(`${text} [${def ? 'Y/n' : 'y/N'}] `, io)).toLowerCase();
    if (a === '') return def;
    if (a === 'y' || a === 'yes') return true;
    if (a === 'n' || a === 'no') return false;
    io.output.write(`  answer y or n (Enter means ${def ? 'yes' : 'no'})\n`);
  }
}

/** The names an option can be chosen by: its `names`, else its label and the label's first word. */
export function optionNames<T>(o: ChoiceOption<T>): string[] {
  if (o.names) return [...o.names];
  const label = o.label.trim();
  const first = label.split(/\s+/)[0] ?? '';
  return [...new Set([label, first].filter((n) => n !== ''))];
}

/** What choose() accepts, for the message after an invalid answer. */
export function acceptedChoices(count: number): string {
  return count === 1 ? 'enter 1, or the name' : `enter a number from 1 to ${count}, or the name`;
}

/**
 * The option an answer picks: a number from 1 to options.length, else an option whose name (see
 * optionNames) is exactly the answer. A number wins over a name that looks like one.
 *
 * @returns the option's index, or a reason (a phrase) why the answer picks none.
 */
export function pickChoice<T>(answer: string, options: readonly ChoiceOption<T>[]): number | string {
  const a = answer.trim();
  if (a === '') return `no answer: ${acceptedChoices(options.length)}`;
  if (/^\d+$/.test(a)) {
    const n = Number(a);
    if (n >= 1 && n <= options.length) return n - 1;
  }
  const hits = options.flatMap((o, i) => (optionNames(o).includes(a) ? [i] : []));
  if (hits.length === 1 && hits[0] !== undefined) return hits[0];
  if (hits.length > 1) {
    return `"${a}" names ${hits.length} choices (${hits.map((i) => i + 1).join(', ')}): enter its number`;
  }
  return `"${a}" is not one of the choices: ${acceptedChoices(options.length)}`;
}

/**
 * A numbered list; the answer is a number or an option's name (see pickChoice). An invalid answer is
 * answered with what is accepted, and the question is asked again.
 */
export async function choose<T>(
  title: string,
  options: readonly ChoiceOption<T>[],
  io: PromptIO = defaultIO(),
): Promise<T> {
  if (options.length === 0) throw new KopiDockaError(`${title}: nothing to choose from`);
  io.output.write(`${title}:\n`);
  options.forEach((o, i) => io.output.write(`  ${String(i + 1).padStart(2)}) ${o.label}\n`));
  for (;;) {
    const picked = pickChoice(await question(`choose 1-${options.length}: `, io), options);
    const option = typeof picked === 'number' ? options[picked] : undefined;
    if (option) return option.value;
    io.output.write(`  ${String(picked)}\n`);
  }
}
