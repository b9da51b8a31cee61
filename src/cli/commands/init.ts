/**
 * `kopi-docka init`: create or connect the configured Kopia repository (any `[kopia] backend`); safe
 * to run again. A Kopia config connected to another repository is reconnected to the configured one
 * (said so on the terminal), only once the configured one is known to open with the password.
 */
import type { Command } from '@commander-js/extra-typings';
import { assertReady, decisiveChecks, runChecks } from '../../pipeline/preflight.js';
import { createContext, globalsOf } from '../context.js';

const WORDS = {
  created: 'created',
  connected: 'connected to existing',
  'already-connected': 'already connected to',
  reconnected: 'reconnected (the Kopia config pointed at another repository) to',
} as const;

export function register(program: Command): void {
  program
    .command('init')
    .description(
      'create the Kopia repository ([kopia] backend: repository_path, a bucket, an SFTP path, …), or connect to it if it exists; ' +
        'make this host its maintenance owner and apply the configured compression (safe to run again)',
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
          backend: kopia.backend.kind,
          repository: kopia.repositoryLabel,
          repositoryPath: cfg.kopia.repositoryPath,
          identity: kopia.identity,
          kopiaConfigFile: kopia.configFile,
          kopiaVersion: version,
        });
      }
      ctx.out.line(`${WORDS[result]} repository ${kopia.repositoryLabel} as ${kopia.identity}`);
    });
}
