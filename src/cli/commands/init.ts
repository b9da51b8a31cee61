/** `kopi-docka init`: create or connect the configured Kopia repository; safe to run again. */
import type { Command } from '@commander-js/extra-typings';
import { assertReady, decisiveChecks, runChecks } from '../../pipeline/preflight.js';
import { createContext, globalsOf } from '../context.js';

const WORDS = {
  created: 'created',
  connected: 'connected to existing',
  'already-connected': 'already connected to',
} as const;

export function register(program: Command): void {
  program
    .command('init')
    .description(
      'create the Kopia repository at repository_path, or connect to it if it exists; make this host its ' +
        'maintenance owner and apply the configured compression (safe to run again)',
    )
    .option('--json', 'print the result as JSON')
    .action(async (opts, cmd) => {
      const ctx = createContext(globalsOf(cmd), opts.json);
      const cfg = await ctx.config();
      const kopia = ctx.kopia();
      // As the original's init: the programs a backup needs are checked first (Docker 6, kopia 4).
      assertReady(decisiveChecks(await runChecks(cfg, kopia, 'dependencies'), cfg));
      const version = await kopia.assertSupported();
      const result = await kopia.ensureRepository();
      if (ctx.out.json) {
        ctx.out.data({
          result,
          repositoryPath: cfg.kopia.repositoryPath,
          identity: kopia.identity,
          kopiaConfigFile: kopia.configFile,
          kopiaVersion: version,
        });
      }
      ctx.out.line(`${WORDS[result]} repository ${cfg.kopia.repositoryPath} as ${kopia.identity}`);
    });
}
