/**
 * Everything the benchmark creates registers its removal here, right after (or just before) it is
 * created. `runAll()` runs the removals newest first; a failing removal is reported and the rest still
 * run. The entry point calls it in `finally` and from its SIGINT/SIGTERM handler.
 */
import { randomBytes } from 'node:crypto';

type Undo = () => unknown;

export class Cleanup {
  private readonly stack: { label: string; fn: Undo }[] = [];
  private running: Promise<void> | undefined;

  constructor(private readonly log: (msg: string) => void) {}

  /** Register `fn`; returns a function that runs it now (once) and unregisters it. */
  add(label: string, fn: Undo): () => Promise<void> {
    const entry = { label, fn };
    this.stack.push(entry);
    return async () => {
      const i = this.stack.indexOf(entry);
      if (i < 0) return;
      this.stack.splice(i, 1);
      await this.runOne(entry);
    };
  }

  private async runOne(e: { label: string; fn: Undo }): Promise<void> {
    try {
      await e.fn();
    } catch (err) {
      this.log(`cleanup of ${e.label} failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /** Run every registered removal, newest first. Safe to call twice (the second waits for the first). */
  runAll(): Promise<void> {
    this.running ??= (async () => {
      while (this.stack.length > 0) {
        const e = this.stack.pop();
        if (e) await this.runOne(e);
      }
    })();
    return this.running;
  }

  get pending(): number {
    return this.stack.length;
  }
}

/**
 * `kdb-<prefix>-<random6>`: lowercase, valid as a Compose project, container and volume name, and
 * distinct from the test suite's `kdt-` names.
 */
export function uniqueName(prefix: string): string {
  const clean =
    prefix
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, '-')
      .replace(/^-+|-+$/g, '') || 'x';
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const suffix = Array.from(randomBytes(6), (b) => alphabet[b % alphabet.length]).join('');
  return `kdb-${clean}-${suffix}`;
}
