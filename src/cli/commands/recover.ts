import type { Command } from '@commander-js/extra-typings';
import { clearStaging } from '../../pipeline/backup.js';
import { acquireLock } from '../../pipeline/lock.js';
import { describeReplay, replayJournal } from '../../pipeline/recover.js';
import { createContext, exitState, globalsOf } from '../context.js';

export function register(program: Command): void {
  program
    .command('recover')
    .description('start the containers a crashed or killed backup left stopped (replays the journal)')
    .action(async (_opts, cmd) => {
      const ctx = createContext(globalsOf(cmd));
      const cfg = await ctx.config();
      const lock = await acquireLock(cfg.stateDir, 'recover');
      try {
        const started = await replayJournal(cfg.stateDir, ctx.docker(), ctx.log);
        await clearStaging(cfg.stateDir);
        if (started === undefined) ctx.out.line('nothing to recover: no run left containers stopped');
        else ctx.out.line(describeReplay(started));
        exitState.code = 0;
      } finally {
        ctx.close();
        await lock.release();
      }
    });
}
