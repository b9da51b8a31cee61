/**
 * `kopi-docka disaster-recovery [--output DIR]`: write one encrypted recovery bundle (where the
 * repository is and every parameter to reconnect, its password, this config, recover.sh and the
 * newest restore points) into `[backup] recovery_bundle_path` or DIR, keeping the newest
 * `recovery_bundle_retention`. The passphrase is never printed: the command says where the
 * `.PASSWORD` file is and that it must leave this host. Walk-through: docs/disaster-recovery.md.
 */
import path from 'node:path';
import type { Command } from '@commander-js/extra-typings';
import type { RecoveryBundleResult } from '../../pipeline/recovery-bundle.js';
import { createRecoveryBundle } from '../../pipeline/disaster-recovery.js';
import { createContext, exitState, globalsOf, type Context } from '../context.js';
import { paint } from '../output.js';

/** The lines every bundle writer prints (this command and `backup --update-recovery`). */
export function printBundle(ctx: Context, r: RecoveryBundleResult): void {
  const { out } = ctx;
  out.line(`recovery bundle: ${r.bundlePath}`);
  out.line(`  for ${r.info.description}`);
  out.line(`  how to open it and what next: ${r.readmePath}`);
  out.line(
    paint(
      out,
      'yellow',
      `  passphrase: ${r.passwordPath} (mode 600) — move it OFF this host (password manager, another machine), then delete it here`,
    ),
  );
  if (r.removed.length > 0) out.line(`  rotated out: ${r.removed.join(', ')}`);
}

export function register(program: Command): void {
  program
    .command('disaster-recovery')
    .description(
      'write an encrypted recovery bundle (repository location, password, config, recover.sh, newest restore points) ' +
        'to recovery_bundle_path or --output, keeping the newest recovery_bundle_retention',
    )
    .option('-o, --output <dir>', 'directory for the bundle (default: [backup] recovery_bundle_path)')
    .option('--json', 'print the paths as JSON')
    .action(async (opts, cmd) => {
      const ctx = createContext(globalsOf(cmd), opts.json);
      try {
        const cfg = await ctx.config();
        const kopia = ctx.kopia();
        await kopia.assertSupported();
        const r = await createRecoveryBundle(cfg, kopia, {
          outputDir: opts.output === undefined ? undefined : path.resolve(opts.output),
        });
        if (ctx.out.json) {
          ctx.out.data({
            bundle: r.bundlePath,
            passwordFile: r.passwordPath,
            readme: r.readmePath,
            hmac: r.hmacPath,
            removed: r.removed,
            repository: r.info.description,
          });
        }
        printBundle(ctx, r);
        exitState.code = 0;
      } finally {
        ctx.close();
      }
    });
}
