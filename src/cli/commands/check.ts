/**
 * `kopi-docka check`: are the things a backup needs there? OK/FAIL per item; exit 0 only when all are
 * OK, else 4 (a program is missing), 6 (Docker), 5 (repository: not connected, not writable, full),
 * 75 (another run holds the lock), in that order.
 */
import type { Command } from '@commander-js/extra-typings';
import { ExitCode } from '../../errors.js';
import { checkExitCode, decisiveChecks, runChecks } from '../../pipeline/preflight.js';
import { createContext, exitState, globalsOf } from '../context.js';
import { paint } from '../output.js';

export function register(program: Command): void {
  program
    .command('check')
    .description(
      'the pre-flight checks of a backup: Docker, kopia, tar, repository (connected, writable, free space), lock; OK/FAIL per item',
    )
    .option('--json', 'print the results as JSON')
    .action(async (opts, cmd) => {
      const ctx = createContext(globalsOf(cmd), opts.json);
      const cfg = await ctx.config();
      const items = await runChecks(cfg, ctx.kopia());
      const code = checkExitCode(decisiveChecks(items, cfg));
      if (ctx.out.json) ctx.out.data({ ok: code === ExitCode.OK, exitCode: code, checks: items });
      for (const i of items) {
        const tag = i.ok
          ? paint(ctx.out, 'green', 'OK  ')
          : i.name === 'tar' && cfg.backup.volumeMode !== 'tar'
            ? paint(ctx.out, 'yellow', 'WARN')
            : paint(ctx.out, 'red', 'FAIL');
        ctx.out.line(`${tag}  ${i.name.padEnd(11)} ${i.detail}`);
        if (!i.ok && i.hint) ctx.out.line(`      ${''.padEnd(11)} hint: ${i.hint}`);
      }
      exitState.code = code;
    });
}
