/**
 * `kopi-docka check`: are the things a backup needs there? OK/FAIL per item; exit 0 only when all are
 * OK, else 4 (a program is missing), 6 (Docker), 5 (repository), in that order.
 */
import type { Command } from '@commander-js/extra-typings';
import { ExitCode } from '../../errors.js';
import { checkExitCode, runChecks } from '../checks.js';
import { createContext, exitState, globalsOf } from '../context.js';
import { paint } from '../output.js';

export function register(program: Command): void {
  program
    .command('check')
    .description('check that Docker, kopia, tar and the repository are ready; OK/FAIL per item')
    .option('--json', 'print the results as JSON')
    .action(async (opts, cmd) => {
      const ctx = createContext(globalsOf(cmd), opts.json);
      const cfg = await ctx.config();
      const items = await runChecks(cfg);
      const code = checkExitCode(items);
      if (ctx.out.json) ctx.out.data({ ok: code === ExitCode.OK, exitCode: code, checks: items });
      for (const i of items) {
        const tag = i.ok ? paint(ctx.out, 'green', 'OK  ') : paint(ctx.out, 'red', 'FAIL');
        ctx.out.line(`${tag}  ${i.name.padEnd(11)} ${i.detail}`);
        if (!i.ok && i.hint) ctx.out.line(`      ${''.padEnd(11)} hint: ${i.hint}`);
      }
      exitState.code = code;
    });
}
